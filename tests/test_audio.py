"""Tests of s2s_core.audio: int16 conversion, framing, G.711, WAV, resampling."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from s2s_core.audio import (
    Resampler,
    WavStreamDecoder,
    WavStreamWriter,
    alaw_decode,
    alaw_encode,
    bytes_per_80ms,
    decode_raw,
    encode_raw,
    float_to_int16,
    frame_bytes,
    pcm16_view,
    read_wav,
    resample,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
    wav_header,
    write_wav,
)
from s2s_core.errors import InvalidAudio
from s2s_core.formats import Direction, lookup_format

int16_arrays = hnp.arrays(np.int16, st.integers(0, 300))


def ints(data: bytes) -> list[int]:
    return [int(v) for v in np.frombuffer(data, dtype="<i2")]


# --------------------------------------------------------------------------
# to_pcm16 / float_to_int16 / pcm16_view
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_protocol_float_vector(dtype: type[np.floating]) -> None:
    audio = np.array([1.0, -1.0, 0.5, 1.5, -1.5, 0.0], dtype=dtype)
    assert ints(to_pcm16(audio)) == [32767, -32768, 16384, 32767, -32768, 0]


def test_protocol_int16_vector() -> None:
    audio = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert to_pcm16(audio).hex() == "00000100ffffff7f0080"


def test_int16_output_is_little_endian_for_big_endian_input() -> None:
    audio = np.array([1, -2, 300], dtype=">i2")
    assert to_pcm16(audio) == np.array([1, -2, 300], dtype="<i2").tobytes()


def test_float_special_values() -> None:
    audio = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 3e38], dtype=np.float64)
    assert float_to_int16(audio).tolist() == [0, 32767, -32768, 32767, -32768, 32767]
    single = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1.0001], dtype=np.float32)
    assert float_to_int16(single).tolist() == [0, 32767, -32768, 32767, -32768, 32767]


def test_float_rounds_half_to_even() -> None:
    audio = np.array([0.5, 1.5, 2.5, -0.5, -1.5], dtype=np.float64) / 32768
    assert float_to_int16(audio).tolist() == [0, 2, 2, 0, -2]


def test_float_to_int16_keeps_shape_and_rejects_ints() -> None:
    assert float_to_int16(np.zeros((3, 2), dtype=np.float32)).shape == (3, 2)
    with pytest.raises(InvalidAudio, match="int16"):
        float_to_int16(np.zeros(3, dtype=np.int16))


@given(hnp.arrays(np.float64, st.integers(0, 200),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_float_to_int16_matches_scalar_reference(audio: npt.NDArray[np.float64]) -> None:
    def reference(x: float) -> int:
        if x != x:
            return 0
        if x >= 1.0:
            return 32767
        if x <= -1.0:
            return -32768
        return max(-32768, min(32767, round(x * 32768)))  # round() is half to even

    assert float_to_int16(audio).tolist() == [reference(x) for x in audio.tolist()]


@given(hnp.arrays(np.float32, st.integers(0, 200),
                  elements=st.floats(-2, 2, width=32)))
def test_float32_and_float64_agree(audio: npt.NDArray[np.float32]) -> None:
    assert to_pcm16(audio) == to_pcm16(audio.astype(np.float64))


def test_bytes_pass_through_and_odd_length() -> None:
    raw = b"\x01\x02\x03\x04"
    assert to_pcm16(raw) is raw
    assert to_pcm16(bytearray(raw)) == raw
    assert to_pcm16(memoryview(raw)) == raw
    with pytest.raises(InvalidAudio, match="3 bytes"):
        to_pcm16(b"\x01\x02\x03")
    with pytest.raises(InvalidAudio, match="5 bytes"):
        pcm16_view(b"\x00" * 5)


@pytest.mark.parametrize("dtype", ["int32", "uint8", "float16", "complex64", "int64"])
def test_unsupported_dtype_named(dtype: str) -> None:
    with pytest.raises(InvalidAudio, match=dtype):
        to_pcm16(np.zeros(4, dtype=dtype))


def test_unsupported_types_and_shapes() -> None:
    with pytest.raises(InvalidAudio, match="list"):
        to_pcm16([0.0, 1.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidAudio, match="shape"):
        to_pcm16(np.zeros((2, 2, 2), dtype=np.int16))


def test_stereo_needs_downmix() -> None:
    # Three rows would be ambiguous (either side could be the channels): 9 are not.
    stereo = np.tile(np.array([[100, 300], [-5, -6], [32767, 32767]], dtype=np.int16), (3, 1))
    with pytest.raises(InvalidAudio, match="downmix=True"):
        to_pcm16(stereo)
    assert ints(to_pcm16(stereo, downmix=True)) == [200, -6, 32767] * 3  # -5.5 rounds to even
    floats = np.tile(np.array([[1.0, 1.0], [0.5, -0.5], [0.25, 0.75]]), (3, 1))
    assert ints(to_pcm16(floats, downmix=True)) == [32767, 0, 16384] * 3
    single = np.array([[1], [2]], dtype=np.int16)
    assert ints(to_pcm16(single)) == [1, 2]


def test_non_contiguous_int16() -> None:
    audio = np.arange(10, dtype=np.int16)[::3]
    assert ints(to_pcm16(audio)) == [0, 3, 6, 9]


@given(int16_arrays)
def test_int16_bytes_view_round_trip(audio: npt.NDArray[np.int16]) -> None:
    view = pcm16_view(to_pcm16(audio))
    assert view.dtype == np.dtype("<i2")
    assert np.array_equal(view, audio)


def test_pcm16_view_is_zero_copy_and_read_only() -> None:
    buffer = bytearray(b"\x01\x00\xff\xff")
    view = pcm16_view(buffer)
    assert view.tolist() == [1, -1]
    assert not view.flags.writeable
    buffer[0] = 2
    assert view[0] == 2


# --------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------


def test_bytes_per_80ms_table() -> None:
    assert bytes_per_80ms("pcm", Direction.INPUT) == 3840
    assert bytes_per_80ms("pcm", Direction.OUTPUT) == 7680
    expected = {8000: 1280, 16000: 2560, 22050: 3528, 24000: 3840, 44100: 7056, 48000: 7680}
    for rate, size in expected.items():
        assert bytes_per_80ms(f"pcm_{rate}", Direction.INPUT) == size
    assert bytes_per_80ms("ulaw_8000", Direction.INPUT) == 640
    assert bytes_per_80ms("mulaw_8000", Direction.OUTPUT) == 640
    assert bytes_per_80ms("alaw_8000", Direction.INPUT) == 640
    assert bytes_per_80ms("wav", Direction.INPUT) is None
    assert bytes_per_80ms("opus", Direction.OUTPUT) is None


@given(st.binary(max_size=2000), st.integers(1, 700))
def test_frame_bytes(data: bytes, size: int) -> None:
    frames = list(frame_bytes(data, size))
    assert b"".join(frames) == data
    assert all(len(f) == size for f in frames[:-1])
    if frames:
        assert 0 < len(frames[-1]) <= size


def test_frame_bytes_rejects_zero() -> None:
    with pytest.raises(ValueError):
        list(frame_bytes(b"ab", 0))


# --------------------------------------------------------------------------
# G.711, against slow per-sample references written from the spec
# --------------------------------------------------------------------------


def ref_ulaw_encode(x: int) -> int:
    sign = 0x80 if x < 0 else 0
    magnitude = min(-x if x < 0 else x, 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ref_ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    exponent = (code >> 4) & 7
    mantissa = code & 0x0F
    magnitude = ((2 * mantissa + 33) << exponent) * 4 - 132
    return -magnitude if code & 0x80 else magnitude


def ref_alaw_encode(x: int) -> int:
    # 13-bit magnitude, one's complement for negatives (ITU-T G.191 style).
    magnitude = (~x if x < 0 else x) >> 4
    if magnitude > 15:
        exponent = 1
        while magnitude > 31:
            magnitude >>= 1
            exponent += 1
        magnitude = (magnitude - 16) + (exponent << 4)
    if x >= 0:
        magnitude |= 0x80
    return magnitude ^ 0x55


def ref_alaw_decode(code: int) -> int:
    code ^= 0x55
    exponent = (code >> 4) & 7
    mantissa = code & 0x0F
    segment_base = 2 * mantissa + 1 if exponent == 0 else (2 * mantissa + 33) << (exponent - 1)
    magnitude = segment_base << 3
    return magnitude if code & 0x80 else -magnitude


ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_g711_known_values() -> None:
    zero = np.zeros(1, dtype=np.int16)
    assert ulaw_encode(zero) == b"\xff"
    assert alaw_encode(zero) == b"\xd5"
    assert ulaw_decode(b"\xff\x7f\x00\x80").tolist() == [0, 0, -32124, 32124]
    assert alaw_decode(b"\xd5\x55\x2a\xaa").tolist() == [8, -8, -32256, 32256]
    extremes = np.array([32767, -32768], dtype=np.int16)
    assert ulaw_encode(extremes) == b"\x80\x00"
    assert alaw_encode(extremes) == b"\xaa\x2a"


def test_ulaw_tables_match_reference() -> None:
    assert list(ulaw_encode(ALL_INT16)) == [ref_ulaw_encode(x) for x in range(-32768, 32768)]
    assert ulaw_decode(ALL_CODES).tolist() == [ref_ulaw_decode(c) for c in range(256)]


def test_alaw_tables_match_reference() -> None:
    assert list(alaw_encode(ALL_INT16)) == [ref_alaw_encode(x) for x in range(-32768, 32768)]
    assert alaw_decode(ALL_CODES).tolist() == [ref_alaw_decode(c) for c in range(256)]


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode),
                                                (alaw_encode, alaw_decode)])
def test_g711_decode_encode_is_stable(
    encode: Callable[[npt.NDArray[np.int16]], bytes],
    decode: Callable[[bytes], npt.NDArray[np.int16]],
) -> None:
    decoded = decode(ALL_CODES)
    assert np.array_equal(decode(encode(decoded)), decoded)
    # Quantization error stays within half a step of the 13/14-bit companding.
    error = np.abs(decode(encode(ALL_INT16)).astype(np.int32) - ALL_INT16)
    assert error.max() <= 1024


def test_g711_rejects_non_int16_and_accepts_strided() -> None:
    with pytest.raises(InvalidAudio, match="int32"):
        ulaw_encode(np.zeros(2, dtype=np.int32))
    strided = ALL_INT16[::1000]
    assert ulaw_encode(strided) == ulaw_encode(strided.copy())


def test_decode_encode_raw() -> None:
    pcm = np.array([0, 1000, -1000], dtype=np.int16)
    pcm_fmt = lookup_format("pcm_16000", Direction.INPUT)
    assert decode_raw(encode_raw(pcm, pcm_fmt), pcm_fmt).tolist() == pcm.tolist()
    ulaw = lookup_format("mulaw_8000", Direction.INPUT)
    assert encode_raw(pcm, ulaw) == ulaw_encode(pcm)
    assert decode_raw(b"\xff", ulaw).tolist() == [0]
    alaw = lookup_format("alaw_8000", Direction.OUTPUT)
    expected = alaw_decode(alaw_encode(pcm)).tolist()
    assert decode_raw(encode_raw(pcm, alaw), alaw).tolist() == expected
    wav = lookup_format("wav", Direction.INPUT)
    with pytest.raises(InvalidAudio, match="wav"):
        decode_raw(b"", wav)
    with pytest.raises(InvalidAudio, match="wav"):
        encode_raw(pcm, wav)


# --------------------------------------------------------------------------
# WAV
# --------------------------------------------------------------------------


def make_wav(
    payload: bytes,
    *,
    rate: int = 16000,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    extensible: bool = False,
    extra_chunks: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    data_size: int | None = None,
    trailer: bytes = b"",
) -> bytes:
    """Build a WAV file by hand (independent of the module's writer)."""
    block = channels * bits // 8
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits,
                          22, bits, 0) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    for chunk_id, content in extra_chunks:
        body += chunk_id + struct.pack("<I", len(content)) + content + b"\x00" * (len(content) & 1)
    size = len(payload) if data_size is None else data_size
    body += b"data" + struct.pack("<I", size) + payload + trailer
    return b"RIFF" + struct.pack("<I", len(body)) + body


def int24_bytes(values: npt.NDArray[np.int32]) -> bytes:
    return b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)


def test_wav_header_layout() -> None:
    header = wav_header(48000)
    assert len(header) == 44
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", header, 4)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", header, 40)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<HHIIHH", header, 20) == (1, 1, 48000, 96000, 2, 16)
    sized = wav_header(8000, channels=2, data_size=100)
    assert struct.unpack_from("<I", sized, 4)[0] == 136
    assert struct.unpack_from("<I", sized, 40)[0] == 100
    with pytest.raises(InvalidAudio):
        wav_header(8000, data_size=1 << 32)


@settings(deadline=None)
@given(hnp.arrays(np.int16, st.tuples(st.integers(0, 200), st.integers(1, 3))),
       st.sampled_from([8000, 16000, 44100, 48000]))
def test_wav_write_read_round_trip(audio: npt.NDArray[np.int16], rate: int) -> None:
    file = io.BytesIO()
    channels = audio.shape[1]
    data = audio if channels > 1 else audio[:, 0]
    write_wav(file, data, rate, channels=channels)
    wav = read_wav(file.getvalue())
    assert (wav.sample_rate, wav.channels, wav.bits_per_sample) == (rate, channels, 16)
    assert np.array_equal(wav.samples, data)
    assert len(file.getvalue()) == 44 + audio.size * 2


def test_write_wav_to_path(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    write_wav(path, np.array([0.5, -0.5]), 24000)
    wav = read_wav(path.read_bytes())
    assert wav.samples.tolist() == [16384, -16384]
    assert wav.duration_s == pytest.approx(2 / 24000)


@given(hnp.arrays(np.int32, st.integers(0, 100), elements=st.integers(-(1 << 23), (1 << 23) - 1)))
def test_read_24_bit(values: npt.NDArray[np.int32]) -> None:
    wav = read_wav(make_wav(int24_bytes(values), bits=24))
    assert wav.bits_per_sample == 24
    assert wav.samples.tolist() == (values >> 8).tolist()


def test_read_32_bit_float_8_bit_and_extensible() -> None:
    ints32 = np.array([1 << 30, -(1 << 30), -1, 0x7FFFFFFF], dtype="<i4")
    assert read_wav(make_wav(ints32.tobytes(), bits=32)).samples.tolist() == [
        16384, -16384, -1, 32767
    ]
    floats = np.array([1.0, -1.0, 0.5, np.nan], dtype="<f4")
    expected = [32767, -32768, 16384, 0]
    assert read_wav(make_wav(floats.tobytes(), bits=32, tag=3)).samples.tolist() == expected
    doubles = floats.astype("<f8").tobytes()
    assert read_wav(make_wav(doubles, bits=64, tag=3)).samples.tolist() == expected
    assert read_wav(make_wav(bytes([0, 128, 255]), bits=8)).samples.tolist() == [
        -32768, 0, 32512
    ]
    ext = read_wav(make_wav(floats.tobytes(), bits=32, tag=3, extensible=True))
    assert ext.samples.tolist() == expected
    ext24 = read_wav(make_wav(int24_bytes(np.array([256, -256])), bits=24, extensible=True))
    assert ext24.samples.tolist() == [1, -1]


def test_read_stereo_and_mono() -> None:
    stereo = np.array([[1, 3], [-4, -8]], dtype="<i2")
    wav = read_wav(make_wav(stereo.tobytes(), channels=2))
    assert wav.samples.tolist() == [[1, 3], [-4, -8]]
    assert wav.mono().tolist() == [2, -6]


def test_read_skips_unknown_chunks_with_padding() -> None:
    payload = np.array([7, -7], dtype="<i2").tobytes()
    data = make_wav(payload, extra_chunks=[(b"LIST", b"odd"), (b"junk", b"")],
                    trailer=b"LIST\x02\x00\x00\x00ab")
    assert read_wav(data).samples.tolist() == [7, -7]


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_read_streaming_sizes_mean_until_end(size: int) -> None:
    payload = np.array([1, 2, 3], dtype="<i2").tobytes() + b"\x09"  # partial frame dropped
    assert read_wav(make_wav(payload, data_size=size)).samples.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"OggS" + b"\x00" * 60, "not a WAV"),
        (b"RIFF\x00\x00\x00\x00AVI " + b"\x00" * 40, "not a WAV"),
        (make_wav(b"", tag=2), "format tag"),
        (make_wav(b"", bits=12), "12 bits"),
        (make_wav(b"", tag=3, bits=16), "16 bits"),
        (make_wav(b"")[:30], "truncated"),
        (make_wav(b"")[:40], "truncated"),
        (b"RIFF", "truncated"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "before the fmt"),
    ],
)
def test_read_wav_errors(data: bytes, match: str) -> None:
    with pytest.raises(InvalidAudio, match=match):
        read_wav(data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


@settings(deadline=None)
@given(
    hnp.arrays(np.int32, st.integers(0, 120), elements=st.integers(-(1 << 23), (1 << 23) - 1)),
    st.sampled_from([(16, 1), (16, 2), (24, 1), (24, 2), (32, 1)]),
    st.lists(st.integers(0, 600), max_size=12),
    st.booleans(),
)
def test_wav_stream_decoder_any_chunking(
    values: npt.NDArray[np.int32], layout: tuple[int, int], cuts: list[int], sized: bool
) -> None:
    bits, channels = layout
    values = values[: len(values) - len(values) % channels]
    if bits == 16:
        payload = (values >> 8).astype("<i2").tobytes()
    elif bits == 24:
        payload = int24_bytes(values)
    else:
        payload = (values.astype(np.int64) << 8).astype("<i4").tobytes()
    wav_bytes = make_wav(payload, channels=channels, bits=bits,
                         extra_chunks=[(b"LIST", b"abc")],
                         data_size=None if sized else 0xFFFFFFFF,
                         trailer=b"LIST\x04\x00\x00\x00tail" if sized else b"")
    expected = read_wav(wav_bytes).mono()
    decoder = WavStreamDecoder()
    assert decoder.sample_rate is None
    out = [decoder.feed(piece) for piece in chunked(wav_bytes, cuts)]
    assert decoder.sample_rate == 16000
    assert decoder.channels == channels
    assert np.concatenate([np.empty(0, np.int16), *out]).tolist() == expected.tolist()


def test_wav_stream_decoder_rejects_garbage_early() -> None:
    decoder = WavStreamDecoder()
    assert decoder.feed(b"RI").size == 0
    with pytest.raises(InvalidAudio, match="not a WAV"):
        decoder.feed(b"FX")


class NonSeekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        chunk = bytes(b)  # type: ignore[call-overload]
        self.data += chunk
        return len(chunk)


def test_wav_stream_writer_patches_sizes() -> None:
    file = io.BytesIO()
    file.write(b"prefix")
    with WavStreamWriter(file, 22050) as writer:
        writer.write(np.array([1, 2], dtype=np.int16))
        writer.write(b"\x03\x00")
        assert writer.data_size == 6
    blob = file.getvalue()[6:]
    assert blob[:44] == wav_header(22050, data_size=6)
    assert read_wav(blob).samples.tolist() == [1, 2, 3]
    assert file.tell() == len(file.getvalue())


def test_wav_stream_writer_non_seekable_keeps_streaming_sizes() -> None:
    file = NonSeekable()
    writer = WavStreamWriter(file, 8000)  # type: ignore[arg-type]
    writer.write(np.array([5, -5], dtype=np.int16))
    writer.close()
    writer.close()
    assert bytes(file.data[:44]) == wav_header(8000)
    assert read_wav(bytes(file.data)).samples.tolist() == [5, -5]
    with pytest.raises(ValueError):
        writer.write(b"\x00\x00")


# --------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------

RATE_PAIRS = [
    (24000, 48000), (48000, 16000), (44100, 48000), (48000, 44100), (8000, 48000),
    (48000, 8000), (22050, 16000), (16000, 24000), (44101, 48000), (24000, 24000),
]


def sine(freq: float, rate: int, seconds: float, amplitude: float = 20000) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_hz(pcm: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(("src", "dst"), [(24000, 48000), (48000, 16000), (44100, 8000)])
def test_sine_keeps_its_frequency(src: int, dst: int) -> None:
    out = resample(sine(1000, src, 1.0), src, dst)
    assert len(out) == dst
    assert dominant_hz(out, dst) == pytest.approx(1000, abs=2)
    # The amplitude survives (passband), away from the edges.
    middle = out[dst // 4 : 3 * dst // 4]
    assert 19500 < np.abs(middle).max() <= 20001


def test_downsampling_removes_what_would_alias() -> None:
    tone = sine(10000, 48000, 0.5)  # above the 8 kHz Nyquist frequency of 16 kHz
    out = resample(tone, 48000, 16000)
    assert np.abs(out[400:-400]).max() <= 2


def test_same_rate_is_identity_copy() -> None:
    pcm = np.array([1, 2, 3], dtype=np.int16)
    out = resample(pcm, 16000, 16000)
    assert out.tolist() == [1, 2, 3]
    out[0] = 9
    assert pcm[0] == 1


def test_dc_is_preserved_exactly() -> None:
    pcm = np.full(8000, -1234, dtype=np.int16)
    for src, dst in RATE_PAIRS:
        out = resample(pcm, src, dst)
        assert set(out[400:-400].tolist()) == {-1234}, (src, dst)


@given(st.integers(0, 5000), st.sampled_from(RATE_PAIRS))
@settings(deadline=None, max_examples=50)
def test_output_length_rule(n: int, rates: tuple[int, int]) -> None:
    src, dst = rates
    out = resample(np.zeros(n, dtype=np.int16), src, dst)
    assert len(out) == (2 * n * dst + src) // (2 * src)  # floor(n * dst / src + 1/2)


@given(
    hnp.arrays(np.int16, st.integers(0, 3000)),
    st.sampled_from(RATE_PAIRS),
    st.lists(st.integers(0, 3000), max_size=10),
)
@settings(deadline=None, max_examples=60)
def test_streaming_equals_one_shot(
    pcm: npt.NDArray[np.int16], rates: tuple[int, int], cuts: list[int]
) -> None:
    src, dst = rates
    expected = resample(pcm, src, dst)
    resampler = Resampler(src, dst)
    points = sorted({min(c, len(pcm)) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(pcm)]:
        pieces.append(resampler.process(pcm[start:point]))
        start = point
    pieces.append(resampler.flush())
    assert np.concatenate(pieces).tobytes() == expected.tobytes()
    # flush() resets: the resampler can be reused for a new stream.
    again = np.concatenate((resampler.process(pcm), resampler.flush()))
    assert again.tobytes() == expected.tobytes()


def test_streaming_latency_is_bounded() -> None:
    resampler = Resampler(24000, 48000)
    out = sum(len(resampler.process(np.zeros(1920, dtype=np.int16))) for _ in range(10))
    # libsoxr emits in blocks of its own: at most 50 ms of output is held back.
    assert 2 * 19200 - 2400 <= out <= 2 * 19200


def test_resampler_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
    with pytest.raises(InvalidAudio, match="int16, float32 or float64"):
        Resampler(16000, 8000).process(np.zeros(4, dtype=np.int32))
    with pytest.raises(InvalidAudio, match=r"shape \(4, 2\)"):
        Resampler(16000, 8000).process(np.zeros((4, 2), dtype=np.int16))


@pytest.mark.parametrize(("src", "dst"), [(24000, 48000), (48000, 16000), (8000, 48000),
                                          (44100, 48000), (22050, 24000)])
def test_resampler_is_libsoxr_hq(src: int, dst: int) -> None:
    """int16 in, libsoxr HQ on float32, rounded back: nothing of our own in between."""
    import soxr

    rng = np.random.default_rng(src + dst)
    x = rng.integers(-20000, 20000, size=1000).astype(np.int16)
    expected = float_to_int16(soxr.resample(x.astype(np.float32) / 32768, src, dst, "HQ"))
    assert np.array_equal(resample(x, src, dst), expected)
    # Float input is resampled before it is quantized (once).
    f = rng.uniform(-0.9, 0.9, size=1000)
    expected = float_to_int16(soxr.resample(f.astype(np.float32), src, dst, "HQ"))
    assert np.array_equal(resample(f, src, dst), expected)
