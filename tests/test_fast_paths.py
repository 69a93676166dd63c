"""The speed shortcuts give exactly what the general code gives (differential tests).

* ``decode_server_message`` takes a shortcut for ``audio`` messages (it finds
  the base64 string instead of letting the JSON parser scan it): compared with
  ``_decode_server_general`` on messages built to trip it up.
* ``FrameWriter``/``FrameReader`` mask with numpy or, when installed, websockets'
  C loop: both compared with a byte-by-byte mask.
* ``to_pcm16``/``float_to_int16`` have fast paths: compared with a scalar reference.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2s_core import _frames as frames
from s2s_core._frames import FrameReader, FrameWriter, Opcode
from s2s_core._wire import _decode_server_general, decode_server_message
from s2s_core.audio import float_to_int16, to_pcm16
from s2s_core.errors import RemoteProtocolError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def outcome(data: bytes) -> tuple[str, Any]:
    """What a decoder does with ``data``: the event, or the error class and text."""
    try:
        return "event", decode_server_message(data)
    except RemoteProtocolError as exc:
        return "error", (type(exc), str(exc))


def reference(data: bytes) -> tuple[str, Any]:
    try:
        return "event", _decode_server_general(data)
    except RemoteProtocolError as exc:
        return "error", (type(exc), str(exc))


def b64(n: int, seed: int = 0) -> str:
    return base64.b64encode(bytes((seed + i * 7) % 256 for i in range(n))).decode()


AUDIO = b64(3000)


def members(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Members of an audio message, in a random order, with tricky extras."""
    fields: list[tuple[str, Any]] = [("type", draw(st.sampled_from(
        ["audio", "audio", "audio", "text", "step", "ready"]))),
        ("audio", draw(st.sampled_from([AUDIO, AUDIO, AUDIO[:-1], AUDIO[:100] + "!" + AUDIO,
                                        "", AUDIO.replace("/", "\\/")])))]
    optional: list[tuple[str, Any]] = [
        ("start_s", draw(st.sampled_from([1.04, 0, None, "x"]))),
        ("stop_s", draw(st.floats(allow_nan=False, allow_infinity=False))),
        ("stream_id", draw(st.sampled_from([0, None, 3]))),
        ("client_req_id", draw(st.sampled_from(["r1", 'a"audio":"QUJD', "{[}]\\", None]))),
        ("meta", draw(st.sampled_from([{"audio": "QUJD"}, ["audio", {"audio": "QUJD"}],
                                       'x"audio":"QUJD']))),
        ("text", "hello"),
        ('odd"audio', "QUJD"),
        ("audio", draw(st.sampled_from(["QUJD", ""]))),  # a duplicate member
    ]
    fields += draw(st.lists(st.sampled_from(optional), max_size=4, unique_by=lambda kv: kv[0]))
    return draw(st.permutations(fields))


@st.composite
def audio_messages(draw: st.DrawFn) -> bytes:
    pairs = members(draw)
    compact = draw(st.booleans())
    sep = (",", ":") if compact else (", ", ": ")
    parts = [json.dumps(k) + sep[1] + json.dumps(v, separators=sep) for k, v in pairs]
    text = "{" + sep[0].join(parts) + "}"
    mutation = draw(st.sampled_from(["none", "none", "truncate", "trailing", "prefix"]))
    if mutation == "truncate":
        text = text[: draw(st.integers(1, len(text) - 1))]
    elif mutation == "trailing":
        text += draw(st.sampled_from([" ", "x", "}", ',"a":1}']))
    elif mutation == "prefix":
        text = draw(st.sampled_from([" ", "[", "\n"])) + text
    return text.encode()


@SETTINGS
@given(audio_messages())
def test_audio_shortcut_matches_the_general_decoder(data: bytes) -> None:
    assert outcome(data) == reference(data)


@pytest.mark.parametrize("data", [
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","start_s":1.0,"stop_s":1.08}',
    b'{"start_s":1.0,"audio":"' + AUDIO.encode() + b'","type":"audio"}',
    b'{"type":"audio","meta":{"audio":"QUJD"},"audio":"' + AUDIO.encode() + b'"}',
    b'{"text\\"audio":"QUJD","type":"audio","audio":"' + AUDIO.encode() + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","audio":"QUJD"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","audio":""}',
    b'{"type":"text","text":"a","start_s":0,"audio":"' + AUDIO.encode() + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.replace("/", "\\/").encode() + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'"',
    b'{"type":"audio","audio":"' + AUDIO.encode(),
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","type":"text","text":"x","start_s":0}',
])
def test_audio_shortcut_edge_cases(data: bytes) -> None:
    assert outcome(data) == reference(data)


def test_shortcut_taken_for_the_service_layout() -> None:
    from s2s_core._wire import _fast_audio, encode_server_audio

    pcm = bytes(range(256)) * 30
    message = encode_server_audio(pcm, 1.04, 1.12, stream_id=0, client_req_id="r")
    event = _fast_audio(message)
    assert event is not None and event.audio == pcm and event.client_req_id == "r"
    assert event == _decode_server_general(message)


MASKERS = ["python"] + (["accelerated"] if frames.MASK_ACCELERATED else [])


@pytest.fixture(params=MASKERS)
def masker(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with each masking implementation (numpy, and C when installed)."""
    python = request.param == "python"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(frames, "_xor", frames._xor_python if python else frames._xor_accelerated)
        patch.setattr(frames, "_mask_whole",
                      frames._mask_whole_python if python else frames._apply_mask)
        yield request.param


def masked_reference(key: bytes, payload: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@SETTINGS
@given(st.binary(max_size=3000) | st.integers(0, 200_000).map(lambda n: b"\x5a" * n),
       st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION]), st.booleans())
def test_masking_matches_a_byte_by_byte_reference(masker: str, payload: bytes, opcode: Opcode,
                                                  fin: bool) -> None:
    writer = FrameWriter(mask=True)
    frame = writer.frame(opcode, payload, fin=fin)
    n = len(payload)
    head = 2 if n < 126 else 4 if n < 65536 else 10
    key = frame[head:head + 4]
    assert frame[head + 4:] == masked_reference(key, payload)
    reader = FrameReader(expect_masked=True)
    if opcode is Opcode.BINARY and fin:
        assert reader.feed(frame) == [(opcode, payload)]


def test_masking_twice_in_a_row_and_interleaved_sizes(masker: str) -> None:
    writer = FrameWriter(mask=True)
    reader = FrameReader(expect_masked=True)
    payloads = [b"a" * n for n in (0, 1, 125, 126, 127, 5150, 65535, 65536, 70000, 3, 5150)]
    frames = [writer.frame(Opcode.BINARY, p) for p in payloads]
    assert [p for _, p in reader.feed(b"".join(frames))] == payloads


def scalar(x: float) -> int:
    if x != x:
        return 0
    if x >= 1.0:
        return 32767
    if x <= -1.0:
        return -32768
    return max(-32768, min(32767, round(x * 32768)))


@SETTINGS
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=3000),
       st.sampled_from([np.float32, np.float64]))
def test_float_conversion_matches_the_scalar_reference(values: list[float],
                                                       dtype: type[np.floating[Any]]) -> None:
    audio = np.array(values, dtype=dtype)
    expected = [scalar(float(x)) for x in audio.tolist()]
    assert float_to_int16(audio).tolist() == expected
    assert np.frombuffer(to_pcm16(audio), "<i2").tolist() == expected


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", ">f8"])
def test_float_conversion_of_any_byte_order_and_layout(dtype: str) -> None:
    values = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 1 / 65536, 3 / 65536, float("nan"),
              float("inf"), float("-inf")]
    expected = [scalar(x) for x in values]
    audio = np.array(values, dtype=dtype)
    assert float_to_int16(audio).tolist() == expected
    grid = np.array(values, dtype=dtype).reshape(3, 4)
    for layout in (grid, np.asfortranarray(grid), grid[:, ::2], grid.T):
        converted = float_to_int16(layout)
        assert converted.flags.c_contiguous and converted.dtype == np.int16
        assert converted.tolist() == [[scalar(x) for x in row] for row in layout.tolist()]


@pytest.mark.parametrize("dtype", ["<i2", ">i2", "=i2"])
def test_int16_fast_path(dtype: str) -> None:
    audio = np.arange(-1000, 1000, 3).astype(dtype)
    assert to_pcm16(audio) == np.arange(-1000, 1000, 3).astype("<i2").tobytes()
    assert to_pcm16(audio[::2]) == np.arange(-1000, 1000, 6).astype("<i2").tobytes()


# --- the send path: FrameWriter.text_frame and ClientProtocol._encode_audio_parts ------

def counting_keys(n: int) -> bytes:
    """A deterministic key source: two writers built on it draw the same keys."""
    return bytes((i * 37 + 11) % 256 for i in range(n))


SIZES = st.sampled_from([0, 1, 2, 3, 4, 5, 120, 125, 126, 127, 1000, 5148, 65535, 65536, 70000])


@SETTINGS
@given(st.lists(st.tuples(SIZES, SIZES, SIZES), min_size=1, max_size=4), st.booleans())
def test_text_frame_matches_frame_of_the_joined_payload(masker: str,
                                                        splits: list[tuple[int, int, int]],
                                                        mask: bool) -> None:
    fast = FrameWriter(mask=mask, key_source=counting_keys)
    reference_writer = FrameWriter(mask=mask, key_source=counting_keys)
    for i, (a, b, c) in enumerate(splits):
        head, body, tail = b"h" * a, bytes(range(256)) * (b // 256) + b"\x07" * (b % 256), b"t" * c
        if i % 2:  # the two kinds of calls share the key batch
            assert fast.frame(Opcode.PING, b"p") == reference_writer.frame(Opcode.PING, b"p")
        assert fast.text_frame(head, body, tail) == reference_writer.frame(
            Opcode.TEXT, head + body + tail)


def test_text_frame_across_key_refills(masker: str) -> None:
    fast = FrameWriter(mask=True, key_source=os_random_batches())
    reference_writer = FrameWriter(mask=True, key_source=os_random_batches())
    body = bytes(range(128)) * 40  # ASCII: valid as a text message
    for i in range(2100):  # many refills of 64 keys
        tail = b"}" * (i % 7)
        expected = reference_writer.frame(Opcode.TEXT, b"{" + body + tail)
        assert fast.text_frame(b"{", body, tail) == expected
    reader = FrameReader(expect_masked=True)
    assert reader.feed(expected) == [(Opcode.TEXT, b"{" + body + tail)]


def os_random_batches() -> Any:
    """A key source replaying the same random batches for every writer made from it."""
    import random

    rng = random.Random(5)
    batches = [rng.randbytes(256) for _ in range(40)]
    calls = iter(batches)
    return lambda n: next(calls)


def open_client(client_req_id: str | None = None) -> Any:
    """A client connection upgraded in memory, with a pcm request past its ready."""
    from s2s_core.connection import ClientConnection, ServerConnection, UpgradeRequest
    from s2s_core.setup import Setup

    client = ClientConnection("ws://127.0.0.1:9/s2s", ping_interval=None, ready_timeout=None)
    server = ServerConnection()
    client.send_setup(Setup(voice_id="v", input_format="pcm", output_format="pcm",
                            client_req_id=client_req_id))
    for _ in range(5):
        server.receive_data(client.data_to_send())
        if any(isinstance(event, UpgradeRequest) for event in server.events_received()):
            server.accept()
        client.receive_data(server.data_to_send())
    server.send_message(server.protocol.send_ready("q", 48000, client_req_id=client_req_id))
    client.receive_data(server.data_to_send())
    assert [type(event).__name__ for event in client.events_received()] == ["Ready"]
    return client


AUDIO_INPUTS: list[Any] = [
    np.arange(-960, 960, dtype=np.int16) * 17,
    (np.arange(-960, 960, dtype=np.int16) * 17)[::2],
    np.arange(-960, 960, dtype=np.int16).astype(">i2"),
    np.arange(40, dtype=np.int16).reshape(20, 2)[:, :1],
    np.linspace(-1.5, 1.5, 1920, dtype=np.float32),
    np.linspace(-1.5, 1.5, 1920, dtype=np.float64),
    np.linspace(-1.5, 1.5, 1920).astype(">f4"),
    np.array([np.nan, 0.5, np.inf, -np.inf, 1.0, -1.0], dtype=np.float32),
    np.linspace(-1, 1, 7, dtype=np.float32)[::3],
    np.zeros(0, dtype=np.int16),
    np.zeros(0, dtype=np.float32),
    b"\x01\x02" * 1920,
    bytearray(b"\x03\x04" * 10),
    memoryview(b"\x05\x06" * 10),
]


@pytest.mark.parametrize("client_req_id", [None, "r-1", 'q"\u00e9'])
@pytest.mark.parametrize("audio", AUDIO_INPUTS, ids=lambda a: f"{type(a).__name__}")
def test_encode_audio_parts_match_the_reference_encoder(audio: Any,
                                                        client_req_id: str | None) -> None:
    from s2s_core._wire import encode_audio
    from s2s_core.protocol import ClientProtocol
    from s2s_core.setup import Setup

    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v", input_format="pcm", client_req_id=client_req_id))
    expected = encode_audio(to_pcm16(audio), client_req_id)
    assert b"".join(proto._encode_audio_parts(audio, client_req_id)) == expected
    assert proto._encode_audio(audio, client_req_id) == expected
    assert proto.send_audio(audio, client_req_id) == expected.decode()


@pytest.mark.parametrize("client_req_id", [None, "r-1"])
def test_send_audio_frames_match_the_reference_framing(client_req_id: str | None) -> None:
    from s2s_core._wire import encode_audio

    client = open_client(client_req_id)
    client._writer = FrameWriter(mask=True, key_source=counting_keys)
    reference_writer = FrameWriter(mask=True, key_source=counting_keys)
    for audio in [*AUDIO_INPUTS, np.zeros(40000, dtype=np.int16)]:
        client.send_audio(audio, client_req_id)
        message = encode_audio(to_pcm16(audio), client_req_id)
        assert client.data_to_send() == reference_writer.frame(Opcode.TEXT, message)


# --- the receive path: text_payload_start, decode_audio_at, _receive_audio_frame -------

def fresh_reader_state(reader: FrameReader) -> tuple[Any, ...]:
    return (bytes(reader._buf), reader._msg_opcode, reader._fragments, reader.error,
            reader._closed)


def plain_frame(payload: bytes, first: int = 0x81) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


@st.composite
def frame_like_bytes(draw: st.DrawFn) -> bytes:
    """Frames a server may send, whole or broken: the peek must agree with feed on each."""
    payload = draw(st.sampled_from([b"", b"a", b"x" * 125, b"x" * 126, b"\xc3\xa9" * 300,
                                    b"\xff" * 200, b"y" * 70000]))
    first = draw(st.sampled_from([0x81, 0x81, 0x01, 0x82, 0x89, 0xC1, 0x80]))
    data = bytearray(plain_frame(payload, first))
    edit = draw(st.sampled_from(["none", "none", "mask", "long16", "cut", "extra", "flip"]))
    if edit == "mask":
        data[1] |= 0x80
    elif edit == "long16":  # a length that fits 7 bits, sent on 16
        data = bytearray((data[0], 126, 0, len(payload) % 126)) + payload[:len(payload) % 126]
    elif edit == "cut" and len(data) > 1:
        del data[draw(st.integers(1, len(data) - 1)):]
    elif edit == "extra":
        data += plain_frame(b"more")
    elif edit == "flip":
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@SETTINGS
@given(frame_like_bytes(), st.sampled_from([None, 0, 125, 600, 2**20]))
def test_text_payload_start_agrees_with_feed(data: bytes, limit: int | None) -> None:
    peeked = FrameReader(expect_masked=False, max_message_size=limit)
    before = fresh_reader_state(peeked)
    start = peeked.text_payload_start(data)
    assert fresh_reader_state(peeked) == before
    if start < 0:
        return
    payload = data[start:]
    reference_reader = FrameReader(expect_masked=False, max_message_size=limit)
    out = reference_reader.feed(data)
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        assert out == [] and reference_reader.error is not None
        assert reference_reader.error.close_code == 1007
    else:
        assert out == [(Opcode.TEXT, payload)] and reference_reader.error is None
        assert reference_reader.buffered == 0


def test_text_payload_start_declines_when_the_reader_is_busy() -> None:
    reader = FrameReader(expect_masked=False)
    frame = plain_frame(b"x" * 600)
    assert reader.text_payload_start(frame) == 4
    assert reader.text_payload_start(plain_frame(b"x" * 10)) == 2
    assert FrameReader(expect_masked=True).text_payload_start(frame) == -1
    reader.feed(frame[:10])  # half a frame buffered
    assert reader.text_payload_start(frame) == -1
    fragmenting = FrameReader(expect_masked=False)
    fragmenting.feed(plain_frame(b"x", first=0x01))  # a message begun
    assert fragmenting.text_payload_start(frame) == -1


def not_utf8(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a byte that breaks UTF-8 put somewhere (often in a string's text)."""
    quotes = [i + 1 for i, byte in enumerate(data) if byte == 0x22]
    position = draw(st.sampled_from(quotes) if quotes and draw(st.booleans())
                    else st.integers(0, len(data)))
    bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xe9"]))
    return data[:position] + bad + data[position:]


@st.composite
def maybe_broken_audio_messages(draw: st.DrawFn) -> bytes:
    data = draw(audio_messages())
    if draw(st.booleans()):
        data = not_utf8(draw, data)
    return data


@SETTINGS
@given(maybe_broken_audio_messages(), st.binary(max_size=6))
def test_decode_audio_at_proves_utf8_and_matches_the_general_decoder(data: bytes,
                                                                    junk: bytes) -> None:
    from s2s_core._wire import decode_audio_at

    event = decode_audio_at(junk + data, len(junk))
    if event is None:
        return
    data.decode("utf-8")  # an event only for a valid message
    assert event == _decode_server_general(data)


@pytest.mark.parametrize("tail", [b'","meta":"\xff"}', b'","x\xc3":1,"stream_id":0}',
                                  b'","meta":{"\xed\xa0\x80":[1]}}'])
def test_decode_audio_at_declines_bad_utf8_the_tail_parser_skips(tail: bytes) -> None:
    from s2s_core._wire import decode_audio_at

    assert decode_audio_at(b'{"type":"audio","audio":"' + AUDIO.encode() + tail) is None
    assert decode_audio_at(b'{"meta":"\xff","type":"audio","audio":"' + AUDIO.encode()
                           + b'"}') is None


SERVICE_TAIL = b'","start_s":1.04,"stop_s":1.12,"stream_id":0}'


@pytest.mark.parametrize("data", [
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","type":null}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","audio":null}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","\\u0061udio":"QUJD"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","t\\u0079pe":"text"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","client_req_id":"\\u00e9"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","client_req_id":"\xc3\xa9"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","client_req_id":"' + b"r" * 2000
    + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","x":"' + b'"' * 1500 + b'"}',
    b'{"client_req_id":"\xc3\xa9","type":"audio","audio":"' + AUDIO.encode() + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'\xff' + SERVICE_TAIL,
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","meta":"\xff"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","x\xc3":1,"stream_id":0}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","meta":{"\xed\xa0\x80":[1]}}',
    b'{"meta":"\xff","type":"audio","audio":"' + AUDIO.encode() + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + SERVICE_TAIL[:-1] + b'\xff}',
])
def test_audio_shortcut_more_edge_cases(data: bytes) -> None:
    assert outcome(data) == reference(data)


def test_a_long_tail_still_decodes() -> None:
    from s2s_core._wire import decode_audio_at

    tail = b'","client_req_id":"' + b"r" * 2000 + b'"}'
    event = decode_audio_at(b'{"type":"audio","audio":"' + AUDIO.encode() + tail)
    assert event is None or event.client_req_id == "r" * 2000


def events_and_bytes(client: Any, frames: list[bytes]) -> list[Any]:
    seen: list[Any] = []
    for frame in frames:
        client.receive_data(frame)
        for event in client.events_received():
            if type(event).__name__ == "Closed":  # exceptions compare by identity
                event = (event.code, event.reason, type(event.error), str(event.error))
            seen.append(event)
        seen.append(client.data_to_send())
    seen.append(client.state)
    return seen


@st.composite
def server_streams(draw: st.DrawFn) -> list[bytes]:
    """Frames of audio messages (some broken), then maybe a ping or a text frame."""
    frames = [plain_frame(draw(maybe_broken_audio_messages()))
              for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        frames.append(plain_frame(b"p", first=0x89))
    frames.insert(draw(st.integers(0, len(frames))), plain_frame(
        b'{"type":"text","text":"hi","start_s":0.5}'))
    return frames


@SETTINGS
@given(server_streams())
def test_client_fast_receive_matches_the_frame_loop(frames: list[bytes]) -> None:
    fast = open_client()
    general = open_client()
    general._receive_audio_frame = lambda data: False  # every frame through the general loop
    fast._writer = FrameWriter(mask=True, key_source=counting_keys)
    general._writer = FrameWriter(mask=True, key_source=counting_keys)
    assert events_and_bytes(fast, frames) == events_and_bytes(general, frames)


def test_client_fast_receive_is_taken_and_rejects_bad_utf8() -> None:
    from s2s_core.events import Audio, Closed

    pcm = bytes(range(256)) * 30
    message = b'{"type":"audio","audio":"' + base64.b64encode(pcm) + SERVICE_TAIL
    client = open_client()
    calls: list[bool] = []
    original = client._receive_frames
    client._receive_frames = lambda data: (calls.append(True), original(data))
    client.receive_data(plain_frame(message))
    (event,) = client.events_received()
    assert isinstance(event, Audio) and event.audio == pcm and event.start_s == 1.04
    assert calls == []  # the shortcut took it
    client.receive_data(plain_frame(message[:-1] + b',"meta":"\xff"}'))
    (closed,) = client.events_received()
    assert isinstance(closed, Closed) and closed.code == 1007 and calls == [True]


ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@SETTINGS
@given(st.binary(min_size=1, max_size=40), st.integers(0, 200), st.integers(0, 255))
def test_strict_base64_accepts_only_its_alphabet(raw: bytes, where: int, byte: int) -> None:
    """What the audio shortcut relies on: a span that decodes holds no quote and no non-ASCII."""
    from s2s_core._wire import b64decode

    text = bytearray(base64.b64encode(raw))
    text.insert(where % (len(text) + 1), byte)
    if byte in ALPHABET:
        return
    with pytest.raises(ValueError):
        b64decode(bytes(text))
