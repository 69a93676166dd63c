"""Tests of s2s_core._frames (the frame codec), mostly differential against wsproto's framing."""

from __future__ import annotations

import array
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason, FrameProtocol, ParseFailed
from wsproto.frame_protocol import Opcode as WsOpcode

from s2s_core._frames import (
    FrameReader,
    FrameWriter,
    Opcode,
    is_valid_close_code,
    parse_close_payload,
)
from s2s_core.errors import LocalProtocolError, MessageTooBig, RemoteProtocolError

Norm = tuple[object, ...]

FRAMES = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------
# Scripts: what a peer sends, and the messages a receiver must report.


@dataclass
class DataMessage:
    text: bool
    payload: str | bytes
    cuts: list[int]  # interpreted per sender: byte offsets for ours, chars for wsproto
    pings: list[bytes | None] = field(default_factory=list)  # after fragment i

    def encoded(self) -> bytes:
        return self.payload.encode() if isinstance(self.payload, str) else self.payload


@dataclass
class Control:
    kind: str  # "ping" | "pong"
    payload: bytes

    def expected(self) -> list[Norm]:
        return [(self.kind, self.payload)]


@dataclass
class Close:
    code: int | None
    reason: str

    def expected(self) -> list[Norm]:
        if self.code is None:
            return [("close", 1005, "")]
        reason = self.reason
        while len(reason.encode()) > 123:  # what fits in a close frame
            reason = reason[:-1]
        return [("close", self.code, reason)]


Item = DataMessage | Control


def split(data: Sequence[object], cuts: Iterable[int]) -> list[int]:
    return sorted({c % (len(data) + 1) for c in cuts})


def pieces(data: bytes | str, cuts: Iterable[int]) -> list[bytes | str]:
    bounds = [0, *split(data, cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


text_payloads = st.text(
    alphabet=st.characters(codec="utf-8"), max_size=300
) | st.sampled_from(["", "a", "é", "€uro", "😀" * 40, "x" * 600])
binary_payloads = st.binary(max_size=400) | st.sampled_from([b"", os.urandom(70_000)])
control_payloads = st.binary(max_size=125)
close_reasons = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
close_codes = st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                               1012, 1013, 3000, 3999, 4000, 4999]) | st.integers(3000, 4999)


@st.composite
def data_messages(draw: st.DrawFn) -> DataMessage:
    text = draw(st.booleans())
    payload: str | bytes = draw(text_payloads) if text else draw(binary_payloads)
    cuts = draw(st.lists(st.integers(0, 10_000), max_size=4))
    pings = draw(st.lists(st.none() | control_payloads, min_size=len(cuts),
                          max_size=len(cuts)))
    return DataMessage(text, payload, cuts, pings)


items = data_messages() | st.builds(Control, st.sampled_from(["ping", "pong"]),
                                    control_payloads)
closes = st.none() | st.builds(Close, st.none(), st.just("")) | st.builds(
    Close, close_codes, close_reasons)


@dataclass
class Script:
    items: list[Item]
    close: Close | None

    def expected(self, *, char_cuts: bool) -> list[Norm]:
        out: list[Norm] = []
        for item in self.items:
            if isinstance(item, DataMessage):
                n_frames = len(self.fragments(item, char_cuts=char_cuts))
                out += [("ping", p) for p in item.pings[: n_frames - 1] if p is not None]
                out.append(("text", item.payload) if item.text else ("binary", item.payload))
            else:
                out += item.expected()
        if self.close is not None:
            out += self.close.expected()
        return out

    @staticmethod
    def fragments(item: DataMessage, *, char_cuts: bool) -> list[bytes | str]:
        return pieces(item.payload if char_cuts else item.encoded(), item.cuts)


scripts = st.builds(Script, st.lists(items, max_size=6), closes)


def encode_ours(script: Script, writer: FrameWriter) -> bytes:
    """Frames produced by our writer, fragments cut at any byte (even mid-character)."""
    out = []
    for item in script.items:
        if isinstance(item, Control):
            op = Opcode.PING if item.kind == "ping" else Opcode.PONG
            out.append(writer.frame(op, item.payload))
            continue
        frags = script.fragments(item, char_cuts=False)
        for i, frag in enumerate(frags):
            assert isinstance(frag, bytes)
            op = Opcode.CONTINUATION
            if i == 0:
                op = Opcode.TEXT if item.text else Opcode.BINARY
            last = i == len(frags) - 1
            out.append(writer.frame(op, frag, fin=last))
            if not last and item.pings[i] is not None:
                out.append(writer.frame(Opcode.PING, item.pings[i] or b""))
    if script.close is not None:
        out.append(writer.close_frame(script.close.code, script.close.reason))
    return b"".join(out)


def encode_wsproto(script: Script, conn: Connection) -> bytes:
    """Frames produced by wsproto (text fragments cut between characters)."""
    out = []
    for item in script.items:
        if isinstance(item, Control):
            event: Event = Ping(item.payload) if item.kind == "ping" else Pong(item.payload)
            out.append(conn.send(event))
            continue
        frags = script.fragments(item, char_cuts=True)
        for i, frag in enumerate(frags):
            last = i == len(frags) - 1
            if isinstance(frag, str):
                out.append(conn.send(TextMessage(data=frag, message_finished=last)))
            else:
                out.append(conn.send(BytesMessage(data=frag, message_finished=last)))
            if not last and item.pings[i] is not None:
                out.append(conn.send(Ping(item.pings[i] or b"")))
    if script.close is not None:
        code = script.close.code
        # wsproto sends an empty close payload only for this very enum member.
        no_code = CloseReason.NO_STATUS_RCVD
        out.append(conn.send(CloseConnection(code=code if code is not None else no_code,
                                             reason=script.close.reason or None)))
    return b"".join(out)


def wsproto_receive(conn: Connection, chunks: Iterable[bytes]) -> list[Norm]:
    out: list[Norm] = []
    text: list[str] = []
    binary: list[bytes] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        for event in conn.events():
            if isinstance(event, TextMessage):
                text.append(event.data)
                if event.message_finished:
                    out.append(("text", "".join(text)))
                    text = []
            elif isinstance(event, BytesMessage):
                binary.append(bytes(event.data))
                if event.message_finished:
                    out.append(("binary", b"".join(binary)))
                    binary = []
            elif isinstance(event, Ping):
                out.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                out.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                out.append(("close", int(event.code), event.reason or ""))
            else:  # pragma: no cover
                raise AssertionError(event)
    return out


def normalise(messages: Iterable[tuple[Opcode, bytes]]) -> list[Norm]:
    out: list[Norm] = []
    for opcode, payload in messages:
        assert type(payload) is bytes
        if opcode is Opcode.TEXT:
            out.append(("text", payload.decode()))
        elif opcode is Opcode.BINARY:
            out.append(("binary", payload))
        elif opcode is Opcode.PING:
            out.append(("ping", payload))
        elif opcode is Opcode.PONG:
            out.append(("pong", payload))
        elif opcode is Opcode.CLOSE:
            out.append(("close", *parse_close_payload(payload)))
        else:  # pragma: no cover
            raise AssertionError(opcode)
    return out


def read_chunks(reader: FrameReader, chunks: Iterable[bytes]) -> list[tuple[Opcode, bytes]]:
    out = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def chunked(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *split(data, cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def read_all_ways(make: Callable[[], FrameReader], data: bytes,
                  cuts: list[int]) -> list[Norm]:
    """Feed whole, in random chunks and byte by byte; all three must agree."""
    results = []
    for chunks in ([data], chunked(data, cuts), bytewise(data) if len(data) < 20_000
                   else chunked(data, range(0, len(data), 997))):
        reader = make()
        got = read_chunks(reader, chunks)
        assert reader.error is None, reader.error
        assert reader.buffered == 0
        results.append(normalise(got))
    assert results[0] == results[1] == results[2]
    return results[0]


# --------------------------------------------------------------------------
# Differential tests against wsproto


@FRAMES
@given(scripts, st.lists(st.integers(0, 100_000), max_size=8))
def test_client_writer_to_wsproto_server(script: Script, cuts: list[int]) -> None:
    data = encode_ours(script, FrameWriter(mask=True))
    expected = script.expected(char_cuts=False)
    assert wsproto_receive(Connection(ConnectionType.SERVER), [data]) == expected
    got = wsproto_receive(Connection(ConnectionType.SERVER), chunked(data, cuts))
    assert got == expected


@FRAMES
@given(scripts, st.lists(st.integers(0, 100_000), max_size=8))
def test_server_writer_to_wsproto_client(script: Script, cuts: list[int]) -> None:
    data = encode_ours(script, FrameWriter(mask=False))
    expected = script.expected(char_cuts=False)
    assert wsproto_receive(Connection(ConnectionType.CLIENT), [data]) == expected
    got = wsproto_receive(Connection(ConnectionType.CLIENT), chunked(data, cuts))
    assert got == expected


@FRAMES
@given(scripts, st.lists(st.integers(0, 100_000), max_size=8))
def test_wsproto_server_to_client_reader(script: Script, cuts: list[int]) -> None:
    data = encode_wsproto(script, Connection(ConnectionType.SERVER))
    got = read_all_ways(lambda: FrameReader(expect_masked=False), data, cuts)
    assert got == script.expected(char_cuts=True)
    assert got == wsproto_receive(Connection(ConnectionType.CLIENT), [data])


@FRAMES
@given(scripts, st.lists(st.integers(0, 100_000), max_size=8))
def test_wsproto_client_to_server_reader(script: Script, cuts: list[int]) -> None:
    data = encode_wsproto(script, Connection(ConnectionType.CLIENT))
    got = read_all_ways(lambda: FrameReader(expect_masked=True), data, cuts)
    assert got == script.expected(char_cuts=True)
    assert got == wsproto_receive(Connection(ConnectionType.SERVER), [data])


@FRAMES
@given(scripts, st.booleans(), st.lists(st.integers(0, 100_000), max_size=8))
def test_writer_to_reader_round_trip(script: Script, mask: bool, cuts: list[int]) -> None:
    data = encode_ours(script, FrameWriter(mask=mask))
    got = read_all_ways(lambda: FrameReader(expect_masked=mask), data, cuts)
    assert got == script.expected(char_cuts=False)


def test_text_split_inside_a_character_is_reassembled() -> None:
    writer = FrameWriter(mask=True)
    payload = "€😀".encode()
    data = b"".join([writer.frame(Opcode.TEXT, payload[:1], fin=False),
                     writer.frame(Opcode.PING, b"p"),
                     writer.frame(Opcode.CONTINUATION, payload[1:5], fin=False),
                     writer.frame(Opcode.CONTINUATION, payload[5:])])
    reader = FrameReader(expect_masked=True)
    assert reader.feed(data) == [(Opcode.PING, b"p"), (Opcode.TEXT, payload)]
    assert reader.error is None


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 511, 512, 513, 65535, 65536, 200_003])
@pytest.mark.parametrize("mask", [True, False])
def test_frame_sizes_against_wsproto(size: int, mask: bool) -> None:
    payload = os.urandom(size)
    data = FrameWriter(mask=mask).frame(Opcode.BINARY, payload)
    head = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + (4 if mask else 0)
    assert len(data) == head + size
    peer = Connection(ConnectionType.SERVER if mask else ConnectionType.CLIENT)
    assert wsproto_receive(peer, [data]) == [("binary", payload)]
    reader = FrameReader(expect_masked=mask)
    assert reader.feed(data) == [(Opcode.BINARY, payload)]
    # wsproto's own encoding of the same payload parses identically.
    theirs = Connection(ConnectionType.CLIENT if mask else ConnectionType.SERVER).send(
        BytesMessage(data=payload))
    assert FrameReader(expect_masked=mask).feed(theirs) == [(Opcode.BINARY, payload)]
    if not mask:
        assert data == theirs


def test_writer_accepts_bytearray_and_memoryview() -> None:
    samples = array.array("h", range(-300, 300))
    raw = samples.tobytes()
    for mask in (True, False):
        writer = FrameWriter(mask=mask)
        reader = FrameReader(expect_masked=mask)
        frames = [writer.frame(Opcode.BINARY, bytearray(raw)),
                  writer.frame(Opcode.BINARY, memoryview(samples)),
                  writer.frame(Opcode.BINARY, memoryview(raw)[::2]),
                  writer.frame(Opcode.BINARY, memoryview(raw)[10:20])]
        assert all(type(f) is bytes for f in frames)
        assert reader.feed(b"".join(frames)) == [
            (Opcode.BINARY, raw), (Opcode.BINARY, raw),
            (Opcode.BINARY, raw[::2]), (Opcode.BINARY, raw[10:20])]
        assert reader.feed(bytearray(frames[0])) == [(Opcode.BINARY, raw)]
        assert reader.feed(memoryview(frames[0])) == [(Opcode.BINARY, raw)]


def test_payload_not_modified_by_masking() -> None:
    payload = bytearray(b"abc" * 400)
    before = bytes(payload)
    FrameWriter(mask=True).frame(Opcode.BINARY, payload)
    assert payload == before


# --------------------------------------------------------------------------
# Writer API


def test_writer_rejects_bad_control_frames() -> None:
    writer = FrameWriter(mask=True)
    assert writer.frame(Opcode.PING, b"x" * 125)
    with pytest.raises(LocalProtocolError, match="125"):
        writer.frame(Opcode.PING, b"x" * 126)
    with pytest.raises(LocalProtocolError, match="fragment"):
        writer.frame(Opcode.PONG, b"", fin=False)
    for bad in (3, 7, 11, 15, 16, -1):
        with pytest.raises(LocalProtocolError, match="opcode"):
            writer.frame(bad, b"")  # type: ignore[arg-type]


def test_close_frame() -> None:
    writer = FrameWriter(mask=False)
    assert writer.close_frame() == b"\x88\x00"
    assert writer.close_frame(1000) == b"\x88\x02\x03\xe8"
    assert writer.close_frame(4001, "bye") == b"\x88\x05\x0f\xa1bye"
    # 200 bytes of two-byte characters: 123 would cut one in half, so 122 are kept.
    frame = writer.close_frame(1000, "é" * 100)
    assert frame[1] == 124
    assert parse_close_payload(frame[2:]) == (1000, "é" * 61)
    with pytest.raises(LocalProtocolError):
        writer.close_frame(None, "why")
    for bad in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
        with pytest.raises(LocalProtocolError):
            writer.close_frame(bad)


@FRAMES
@given(close_codes, st.text(max_size=200), st.booleans())
def test_close_frame_reason_truncation(code: int, reason: str, mask: bool) -> None:
    frame = FrameWriter(mask=mask).close_frame(code, reason)
    (message,) = FrameReader(expect_masked=mask).feed(frame)
    assert message[0] is Opcode.CLOSE
    assert len(message[1]) <= 125
    got_code, got_reason = parse_close_payload(message[1])
    assert got_code == code
    assert reason.startswith(got_reason)
    if len(reason.encode()) <= 123:
        assert got_reason == reason
    else:
        # Nothing more could have fitted.
        assert len(reason[: len(got_reason) + 1].encode()) > 123
    peer = Connection(ConnectionType.SERVER if mask else ConnectionType.CLIENT)
    assert wsproto_receive(peer, [frame]) == [("close", code, got_reason)]


def keys_of(frames: Iterable[bytes]) -> list[bytes]:
    keys = []
    for frame in frames:
        assert frame[1] & 0x80
        length = frame[1] & 0x7F
        offset = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        keys.append(frame[offset:offset + 4])
    return keys


def test_mask_keys_never_reused() -> None:
    # Random keys may collide by chance (p ~ 0.3% for 5000 of them), so check the
    # stronger property: the keys used are the source's bytes, each 4 taken once.
    drawn = bytearray()

    def source(n: int) -> bytes:
        chunk = os.urandom(n)
        drawn.extend(chunk)
        return chunk

    writer = FrameWriter(mask=True, key_source=source)
    keys = keys_of(writer.frame(Opcode.BINARY, b"payload") for _ in range(5000))
    assert keys == [bytes(drawn[i:i + 4]) for i in range(0, 4 * 5000, 4)]
    assert len(set(keys)) > 4990


def test_mask_keys_drawn_in_batches_and_used_once() -> None:
    calls: list[int] = []
    stream = bytearray()

    def source(n: int) -> bytes:
        calls.append(n)
        chunk = b"".join(i.to_bytes(4, "big") for i in range(len(stream) // 4,
                                                            len(stream) // 4 + n // 4))
        stream.extend(chunk)
        return chunk

    writer = FrameWriter(mask=True, key_source=source)
    sizes = [0, 5, 130, 70_000] * 1250
    frames = [writer.frame(Opcode.BINARY, b"z" * size) for size in sizes]
    keys = keys_of(frames)
    assert calls == [256] * 79  # 5000 keys, 64 per batch
    assert keys == [bytes(stream[i:i + 4]) for i in range(0, 4 * 5000, 4)]
    reader = FrameReader(expect_masked=True)
    for frame, size in zip(frames[:8], sizes, strict=False):
        assert reader.feed(frame) == [(Opcode.BINARY, b"z" * size)]


def test_key_source_must_return_a_full_batch() -> None:
    writer = FrameWriter(mask=True, key_source=lambda n: b"\x00" * (n - 1))
    with pytest.raises(ValueError, match="key_source"):
        writer.frame(Opcode.TEXT, b"x")


def test_server_writer_does_not_draw_keys() -> None:
    def source(n: int) -> bytes:
        raise AssertionError("a server does not mask")

    writer = FrameWriter(mask=False, key_source=source)
    assert writer.frame(Opcode.TEXT, b"hi") == b"\x81\x02hi"
    assert not writer.mask


# --------------------------------------------------------------------------
# Violations


def raw_frame(b0: int, payload: bytes = b"", *, mask: bool = False,
              length: bytes | None = None) -> bytes:
    """Build a frame by hand, bypassing every check of the writer."""
    n = len(payload)
    if length is None:
        if n < 126:
            length = bytes([n])
        elif n < 65536:
            length = bytes([126]) + struct.pack("!H", n)
        else:
            length = bytes([127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return bytes([b0, length[0] | 0x80]) + length[1:] + key + body
    return bytes([b0]) + length + payload


FIN, TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x80, 1, 2, 0, 8, 9, 10

# name -> (frames after a valid preamble, close code, wsproto also fails with it)
VIOLATIONS: dict[str, tuple[Callable[[bool], bytes], int, str]] = {
    "rsv1": (lambda m: raw_frame(FIN | 0x40 | TEXT, b"x", mask=m), 1002, "reserved bits"),
    "rsv2": (lambda m: raw_frame(FIN | 0x20 | BINARY, b"x", mask=m), 1002, "reserved bits"),
    "rsv3": (lambda m: raw_frame(FIN | 0x10 | PING, b"", mask=m), 1002, "reserved bits"),
    "opcode3": (lambda m: raw_frame(FIN | 3, b"x", mask=m), 1002, "opcode 0x3"),
    "opcode7": (lambda m: raw_frame(FIN | 7, b"", mask=m), 1002, "opcode 0x7"),
    "opcode11": (lambda m: raw_frame(FIN | 11, b"", mask=m), 1002, "opcode 0xb"),
    "opcode15": (lambda m: raw_frame(FIN | 15, b"", mask=m), 1002, "opcode 0xf"),
    "long ping": (lambda m: raw_frame(FIN | PING, b"p" * 126, mask=m), 1002, "125"),
    "long close": (lambda m: raw_frame(FIN | CLOSE, b"\x03\xe8" + b"r" * 124, mask=m),
                   1002, "125"),
    "fragmented ping": (lambda m: raw_frame(PING, b"p", mask=m), 1002, "fragmented PING"),
    "fragmented close": (lambda m: raw_frame(CLOSE, b"", mask=m), 1002, "fragmented CLOSE"),
    "continuation first": (lambda m: raw_frame(FIN | CONT, b"x", mask=m), 1002,
                           "continuation"),
    "text during text": (lambda m: raw_frame(TEXT, b"a", mask=m)
                         + raw_frame(FIN | TEXT, b"b", mask=m), 1002, "TEXT frame while"),
    "binary during text": (lambda m: raw_frame(TEXT, b"a", mask=m)
                           + raw_frame(BINARY, b"b", mask=m), 1002, "BINARY frame while"),
    "wrong masking": (lambda m: raw_frame(FIN | TEXT, b"x", mask=not m), 1002, "masked"),
    "64-bit msb": (lambda m: raw_frame(FIN | BINARY, mask=m,
                                       length=b"\x7f" + struct.pack("!Q", 2**63 + 70_000)),
                   1002, "top bit"),
    "16-bit too short": (lambda m: raw_frame(FIN | BINARY, b"x" * 5, mask=m,
                                             length=b"\x7e\x00\x05"), 1002, "16 bits"),
    "64-bit too short": (lambda m: raw_frame(FIN | BINARY, b"x" * 300, mask=m,
                                             length=b"\x7f" + struct.pack("!Q", 300)),
                         1002, "64 bits"),
    "bad utf-8": (lambda m: raw_frame(FIN | TEXT, b"ok \xff", mask=m), 1007, "UTF-8"),
    "truncated utf-8": (lambda m: raw_frame(FIN | TEXT, "é".encode()[:1], mask=m),
                        1007, "UTF-8"),
    "surrogate utf-8": (lambda m: raw_frame(FIN | TEXT, b"\xed\xa0\x80", mask=m),
                        1007, "UTF-8"),
    "bad utf-8 fragmented": (lambda m: raw_frame(TEXT, "é".encode()[:1], mask=m)
                             + raw_frame(FIN | CONT, b"x", mask=m), 1007, "UTF-8"),
}


def preamble(mask: bool) -> tuple[bytes, list[tuple[Opcode, bytes]]]:
    writer = FrameWriter(mask=mask)
    data = (writer.frame(Opcode.TEXT, "héllo".encode())
            + writer.frame(Opcode.PING, b"1")
            + writer.frame(Opcode.BINARY, b"ab", fin=False)
            + writer.frame(Opcode.CONTINUATION, b"cd"))
    return data, [(Opcode.TEXT, "héllo".encode()), (Opcode.PING, b"1"),
                  (Opcode.BINARY, b"abcd")]


@pytest.mark.parametrize("mask", [True, False], ids=["server-reader", "client-reader"])
@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_violation(name: str, mask: bool) -> None:
    make, code, words = VIOLATIONS[name]
    good, kept = preamble(mask)
    bad = make(mask)
    tail = FrameWriter(mask=mask).frame(Opcode.TEXT, b"never seen")

    # Whole: messages completed before the violation are returned.
    reader = FrameReader(expect_masked=mask)
    assert reader.feed(good + bad + tail) == kept
    assert isinstance(reader.error, RemoteProtocolError)
    assert reader.error.close_code == code
    assert words in str(reader.error)
    error = reader.error
    assert reader.feed(tail) == []
    assert reader.feed(good) == []
    assert reader.error is error

    # Byte by byte: the same messages, the same error.
    reader = FrameReader(expect_masked=mask)
    assert read_chunks(reader, bytewise(good + bad + tail)) == kept
    assert reader.error is not None
    assert reader.error.close_code == code
    assert str(reader.error) == str(error)

    # wsproto agrees that this is a violation with this close code.
    peer = Connection(ConnectionType.SERVER if mask else ConnectionType.CLIENT)
    got = wsproto_receive(peer, [good + bad])
    assert got[:-1] == normalise(kept)
    assert got[-1][:2] == ("close", code)


@pytest.mark.parametrize("mask", [True, False])
def test_violation_found_from_header_alone(mask: bool) -> None:
    # Header problems are reported before the payload arrives.
    for name in ("rsv1", "opcode3", "long ping", "wrong masking", "64-bit msb",
                 "continuation first", "text during text"):
        make, code, _ = VIOLATIONS[name]
        frames = make(mask)
        reader = FrameReader(expect_masked=mask)
        header_end = len(frames) - 1 if name != "64-bit msb" else len(frames)
        read_chunks(reader, bytewise(frames[:header_end]))
        assert reader.error is not None, name
        assert reader.error.close_code == code


@pytest.mark.parametrize("mask", [True, False])
def test_message_too_big_single_frame(mask: bool) -> None:
    good, kept = preamble(mask)
    writer = FrameWriter(mask=mask)
    reader = FrameReader(expect_masked=mask, max_message_size=1000)
    assert reader.feed(good + writer.frame(Opcode.BINARY, b"x" * 1000)) == [
        *kept, (Opcode.BINARY, b"x" * 1000)]
    big = writer.frame(Opcode.BINARY, b"x" * 1001)
    header = big[: 4 + (4 if mask else 0)]
    # The header alone is enough: nothing of the payload gets buffered.
    assert reader.feed(good + header) == kept
    assert isinstance(reader.error, MessageTooBig)
    assert reader.error.close_code == 1009
    assert (reader.error.size, reader.error.limit) == (1001, 1000)
    assert "message of 1001 bytes" in str(reader.error)
    assert reader.buffered == 0
    assert reader.feed(big[len(header):]) == []


@pytest.mark.parametrize("mask", [True, False])
def test_message_too_big_across_fragments(mask: bool) -> None:
    writer = FrameWriter(mask=mask)
    frames = [writer.frame(Opcode.TEXT, b"a" * 400, fin=False),
              writer.frame(Opcode.PING, b"p" * 125),  # control frames do not count
              writer.frame(Opcode.CONTINUATION, b"b" * 400, fin=False),
              writer.frame(Opcode.CONTINUATION, b"c" * 201)]
    reader = FrameReader(expect_masked=mask, max_message_size=1000)
    assert reader.feed(b"".join(frames)) == [(Opcode.PING, b"p" * 125)]
    assert isinstance(reader.error, MessageTooBig)
    assert reader.error.size == 1001
    # At the limit exactly, it passes.
    frames[-1] = writer.frame(Opcode.CONTINUATION, b"c" * 200)
    reader = FrameReader(expect_masked=mask, max_message_size=1000)
    assert reader.feed(b"".join(frames)) == [
        (Opcode.PING, b"p" * 125), (Opcode.TEXT, b"a" * 400 + b"b" * 400 + b"c" * 200)]
    assert reader.error is None


def test_control_frames_obey_a_tiny_limit() -> None:
    reader = FrameReader(expect_masked=False, max_message_size=10)
    assert reader.feed(b"\x89\x0a" + b"p" * 10) == [(Opcode.PING, b"p" * 10)]
    reader.feed(b"\x89\x0b" + b"p" * 11)
    assert isinstance(reader.error, MessageTooBig)


def test_no_limit() -> None:
    reader = FrameReader(expect_masked=False, max_message_size=None)
    header = b"\x82\x7f" + struct.pack("!Q", 2**62)
    assert reader.feed(header + b"x" * 10) == []
    assert reader.error is None
    assert reader.buffered == len(header) + 10
    with pytest.raises(ValueError):
        FrameReader(expect_masked=False, max_message_size=-1)


def test_fragmented_text_fails_on_the_bad_fragment() -> None:
    writer = FrameWriter(mask=False)
    reader = FrameReader(expect_masked=False)
    assert reader.feed(writer.frame(Opcode.TEXT, "€".encode()[:2], fin=False)) == []
    assert reader.error is None
    assert reader.feed(writer.frame(Opcode.CONTINUATION, b"x", fin=False)) == []
    assert reader.error is not None
    assert reader.error.close_code == 1007


@pytest.mark.parametrize("mask", [True, False])
def test_input_after_close_is_ignored(mask: bool) -> None:
    writer = FrameWriter(mask=mask)
    good, kept = preamble(mask)
    close = writer.close_frame(1001, "going")
    after = writer.frame(Opcode.TEXT, b"late") + b"\xff\xff garbage"
    for chunks in ([good + close + after], bytewise(good + close + after)):
        reader = FrameReader(expect_masked=mask)
        assert read_chunks(reader, chunks) == [*kept, (Opcode.CLOSE, b"\x03\xe9going")]
        assert reader.close_received
        assert reader.error is None
        assert reader.buffered == 0
        assert reader.feed(after) == []


def test_large_frame_in_small_chunks() -> None:
    payload = os.urandom(1_000_003)
    for mask in (True, False):
        data = FrameWriter(mask=mask).frame(Opcode.BINARY, payload)
        reader = FrameReader(expect_masked=mask)
        got = []
        for i in range(0, len(data), 4096):
            got += reader.feed(data[i:i + 4096])
            if not got:
                assert reader.buffered == min(i + 4096, len(data))
        assert got == [(Opcode.BINARY, payload)]
        assert reader.buffered == 0


# --------------------------------------------------------------------------
# Close payloads


def wsproto_close_verdict(payload: bytes) -> tuple[int, str] | int:
    """wsproto's reading of a close payload: (code, reason), or the failure code."""
    peer = Connection(ConnectionType.CLIENT)
    (event,) = wsproto_receive(peer, [bytes([0x88, len(payload)]) + payload])
    _, code, reason = event
    assert isinstance(code, int) and isinstance(reason, str)
    if code in (1002, 1007) and ("CLOSE" in reason or "decoding" in reason):
        return code
    return code, reason


def our_close_verdict(payload: bytes) -> tuple[int, str] | int:
    try:
        return parse_close_payload(payload)
    except RemoteProtocolError as exc:
        return exc.close_code


def test_parse_close_payload_basics() -> None:
    assert parse_close_payload(b"") == (1005, "")
    assert parse_close_payload(b"\x03\xe8") == (1000, "")
    assert parse_close_payload(b"\x0f\xa0ok \xc3\xa9") == (4000, "ok é")
    for payload, code in [(b"\x03", 1002), (b"\x03\xe8\xff", 1007), (b"\x03\xed", 1002)]:
        with pytest.raises(RemoteProtocolError) as info:
            parse_close_payload(payload)
        assert info.value.close_code == code


def test_close_codes_against_wsproto() -> None:
    for code in [*range(0, 5100), 9999, 65535]:
        payload = struct.pack("!H", code) + b"r"
        ours = our_close_verdict(payload)
        assert (ours != 1002) == is_valid_close_code(code)
        if code == 1014:
            # Registered with IANA ("Bad Gateway"); wsproto's table predates it.
            assert ours == (1014, "r")
            continue
        assert ours == wsproto_close_verdict(payload), code


@FRAMES
@given(st.binary(max_size=125))
def test_close_payloads_against_wsproto(payload: bytes) -> None:
    if payload[:2] == b"\x03\xf6":  # 1014, see above
        return
    assert our_close_verdict(payload) == wsproto_close_verdict(payload)


# --------------------------------------------------------------------------
# Garbage


frame_like = st.builds(
    lambda b0, b1, ext, body: bytes([b0, b1]) + ext + body,
    st.integers(0, 255) | st.sampled_from([0x81, 0x82, 0x01, 0x00, 0x80, 0x89, 0x88]),
    st.integers(0, 255) | st.sampled_from([0x7E, 0x7F, 0xFE, 0xFF, 0x05, 0x85]),
    st.binary(max_size=8),
    st.binary(max_size=40),
)


@settings(FRAMES, max_examples=300)
@given(st.lists(st.binary(max_size=50) | frame_like, max_size=8),
       st.booleans(), st.sampled_from([None, 0, 10, 1000, 2**20]),
       st.lists(st.integers(0, 1000), max_size=5))
def test_garbage_never_raises(parts: list[bytes], mask: bool, limit: int | None,
                              cuts: list[int]) -> None:
    data = b"".join(parts)
    outcomes = []
    for chunks in ([data], chunked(data, cuts), bytewise(data)):
        reader = FrameReader(expect_masked=mask, max_message_size=limit)
        got = read_chunks(reader, chunks)
        assert reader.error is None or isinstance(reader.error, RemoteProtocolError)
        for opcode, payload in got:
            assert opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE, Opcode.PING,
                              Opcode.PONG)
            assert type(payload) is bytes
            if opcode is Opcode.TEXT:
                payload.decode()
        outcomes.append((got, reader.error and (type(reader.error), str(reader.error))))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def wsproto_frame_level(data: bytes, *, client: bool) -> tuple[list[Norm], int | None]:
    """wsproto's framing layer on ``data``: messages up to the first close, failure code."""
    proto = FrameProtocol(client=client, extensions=[])
    proto.receive_bytes(data)
    out: list[Norm] = []
    parts: list[str | bytes] = []
    try:
        for frame in proto.received_frames():
            if frame.opcode is WsOpcode.CLOSE:
                assert isinstance(frame.payload, tuple)
                code, reason = frame.payload
                out.append(("close", int(code), reason))
                break
            payload = frame.payload
            assert isinstance(payload, str | bytes | bytearray)
            if frame.opcode in (WsOpcode.PING, WsOpcode.PONG):
                assert not isinstance(payload, str)
                out.append((frame.opcode.name.lower(), bytes(payload)))
                continue
            parts.append(payload if isinstance(payload, str) else bytes(payload))
            if frame.message_finished:
                if frame.opcode is WsOpcode.TEXT:
                    out.append(("text", "".join(p for p in parts if isinstance(p, str))))
                else:
                    out.append(("binary", b"".join(p for p in parts if isinstance(p, bytes))))
                parts = []
    except ParseFailed as exc:
        return out, int(exc.code)
    return out, None


def our_frame_level(data: bytes, *, client: bool) -> tuple[list[Norm], int | None, int]:
    reader = FrameReader(expect_masked=not client, max_message_size=None)
    messages = reader.feed(data)
    code = reader.error.close_code if reader.error else None
    try:
        got = normalise(messages)
    except RemoteProtocolError as exc:  # a bad close payload, always the last message
        got, code = normalise(messages[:-1]), exc.close_code
    return got, code, reader.buffered


frame_soup_part = st.builds(
    lambda b0, mask, length, key, body: (
        bytes([b0, length[0] | (0x80 if mask else 0)]) + length[1:]
        + (key if mask else b"") + body),
    st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x89, 0x8A, 0x88, 0x09])
    | st.integers(0, 255),
    st.booleans(),
    st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x05", b"\x7d", b"\x7e\x00\x82",
                     b"\x7e\x00\x05", b"\x7f" + struct.pack("!Q", 70_000),
                     b"\x7f" + struct.pack("!Q", 300), b"\x7f" + struct.pack("!Q", 2**63 + 5)]),
    st.binary(min_size=4, max_size=4),
    st.binary(max_size=10) | st.sampled_from(["é€😀".encode()[:k] for k in range(10)])
    | st.sampled_from([b"\x03\xe8", b"\x03\xe8ok", b"\x0b\xb8\xff", b"\x03\xed"]),
) | st.binary(max_size=12)


@settings(FRAMES, max_examples=500)
@given(st.lists(frame_soup_part, min_size=1, max_size=5), st.booleans())
def test_frame_soup_against_wsproto(parts: list[bytes], client: bool) -> None:
    data = b"".join(parts)
    theirs, their_code = wsproto_frame_level(data, client=client)
    ours, our_code, buffered = our_frame_level(data, client=client)
    if ours and ours[-1][:2] == ("close", 1014):
        return  # a valid code for us, see test_close_codes_against_wsproto
    if our_code is not None and their_code is None:
        # We judge from the header alone; wsproto waits for the payload first.
        assert ours == theirs
        assert buffered == 0
        return
    if their_code == 1007 and our_code is None:
        # wsproto also validates the UTF-8 of a frame that is still incomplete.
        assert ours == theirs
        assert buffered > 0
        return
    assert (ours, our_code) == (theirs, their_code)
