"""The local server's speed shortcuts give exactly what the general code gives.

* ``decode_client_audio`` (the server's audio-message shortcut) against
  ``decode_client_message``, on messages built to trip it up.
* ``ServerProtocol``'s lifecycle shortcuts (client audio, server text and
  audio while both sides stream) against the table, on random message orders.
* ``Resampler.process_float`` + ``round_to_int16`` (the engine's int16-units
  float path) against ``Resampler.process``, bit for bit, over any chunking.
* The VAD's window energies against exact integer sums.
* ``ServerSession``'s direct sends against its queued path, byte for byte.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from s2s_core import _wire
from s2s_core import protocol as protocol_module
from s2s_core._frames import FrameWriter, Opcode
from s2s_core._resample import Resampler, round_to_int16
from s2s_core._wire import decode_client_audio, decode_client_message, encode_audio
from s2s_core.connection import ServerConnection
from s2s_core.errors import RemoteProtocolError, S2SError
from s2s_core.events import AudioReceived
from s2s_core.loopback import FaultPlan, ServerConfig, ServerSession
from s2s_core.loopback import _engine as engine_module
from s2s_core.loopback._faults import Fault
from s2s_core.protocol import ServerProtocol
from s2s_core.setup import Setup

SETTINGS = settings(max_examples=200, deadline=None)
AUDIO = base64.b64encode(bytes((i * 7) % 256 for i in range(3000))).decode()


# --- decode_client_audio ------------------------------------------------------------

@st.composite
def client_audio_messages(draw: st.DrawFn) -> bytes:
    """Audio messages as clients write them, and as they should not."""
    fields: list[tuple[str, Any]] = [
        ("type", draw(st.sampled_from(["audio", "audio", "audio", "setup", "step"]))),
        ("audio", draw(st.sampled_from([AUDIO, AUDIO, AUDIO[:-1], AUDIO[:99] + "!" + AUDIO,
                                        "", AUDIO.replace("/", "\\/"), 7])))]
    optional: list[tuple[str, Any]] = [
        ("client_req_id", draw(st.sampled_from(["r1", "é", 'a"audio":"QUJD', None, 3]))),
        ("meta", draw(st.sampled_from([{"audio": "QUJD"}, ["type", "x"], "\u00e9"]))),
        ("audio", draw(st.sampled_from(["QUJD", ""]))),  # a duplicate member
        ("type", "end_of_stream"),  # another duplicate
    ]
    fields += draw(st.lists(st.sampled_from(optional), max_size=3, unique_by=lambda kv: kv[0]))
    if draw(st.booleans()):
        fields = draw(st.permutations(fields))
    sep = (",", ":") if draw(st.booleans()) else (", ", ": ")
    text = "{" + sep[0].join(json.dumps(k) + sep[1] + json.dumps(v, separators=sep)
                             for k, v in fields) + "}"
    mutation = draw(st.sampled_from(["none", "none", "truncate", "trailing", "bad utf-8"]))
    data = text.encode()
    if mutation == "truncate":
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif mutation == "trailing":
        data += draw(st.sampled_from([b" ", b"x", b"}", b',"a":1}']))
    elif mutation == "bad utf-8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[at:]
    return data


def general(data: bytes) -> tuple[str, Any]:
    try:
        return "event", decode_client_message(data)
    except S2SError as exc:
        return "error", type(exc)


@SETTINGS
@given(client_audio_messages())
def test_client_audio_shortcut_agrees_with_the_general_decoder(data: bytes) -> None:
    event = decode_client_audio(data)
    if event is not None:
        assert general(data) == ("event", event)


@pytest.mark.parametrize("rid", [None, "r1", "é", 'a"audio":"QUJD', "x" * 2000])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 3840])
def test_client_audio_shortcut_takes_what_the_client_sends(rid: str | None, size: int) -> None:
    pcm = bytes(range(256)) * 16
    data = encode_audio(pcm[:size], rid)
    event = decode_client_audio(data)
    if rid is None or len(rid) < 100:
        assert event == AudioReceived(audio=pcm[:size], client_req_id=rid)
    assert general(data) == ("event", AudioReceived(audio=pcm[:size], client_req_id=rid))


@pytest.mark.parametrize("data", [
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","type":"end_of_stream"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","audio":"QUJD"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","\\u0061udio":"QUJD"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","client_req_id":7}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","client_req_id":"\xc3\xa9"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'","meta":"\xff"}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'"}x',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'",}',
    b'{"type":"audio","audio":"' + AUDIO.encode() + b'"',
    b'{"type":"audio","audio":"' + AUDIO[:-1].encode() + b'"}',
    b'{"type":"audio","audio":"' + AUDIO.replace("/", "\\/").encode() + b'"}',
    b'{"type": "audio", "audio": "' + AUDIO.encode() + b'"}',
])
def test_client_audio_shortcut_edge_cases(data: bytes) -> None:
    event = decode_client_audio(data)
    if event is not None:
        assert general(data) == ("event", event)


# --- ServerProtocol's lifecycle shortcuts ---------------------------------------------

def setup_message(rid: str | None, reuse: bool) -> bytes:
    fields: dict[str, Any] = {"type": "setup", "model_name": "m", "voice_id": "v",
                              "input_format": "pcm", "output_format": "pcm",
                              "close_ws_on_eos": not reuse}
    if rid is not None:
        fields["client_req_id"] = rid
    return json.dumps(fields).encode()


def eos_message(rid: str | None) -> bytes:
    return _wire.encode_end_of_stream(rid)


@st.composite
def message_orders(draw: st.DrawFn) -> list[tuple[str, str | None]]:
    kinds = ["setup", "setup", "audio", "audio", "audio", "eos", "eos", "ready", "ready", "text",
             "saudio", "send", "error"]
    rids = draw(st.sampled_from([[None], ["a"], [None, "a"], [None, "a", "b"]]))
    return draw(st.lists(st.tuples(st.sampled_from(kinds), st.sampled_from(rids)),
                         max_size=20))


def play(protocol: ServerProtocol, order: list[tuple[str, str | None]],
         reuse: bool) -> list[Any]:
    """Each step's outcome (events, bytes, or the error) and the lifecycle after it."""
    seen: list[Any] = []
    for kind, rid in order:
        try:
            if kind == "setup":
                result: Any = protocol.receive_message(setup_message(rid, reuse))
            elif kind == "audio":
                result = protocol.receive_message(encode_audio(b"\x01\x02" * 8, rid))
            elif kind == "eos":
                result = protocol.receive_message(eos_message(rid))
            elif kind == "ready":
                result = protocol.send_ready("q", 48000, client_req_id=rid)
            elif kind == "text":
                result = protocol.send_text("t", 0.0, 0.1, client_req_id=rid, stream_id=0)
            elif kind == "saudio":
                result = protocol.send_audio(b"\x00\x00", 0.0, 0.1, client_req_id=rid,
                                             stream_id=0)
            elif kind == "send":
                result = protocol.send_end_of_stream(rid)
            else:
                result = protocol.send_error("e", 1011, rid)
        except S2SError as exc:
            result = (type(exc), str(exc))
        requests = protocol._life.requests
        seen.append((result, protocol.state, protocol._life.finished,
                     sorted((str(k), r.client, r.server) for k, r in requests.items())))
    return seen


@settings(max_examples=400, deadline=None)
@given(message_orders(), st.booleans())
@example([("setup", "a"), ("ready", "a"), ("eos", "a"), ("audio", "a")], True)
@example([("setup", None), ("audio", None), ("error", None), ("audio", None)], False)
@example([("setup", "a"), ("ready", "a"), ("send", "a"), ("text", "a"), ("saudio", "a")], True)
def test_protocol_shortcuts_agree_with_the_table(order: list[tuple[str, str | None]],
                                                 reuse: bool) -> None:
    fast = play(ServerProtocol(), order, reuse)
    slow = ServerProtocol()
    slow._streaming = lambda client_req_id: False  # type: ignore[method-assign]
    original = protocol_module.decode_client_audio
    protocol_module.decode_client_audio = lambda data: None  # type: ignore[assignment]
    try:
        reference = play(slow, order, reuse)
    finally:
        protocol_module.decode_client_audio = original
    assert fast == reference


def test_late_audio_after_the_end_is_still_refused() -> None:
    protocol = ServerProtocol()
    protocol.receive_message(setup_message(None, True))
    protocol.send_ready("q", 48000)
    assert protocol.receive_message(encode_audio(b"\x00\x00")) == [
        AudioReceived(audio=b"\x00\x00")]
    protocol.receive_message(eos_message(None))
    with pytest.raises(RemoteProtocolError) as info:
        protocol.receive_message(encode_audio(b"\x00\x00"))
    assert info.value.close_code == 1002


# --- the engine's float path ----------------------------------------------------------

def signal(kind: str, n: int, seed: int) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return np.clip(rng.standard_normal(n) * 9000, -32768, 32767).astype(np.int16)
    if kind == "square":  # full scale: the resampler's overshoot is clipped
        return np.where((np.arange(n) // 37) % 2, 32767, -32768).astype(np.int16)
    if kind == "quiet":
        return rng.integers(-3, 4, n).astype(np.int16)
    return np.zeros(n, dtype=np.int16)


def by_process(pcm: npt.NDArray[np.int16], rates: tuple[int, int],
               cuts: list[int]) -> npt.NDArray[np.int16]:
    resampler = Resampler(*rates)
    bounds = [0, *sorted(min(c, len(pcm)) for c in cuts), len(pcm)]
    parts = [resampler.process(pcm[a:b]) for a, b in itertools.pairwise(bounds)]
    return np.concatenate([*parts, resampler.flush()])


def by_process_float(pcm: npt.NDArray[np.int16], rates: tuple[int, int], cuts: list[int],
                     column: bool) -> npt.NDArray[np.int16]:
    resampler = Resampler(*rates)
    bounds = [0, *sorted(min(c, len(pcm)) for c in cuts), len(pcm)]
    parts = []
    for a, b in itertools.pairwise(bounds):
        chunk = pcm[a:b].astype(np.float32)
        out = resampler.process_float(chunk.reshape(-1, 1) if column else chunk)
        rounded = np.empty(len(out), dtype="<i2")
        round_to_int16(out.copy() if out is chunk else out, rounded)
        parts.append(rounded)
    tail = resampler.flush_float()
    rounded = np.empty(len(tail), dtype="<i2")
    round_to_int16(tail, rounded)
    return np.concatenate([*parts, rounded])


@given(st.sampled_from(["noise", "square", "quiet", "silence"]),
       st.sampled_from([(24000, 48000), (16000, 48000), (44100, 48000), (8000, 16000),
                        (48000, 24000), (16000, 16000)]),
       st.lists(st.integers(0, 9000), max_size=5), st.booleans(), st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_int16_units_float_path_is_bit_exact(kind: str, rates: tuple[int, int],
                                             cuts: list[int], column: bool,
                                             seed: int) -> None:
    pcm = signal(kind, 9000, seed)
    expected = by_process(pcm, rates, [])
    got = by_process_float(pcm, rates, cuts, column)
    assert got.dtype == np.dtype("<i2")
    assert len(got) == (2 * len(pcm) * rates[1] + rates[0]) // (2 * rates[0])
    assert np.array_equal(got, expected)


def test_round_to_int16_rounds_half_to_even_and_clips() -> None:
    samples = np.array([[0.5], [1.5], [-0.5], [-2.5], [32767.4], [32767.6], [40000.0],
                        [-32768.6], [-1e9]], dtype=np.float32)
    out = np.empty(len(samples), dtype="<i2")
    round_to_int16(samples, out)
    assert out.tolist() == [0, 2, 0, -2, 32767, 32767, 32767, -32768, -32768]


# --- the VAD's energies -----------------------------------------------------------------

@pytest.mark.parametrize("dot", ["vecdot", "matmul"])
def test_window_energies_are_exact(dot: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if dot == "matmul":
        monkeypatch.setattr(engine_module, "_vecdot", None)
    elif engine_module._vecdot is None:
        pytest.skip("numpy < 2.0 has no vecdot")
    rng = np.random.default_rng(5)
    windows = rng.integers(-32768, 32768, (7, 960)).astype(np.int16)
    windows[0] = -32768  # the largest sum there is
    exact = [int(np.dot(w.astype(np.int64), w.astype(np.int64))) for w in windows]
    energies = engine_module._window_energies(windows.astype(np.float64))
    assert [int(e) for e in energies] == exact
    assert all(float(e) == x for e, x in zip(energies, exact, strict=True))


# --- ServerSession's direct sends -----------------------------------------------------

def session_bytes(fault: FaultPlan | None, chunks: list[bytes]) -> list[bytes]:
    """What a server session writes after each input: upgrade, setup, audio..., end."""
    config = ServerConfig(fault=fault)
    conn = ServerConnection(now=0.0)
    session = ServerSession(conn, config, 0.0)
    writer = FrameWriter(mask=True)
    upgrade = (b"GET /api/speech/s2s HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
    setup = Setup(model_name="m", voice_id="v", input_format="pcm", output_format="pcm")
    inputs = [upgrade, writer.frame(Opcode.TEXT, _wire.encode_setup(setup))]
    inputs += [writer.frame(Opcode.TEXT, encode_audio(chunk)) for chunk in chunks]
    inputs.append(writer.frame(Opcode.TEXT, eos_message(None)))
    written = []
    for k, data in enumerate(inputs):
        now = 0.08 * k
        conn.receive_data(data, now=now)
        session.handle_events(conn.events_received(), now)
        session.handle_timer(now)  # what is due now (the queued path)
        written.append(conn.data_to_send())
    return written


def test_direct_sends_write_what_the_queue_writes() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.integers(-9000, 9000, 1920).astype("<i2").tobytes() for _ in range(30)]
    # A slow output of no delay queues every message and sends it at once.
    queued = session_bytes(FaultPlan(Fault.SLOW_OUTPUT, slow_delay_s=0.0), chunks)
    direct = session_bytes(None, chunks)
    # The ready message holds a fresh request id: compare the rest.
    assert direct[2:] == queued[2:]
    assert sum(len(d) for d in direct[2:-1]) > 30 * 7680
