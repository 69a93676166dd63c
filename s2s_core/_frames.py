"""A small, fast RFC 6455 data-frame codec for the phase after the HTTP upgrade.

wsproto performs the opening handshake; once it is done the connection switches
to this codec, whose framing costs a few microseconds per frame instead of tens
(wsproto masks byte by byte in Python and copies the payload several times).

Only what the S2S client and server need is supported: no extensions (so RSV
bits must be clear), client frames masked, server frames not.
"""

from __future__ import annotations

import codecs
import enum
import os
import struct
from collections.abc import Callable
from typing import TypeAlias

import numpy as np

from .errors import LocalProtocolError, MessageTooBig, RemoteProtocolError

__all__ = [
    "Opcode",
    "FrameWriter",
    "FrameReader",
    "parse_close_payload",
    "is_valid_close_code",
]


class Opcode(enum.IntEnum):
    """WebSocket frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10


Payload: TypeAlias = bytes | bytearray | memoryview

# Indexed by the 4-bit opcode of a frame; None marks a reserved opcode.
_OPCODES: tuple[Opcode | None, ...] = tuple({int(op): op for op in Opcode}.get(i)
                                             for i in range(16))
_MAX_CONTROL_PAYLOAD = 125
# Enum members through the class cost a descriptor call each (Python 3.11): hot paths
# use these.
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CLOSE = Opcode.CLOSE
_CONTINUATION = Opcode.CONTINUATION
# Bytes drawn from the key source at a time: 64 masking keys (a few KiB per connection).
_KEY_BATCH = 256

# Below this size, XOR through Python's big integers beats numpy's per-call cost.
_SMALL_XOR = 512

_HEAD7 = struct.Struct("!BB").pack
_HEAD16 = struct.Struct("!BBH").pack
_HEAD64 = struct.Struct("!BBQ").pack
_HEAD7_KEY = struct.Struct("!BB4s").pack
_HEAD16_KEY = struct.Struct("!BBH4s").pack
_HEAD64_KEY = struct.Struct("!BBQ4s").pack
_NO_KEY = bytes(4)
_PACK32 = struct.Struct("!I").pack
_KEYS_AS_INTS = struct.Struct(f"!{_KEY_BATCH // 4}I").unpack
_UNPACK16 = struct.Struct("!H").unpack_from
_UNPACK64 = struct.Struct("!Q").unpack_from
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

# Codes a peer may put in a close frame below 3000 (RFC 6455 section 7.4 and the
# IANA registry); 3000-4999 are open to libraries and applications.
_PROTOCOL_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                   1012, 1013, 1014})


def _xor_python(src: Payload, start: int, n: int, key: bytes) -> bytes:
    """Return ``src[start:start + n]`` XORed with the repeated 4-byte ``key``."""
    if n <= _SMALL_XOR:
        if n == 0:
            return b""
        tile = (key * ((n >> 2) + 1))[:n]
        data = int.from_bytes(src[start:start + n], "little")
        return (data ^ int.from_bytes(tile, "little")).to_bytes(n, "little")
    # A byte-wise XOR is vectorised by numpy: widening to uint64 measured no faster
    # and needs a separate tail.
    return np.bitwise_xor(
        np.frombuffer(src, np.uint8, n, start),
        np.frombuffer(key * ((n >> 2) + 1), np.uint8, n),
    ).tobytes()


def _xor_accelerated(src: Payload, start: int, n: int, key: bytes) -> bytes:
    """``_xor_python`` through the optional C masker (websockets' speedups, SIMD)."""
    assert _apply_mask is not None
    if start == 0 and n == len(src):
        return _apply_mask(src, key)
    return _apply_mask(memoryview(src)[start:start + n], key)


# Masking is most of the cost of a client frame: numpy needs ~4 us for 5 KB where a
# C loop needs 0.3 us. ``websockets`` ships such a loop (``pip install websockets``);
# without it, numpy does the work.
_apply_mask: Callable[[Payload, bytes], bytes] | None
try:
    from websockets.speedups import (  # type: ignore[import-not-found, unused-ignore]
        apply_mask as _ws_apply_mask,
    )
except ImportError:  # pragma: no cover - depends on the environment
    _apply_mask = None
else:
    _apply_mask = _ws_apply_mask

MASK_ACCELERATED = _apply_mask is not None
"""Whether frames are masked by a C loop (websockets' speedups) instead of numpy."""

_xor = _xor_accelerated if MASK_ACCELERATED else _xor_python


def _mask_whole_python(payload: Payload, key: bytes) -> bytes:
    return _xor_python(payload, 0, len(payload), key)


# The writer masks whole payloads: the C function itself when there is one.
_mask_whole: Callable[[Payload, bytes], bytes] = (
    _apply_mask if _apply_mask is not None else _mask_whole_python)


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a close frame on the wire."""
    return code in _PROTOCOL_CLOSE_CODES or 3000 <= code <= 4999


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Decode the payload of a received close frame.

    Args:
        payload: The raw (unmasked) payload.

    Returns:
        ``(code, reason)``; ``(1005, "")`` for an empty payload.

    Raises:
        RemoteProtocolError: A 1-byte payload or a code not allowed on the wire
            (close code 1002), or a reason that is not UTF-8 (close code 1007).
    """
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise RemoteProtocolError("close frame with a 1-byte payload", close_code=1002)
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise RemoteProtocolError(f"close frame with invalid close code {code}",
                                  close_code=1002)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"close frame reason is not valid UTF-8: {exc}",
                                  close_code=1007) from None
    return code, reason


def _contiguous_bytes(view: memoryview) -> Payload:
    """Give a flat byte view of ``view`` (copying only if it is not contiguous)."""
    if not view.c_contiguous:
        return view.tobytes()
    if view.ndim == 1 and view.format == "B":
        return view
    return view.cast("B")


# First byte of a frame (FIN bit and opcode) by opcode; a missing entry is refused.
_FIRST_BYTE: dict[int, int] = {int(op): 0x80 | int(op) for op in Opcode}
_FIRST_BYTE_MORE: dict[int, int] = {int(op): int(op) for op in Opcode if op < 8}


def _refusal(opcode: int, n: int) -> LocalProtocolError:
    """Why ``FrameWriter.frame`` refuses a frame (the checks are in the lookup tables)."""
    if not isinstance(opcode, int) or opcode > 15 or opcode < 0 or _OPCODES[opcode] is None:
        return LocalProtocolError(f"cannot send a frame with opcode {opcode!r}")
    name = Opcode(opcode).name
    if n > _MAX_CONTROL_PAYLOAD:
        return LocalProtocolError(f"{name} payload of {n} bytes exceeds 125 bytes")
    return LocalProtocolError(f"cannot fragment a {name} frame")


class FrameWriter:
    """Serialise frames for one side of a connection.

    Args:
        mask: True for the client role (every frame masked), False for a server.
        key_source: ``key_source(n)`` returns ``n`` random bytes; masking keys
            are drawn from it 1024 at a time and each is used once.
    """

    __slots__ = ("_key_ints", "_key_pos", "_key_source", "_keys", "_mask")

    def __init__(self, *, mask: bool,
                 key_source: Callable[[int], bytes] = os.urandom) -> None:
        self._mask = mask
        self._key_source = key_source
        self._keys = b""
        self._key_ints: tuple[int, ...] = ()  # the same keys, as big-endian integers
        self._key_pos = 0

    @property
    def mask(self) -> bool:
        """Whether the frames written are masked (client role)."""
        return self._mask

    def _take_key(self) -> int:
        """Where the next masking key starts in ``_keys`` (refilled when used up)."""
        pos = self._key_pos
        if pos >= len(self._keys):
            self._refill_keys()
            pos = 0
        self._key_pos = pos + 4
        return pos

    def _refill_keys(self) -> None:
        keys = bytes(self._key_source(_KEY_BATCH))
        if len(keys) != _KEY_BATCH:
            raise ValueError(f"key_source returned {len(keys)} bytes, expected {_KEY_BATCH}")
        self._keys = keys
        self._key_ints = _KEYS_AS_INTS(keys)
        self._key_pos = 0

    def frame(self, opcode: Opcode, payload: Payload = b"", *, fin: bool = True) -> bytes:
        """Serialise one frame.

        Args:
            opcode: The frame's opcode; CONTINUATION for the later fragments
                of a message.
            payload: The payload, unmasked (it is not modified).
            fin: False for every fragment of a message but the last.

        Returns:
            The frame (header, masking key if any, payload) as one bytes object.

        Raises:
            LocalProtocolError: A control frame above 125 bytes or not final,
                or an opcode that is not one of ``Opcode``.
        """
        if type(payload) is memoryview:
            payload = _contiguous_bytes(payload)
        n = len(payload)
        b0 = (_FIRST_BYTE if fin else _FIRST_BYTE_MORE).get(opcode)
        if b0 is None or (b0 & 0x08 and n > _MAX_CONTROL_PAYLOAD):
            raise _refusal(opcode, n)
        if not self._mask:
            if n < 126:
                header = _HEAD7(b0, n)
            elif n < 65536:
                header = _HEAD16(b0, 126, n)
            else:
                header = _HEAD64(b0, 127, n)
            return header + payload
        pos = self._take_key()
        key = self._keys[pos:pos + 4]
        if n < 126:
            header = _HEAD7_KEY(b0, 0x80 | n, key)
        elif n < 65536:
            header = _HEAD16_KEY(b0, 0xFE, n, key)
        else:
            header = _HEAD64_KEY(b0, 0xFF, n, key)
        return header + _mask_whole(payload, key)

    def text_frame(self, head: bytes, body: bytes, tail: bytes) -> bytes:
        """Serialise one final TEXT frame whose payload is ``head + body + tail``.

        The same bytes as ``frame(Opcode.TEXT, head + body + tail)``, with one
        copy of the payload fewer for a masked frame of 126 to 65535 bytes.
        """
        n = len(head) + len(body) + len(tail)
        if not self._mask or n < 126 or n > 65535:
            return self.frame(_TEXT, b"".join((head, body, tail)))
        pos = self._take_key()
        key = self._keys[pos:pos + 4]
        # One masking pass over the whole frame: the header goes in pre-masked so the
        # pass restores it, and the key's slot holds zeros, which the pass turns into
        # the key (the 4-byte header keeps the payload aligned with the key).
        head_masked = _PACK32(self._key_ints[pos >> 2] ^ (0x81FE0000 | n))
        return _mask_whole(b"".join((head_masked, _NO_KEY, head, body, tail)), key)

    def close_frame(self, code: int | None = None, reason: str = "") -> bytes:
        """Serialise a close frame.

        Args:
            code: The close code, or None for an empty payload.
            reason: Text for the peer, cut on a character boundary so that the
                payload fits in 125 bytes.

        Raises:
            LocalProtocolError: A reason without a code, or a code that may not
                be sent (e.g. 1005, 1006, 1015, or outside 1000-4999).
        """
        if code is None:
            if reason:
                raise LocalProtocolError("a close reason needs a close code")
            return self.frame(Opcode.CLOSE)
        if not is_valid_close_code(code):
            raise LocalProtocolError(f"close code {code} may not be sent")
        text = reason.encode("utf-8")
        if len(text) > _MAX_CONTROL_PAYLOAD - 2:
            # "ignore" drops only the character that the cut split in two.
            text = text[:_MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode("utf-8")
        return self.frame(Opcode.CLOSE, code.to_bytes(2, "big") + text)


def _check_utf8(decoder: codecs.IncrementalDecoder | None, data: bytes, final: bool) -> None:
    """Raise the 1007 error unless ``data`` continues valid UTF-8."""
    try:
        if decoder is None:
            data.decode("utf-8")
        else:
            decoder.decode(data, final)
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"text message is not valid UTF-8: {exc}",
                                  close_code=1007) from None


class FrameReader:
    """Parse received bytes into whole messages.

    Fragmented messages are reassembled; control frames that arrive between
    fragments are returned where they arrive. The close frame's payload is
    returned raw: decode it with ``parse_close_payload``. The peer may send
    nothing after a close frame (RFC 6455 section 5.5.1), so the reader ignores
    any later bytes.

    Errors never propagate out of ``feed``: on a protocol violation ``feed``
    returns the messages completed before it, stores the exception in
    ``error``, and every later ``feed`` returns an empty list. Check ``error``
    after each call.

    Args:
        expect_masked: True on the server side (client frames must be masked),
            False on the client side (server frames must not be).
        max_message_size: Largest message accepted (sum of its fragments), or
            None for no limit. Enforced from frame headers, before buffering.

    Attributes:
        error: The violation that stopped the reader (a ``RemoteProtocolError``
            whose ``close_code`` is the code to close with), or None.
    """

    __slots__ = ("_buf", "_closed", "_fragments", "_limit", "_mask_bit", "_msg_opcode",
                 "_msg_size", "_need", "_utf8", "error")

    def __init__(self, *, expect_masked: bool,
                 max_message_size: int | None = 16 * 2**20) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be None or >= 0")
        self._mask_bit = 0x80 if expect_masked else 0
        self._limit = max_message_size
        self._buf = bytearray()
        self._need = 0  # bytes needed in _buf before the pending frame can progress
        self._msg_opcode: Opcode | None = None  # data message being reassembled
        self._fragments: list[bytes] = []
        self._msg_size = 0
        # Fragmented text is validated as it arrives, to fail on the bad fragment.
        self._utf8: codecs.IncrementalDecoder | None = None
        self._closed = False
        self.error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Number of received bytes held for an incomplete frame."""
        return len(self._buf)

    @property
    def close_received(self) -> bool:
        """Whether a close frame was parsed (and the input after it ignored)."""
        return self._closed

    def feed(self, data: Payload) -> list[tuple[Opcode, bytes]]:
        """Consume received bytes.

        Args:
            data: Bytes from the transport, any amount.

        Returns:
            The messages completed by ``data``, in arrival order, as
            ``(opcode, payload)``: TEXT (validated UTF-8), BINARY, CLOSE,
            PING or PONG. Never CONTINUATION.
        """
        out: list[tuple[Opcode, bytes]] = []
        if self.error is not None or self._closed or not data:
            return out
        if type(data) is not bytes:
            data = bytes(data)
        try:
            pos = 0
            buf = self._buf
            # Complete the pending frame with just the bytes it needs, so the
            # rest of data is parsed in place instead of copied into the buffer.
            while buf:
                take = self._need - len(buf)
                if take > len(data) - pos:
                    buf += data[pos:]
                    return out
                buf += data[pos:pos + take]
                pos += take
                pending = bytes(buf)
                buf.clear()
                done = self._parse(pending, 0, out)
                if self._closed:
                    return out
                if done < len(pending):
                    buf += pending  # the header is now known to announce more
            pos = self._parse(data, pos, out)
            if pos < len(data) and not self._closed:
                buf += data[pos:]
        except RemoteProtocolError as exc:
            self.error = exc
            self._buf = bytearray()
            self._end_message()
        return out

    def text_payload_start(self, data: bytes) -> int:
        """Where the payload starts if ``data`` is one unmasked text message, else -1.

        That is: ``data`` is exactly one whole, final, unmasked TEXT frame that
        ``feed`` would accept (reader idle, length encoded minimally, within
        ``max_message_size``) before it checks the UTF-8. Nothing changes in the
        reader: the caller either uses ``data[start:]`` as the message after
        proving it valid UTF-8 itself, or passes ``data`` to ``feed``.
        """
        if (self._mask_bit or self._buf or self._msg_opcode is not None
                or self.error is not None or self._closed):
            return -1
        size = len(data)
        if size < 2 or data[0] != 0x81:
            return -1
        # The second byte holds the mask bit: any masked frame fails both tests.
        n = data[1]
        if n < 126:
            start = 2
        elif n == 126 and size >= 4:
            n = (data[2] << 8) | data[3]
            if n < 126:
                return -1
            start = 4
        else:
            return -1  # 64-bit lengths go through feed
        if start + n != size or (self._limit is not None and n > self._limit):
            return -1
        return start

    def _parse(self, src: bytes, pos: int, out: list[tuple[Opcode, bytes]]) -> int:
        """Parse whole frames of ``src`` from ``pos``; return where parsing stopped.

        When it stops before the end, ``_need`` is how many bytes from there
        are needed before parsing can move on. After a close frame it stops and
        reports everything as consumed. A frame takes the fast lane, inline
        here because its cost is per frame, or else ``_parse_frame``.
        """
        size_all = len(src)
        mask_bit = self._mask_bit
        limit = self._limit
        while True:
            avail = size_all - pos
            if avail < 2:
                self._need = 2
                return pos
            b0 = src[pos]
            b1 = src[pos + 1]
            # Fast lane: a whole, final, unfragmented text or binary frame whose
            # header needs no checks beyond these (what almost every frame is).
            if ((b0 == 0x81 or b0 == 0x82) and b1 & 0x80 == mask_bit
                    and self._msg_opcode is None):
                n = b1 & 0x7F
                if n < 126:
                    start = pos + (6 if mask_bit else 2)
                elif n == 126 and avail >= 8:
                    n = (src[pos + 2] << 8) | src[pos + 3]
                    start = pos + (8 if mask_bit else 4)
                    if n < 126:
                        start = -1  # badly encoded length: the general path reports it
                else:
                    start = -1
                end = start + n
                if start >= 0 and end <= size_all and (limit is None or n <= limit):
                    if mask_bit:
                        payload = _xor(src, start, n, src[start - 4:start])
                    else:
                        payload = src[start:end]
                    pos = end
                    if b0 == 0x81:
                        if not payload.isascii():
                            _check_utf8(None, payload, True)
                        out.append((_TEXT, payload))
                    else:
                        out.append((_BINARY, payload))
                    continue
            end = self._parse_frame(src, pos, out)
            if end == pos or self._closed:
                return end
            pos = end

    def _parse_frame(self, src: bytes, pos: int, out: list[tuple[Opcode, bytes]]) -> int:
        """The general path: the frame at ``pos``, with every check of RFC 6455.

        Returns:
            Where the frame ends; ``pos`` itself when the frame is incomplete
            (``_need`` says how many bytes it takes); the end of ``src``
            after a close frame (the peer may send nothing after it).

        Raises:
            RemoteProtocolError: The frame breaks the protocol (``MessageTooBig``
                when its message exceeds ``max_message_size``).
        """
        header = self._frame_header(src, pos)
        if header is None:
            return pos
        opcode, fin, hl, n = header
        start = pos + hl
        end = start + n
        if end > len(src):
            self._need = hl + n
            return pos
        payload = _xor(src, start, n, src[start - 4:start]) if self._mask_bit else src[start:end]
        if opcode >= _CLOSE:  # a control frame: delivered where it arrives
            out.append((opcode, payload))
            if opcode is _CLOSE:
                self._closed = True
                self._end_message()
                return len(src)
        else:
            self._data_frame(opcode, fin, payload, out)
        return end

    def _frame_header(self, src: bytes, pos: int) -> tuple[Opcode, bool, int, int] | None:
        """Read and check the header of the frame at ``pos`` (two bytes are there).

        Returns:
            ``(opcode, fin, header length, payload length)``, or None when the
            header is incomplete (``_need`` set).

        Raises:
            RemoteProtocolError: Reserved bits or opcode, a fragmented or long
                control frame, the wrong masking for the role, a length not
                encoded minimally, a fragment out of sequence, or a message
                above ``max_message_size``.
        """
        b0 = src[pos]
        b1 = src[pos + 1]
        if b0 & 0x70:
            raise RemoteProtocolError(
                f"frame has reserved bits set ({b0 & 0x70:#04x}) "
                "but no extension was negotiated")
        op = b0 & 0x0F
        opcode = _OPCODES[op]
        if opcode is None:
            raise RemoteProtocolError(f"frame has reserved opcode {op:#x}")
        n = b1 & 0x7F
        if op & 0x8:
            if not b0 & 0x80:
                raise RemoteProtocolError(f"fragmented {opcode.name} frame")
            if n > _MAX_CONTROL_PAYLOAD:
                raise RemoteProtocolError(f"{opcode.name} frame payload above 125 bytes")
        if b1 & 0x80 != self._mask_bit:
            raise RemoteProtocolError(
                "unmasked frame from a client" if self._mask_bit
                else "masked frame from a server")
        hl = 2 if n < 126 else 4 if n == 126 else 10
        if self._mask_bit:
            hl += 4
        if len(src) - pos < hl:
            self._need = hl
            return None
        if n == 126:
            n = _UNPACK16(src, pos + 2)[0]
            if n < 126:
                raise RemoteProtocolError(f"length {n} encoded on 16 bits instead of 7")
        elif n == 127:
            n = _UNPACK64(src, pos + 2)[0]
            if n >> 63:
                raise RemoteProtocolError("64-bit frame length has its top bit set")
            if n < 65536:
                raise RemoteProtocolError(f"length {n} encoded on 64 bits instead of 16")
        self._check_sequence(opcode, n)
        return opcode, bool(b0 & 0x80), hl, n

    def _check_sequence(self, opcode: Opcode, n: int) -> None:
        """Check a frame of ``n`` payload bytes against the message being reassembled.

        Raises:
            RemoteProtocolError: A continuation with no message started, or a
                new data message inside a fragmented one.
            MessageTooBig: The message would exceed ``max_message_size``.
        """
        if opcode is _CONTINUATION:
            if self._msg_opcode is None:
                raise RemoteProtocolError("continuation frame without a message started")
            size = self._msg_size + n
        elif opcode < _CLOSE and self._msg_opcode is not None:
            raise RemoteProtocolError(
                f"{opcode.name} frame while a fragmented "
                f"{self._msg_opcode.name} message is incomplete")
        else:
            size = n
        if self._limit is not None and size > self._limit:
            raise MessageTooBig("message", size, self._limit)

    def _data_frame(self, opcode: Opcode, fin: bool, payload: bytes,
                    out: list[tuple[Opcode, bytes]]) -> None:
        """A text, binary or continuation frame: a whole message, or a fragment of one.

        Text is checked as UTF-8 as it arrives, so a bad fragment fails at once.
        """
        if opcode is not _CONTINUATION:
            if fin:
                if opcode is _TEXT and not payload.isascii():
                    _check_utf8(None, payload, True)
                out.append((opcode, payload))
                return
            self._msg_opcode = opcode
            self._fragments = [payload]
            self._msg_size = len(payload)
            self._utf8 = _Utf8Decoder() if opcode is _TEXT else None
            if self._utf8 is not None:
                _check_utf8(self._utf8, payload, False)
            return
        if self._utf8 is not None:
            _check_utf8(self._utf8, payload, fin)
        self._fragments.append(payload)
        self._msg_size += len(payload)
        if fin:
            first = self._msg_opcode
            assert first is not None
            out.append((first, b"".join(self._fragments)))
            self._end_message()

    def _end_message(self) -> None:
        """Forget the fragmented message in progress (done, or cut by a close or an error)."""
        self._msg_opcode = None
        self._fragments = []
        self._msg_size = 0
        self._utf8 = None
