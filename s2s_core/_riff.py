"""Where a WAV file's samples start, and giving a streamed WAV its real sizes.

Only the RIFF layout (chunk ids and sizes); what the ``fmt `` chunk says is
``read_wav``'s job. A WAV file is ``RIFF <size> WAVE`` then chunks of
``<id> <size> <body>`` padded to even sizes; ``fmt `` and any number of
others (LIST, bext, JUNK...) may precede ``data``. Streaming writers put
0xFFFFFFFF (or 0) in the RIFF and data sizes, since the length is not known
when the header goes out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import InvalidAudio

__all__ = ["MAX_WAV_HEADER", "WavLayout", "locate_wav_data", "with_real_wav_sizes"]

MAX_WAV_HEADER = 1 << 20
"""Bytes before the samples we accept (metadata chunks included): 1 MiB."""

_STREAMING_SIZES = (0, 0xFFFFFFFF)
_MAX_SIZE = 0xFFFFFFFF


@dataclass(frozen=True)
class WavLayout:
    """Where the samples are.

    Attributes:
        data_offset: Offset of the first sample byte (just after the data
            chunk's header).
        data_size: The data chunk's declared size, or None for the streaming
            sizes (0 or 0xFFFFFFFF: "until the end").
    """

    data_offset: int
    data_size: int | None


def locate_wav_data(head: bytes | bytearray | memoryview,
                    limit: int = MAX_WAV_HEADER) -> WavLayout | None:
    """Find the data chunk in the first bytes of a WAV file.

    Returns:
        The layout, or None when ``head`` ends before the data chunk's header
        (feed more bytes).

    Raises:
        InvalidAudio: Not RIFF/WAVE, or no data chunk within ``limit`` bytes.
    """
    size = len(head)
    if head[:4] != b"RIFF"[:min(size, 4)] or (size >= 12 and head[8:12] != b"WAVE"):
        raise InvalidAudio(f"not a WAV file: starts with {bytes(head[:12])!r}, "
                           "expected b'RIFF....WAVE'")
    pos = 12
    while pos + 8 <= size:
        chunk_id = bytes(head[pos:pos + 4])
        (chunk_size,) = struct.unpack_from("<I", head, pos + 4)
        if chunk_id == b"data":
            return WavLayout(pos + 8, None if chunk_size in _STREAMING_SIZES else chunk_size)
        pos += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
        _check_limit(pos, limit)
    _check_limit(size, limit)
    return None


def _check_limit(offset: int, limit: int) -> None:
    if offset > limit:
        raise InvalidAudio(f"WAV header: no data chunk within the first {limit} bytes "
                           f"(the limit on metadata before the audio; {offset} bytes seen)")


def with_real_wav_sizes(wav: bytes) -> bytes:
    """A whole WAV file whose streaming sizes (0xFFFFFFFF) are replaced by the real ones.

    The RIFF size becomes the file's length minus 8 and the data size the
    bytes after the data chunk's header (a pad byte is added when odd). A
    file with real sizes, or one that is not a WAV file with a data chunk,
    or one too large for 32-bit sizes, is returned unchanged.
    """
    try:
        layout = locate_wav_data(wav, limit=len(wav))
    except InvalidAudio:
        return wav
    if layout is None or layout.data_size is not None:
        return wav
    offset = layout.data_offset
    data_size = len(wav) - offset
    pad = b"\x00" if data_size & 1 else b""
    riff_size = len(wav) + len(pad) - 8
    if riff_size > _MAX_SIZE:
        return wav
    head = bytearray(wav[:offset])
    struct.pack_into("<I", head, 4, riff_size)
    struct.pack_into("<I", head, offset - 4, data_size)
    return b"".join((head, memoryview(wav)[offset:], pad))
