"""Every example of tests/vectors/wire.json (a copy of the shared vectors).

Client messages are compared as parsed JSON (key order is not significant);
server messages must decode to the documented event fields.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from s2s_core._wire import (
    decode_client_message,
    decode_server_message,
    encode_audio,
    encode_end_of_stream,
    encode_setup,
)
from s2s_core.audio import float_to_int16, to_pcm16
from s2s_core.errors import InvalidAudio, RemoteProtocolError
from s2s_core.events import (
    Audio,
    EndOfStream,
    ErrorMessage,
    Ready,
    SetupReceived,
    Text,
    UnknownMessage,
)
from s2s_core.formats import Direction, lookup_format
from s2s_core.protocol import ClientProtocol, ProtocolState, ServerProtocol
from s2s_core.setup import Setup

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "wire.json").read_text(encoding="utf-8")
)
CLIENT = VECTORS["client"]
AUDIO_VECTORS = VECTORS["audio_vectors"]

EVENT_CLASSES = {
    "ready": Ready,
    "text": Text,
    "audio": Audio,
    "end_of_stream": EndOfStream,
    "error": ErrorMessage,
}


def parsed(data: str | bytes) -> Any:
    return json.loads(data)


def test_vector_file_is_a_copy_of_the_shared_one() -> None:
    shared = Path("/work/shared/vectors/wire.json")
    if not shared.exists():
        pytest.skip("shared vectors not present on this machine")
    assert json.loads(shared.read_text(encoding="utf-8")) == VECTORS


# --------------------------------------------------------------------------
# client -> server


def test_setup_documented() -> None:
    vector = CLIENT["setup_documented"]
    setup = Setup(
        model_name="default",
        input_format="pcm",
        output_format="pcm",
        voice_id="YTpq7expH9539ERJ",
        json_config={"target_language": "en"},
    )
    assert setup.to_wire() == vector
    assert parsed(encode_setup(setup)) == vector
    assert parsed(ClientProtocol().send_setup(setup)) == vector


def test_setup_documented_from_mapping() -> None:
    vector = CLIENT["setup_documented"]
    assert parsed(encode_setup(Setup.from_mapping(vector))) == vector


def test_setup_translate_live_tested() -> None:
    vector = CLIENT["setup_translate_live_tested"]
    setup = Setup(
        model_name="s2s-translate",
        stt_model_name="stt-translate",
        tts_model_name="default",
        voice_id="sVLgzKMqaptUdaY8",
        input_format="pcm_24000",
        output_format="wav",
        json_config={"target_language": "es"},
    )
    assert parsed(encode_setup(setup)) == vector
    assert setup.target_language == "es"


def test_official_sdk_wire_form_accepted_by_server_protocol() -> None:
    vector = CLIENT["setup_official_sdk_wire_form"]
    server = ServerProtocol()
    events = server.receive_message(json.dumps(vector))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, SetupReceived)
    setup = event.setup
    # The service's defaults when the client (like the official SDK) omits them.
    assert setup.input_format == "wav"
    assert setup.output_format == "wav"
    assert setup.model_name == "default"
    assert setup.voice_id == "v"
    # json_config as a pre-encoded string is kept untouched.
    assert setup.json_config == '{"target_language": "en"}'
    assert setup.target_language == "en"
    assert server.state is ProtocolState.ACTIVE


def test_official_sdk_wire_form_decodes_as_client_message() -> None:
    event = decode_client_message(json.dumps(CLIENT["setup_official_sdk_wire_form"]).encode())
    assert isinstance(event, SetupReceived)
    assert (event.setup.input_format, event.setup.output_format) == ("wav", "wav")


def test_official_sdk_wire_form_from_mapping_keeps_string_config() -> None:
    vector = CLIENT["setup_official_sdk_wire_form"]
    wire = parsed(encode_setup(Setup.from_mapping(vector)))
    assert wire["json_config"] == '{"target_language": "en"}'
    assert wire["voice_id"] == "v"
    # We always send the formats, unlike the official SDK.
    assert wire["input_format"] == "pcm"
    assert wire["output_format"] == "pcm"


def test_audio_message() -> None:
    vector = CLIENT["audio"]
    pcm = bytes.fromhex(AUDIO_VECTORS["int16_to_bytes"]["hex"])
    assert parsed(encode_audio(pcm)) == vector
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    assert parsed(proto.send_audio(pcm)) == vector
    samples = np.array(AUDIO_VECTORS["int16_to_bytes"]["samples"], dtype=np.int16)
    assert parsed(proto.send_audio(samples)) == vector


def test_end_of_stream_message() -> None:
    vector = CLIENT["end_of_stream"]
    assert parsed(encode_end_of_stream()) == vector
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    assert parsed(proto.send_end_of_stream()) == vector


def test_multiplexed_sequence() -> None:
    setup_v, audio_v, eos_v, final_v = CLIENT["multiplexed"]
    proto = ClientProtocol()
    setup = Setup(
        model_name="s2s-translate",
        input_format="pcm",
        output_format="pcm",
        voice_id="YTpq7expH9539ERJ",
        json_config={"target_language": "en"},
        close_ws_on_eos=False,
        client_req_id="req-00",
    )
    assert parsed(proto.send_setup(setup)) == setup_v

    # The documented chunk ("AAAA") is 3 bytes: not whole pcm samples, which
    # ClientProtocol refuses without changing state; the encoder itself
    # produces the documented message.
    chunk = base64.b64decode(audio_v["audio"])
    assert chunk == b"\x00\x00\x00"
    assert parsed(encode_audio(chunk, "req-00")) == audio_v
    with pytest.raises(InvalidAudio):
        proto.send_audio(chunk, "req-00")
    assert parsed(proto.send_audio(b"\x00\x00", "req-00")) == {
        "type": "audio", "audio": "AAA=", "client_req_id": "req-00"}

    assert parsed(proto.send_end_of_stream("req-00")) == eos_v
    assert proto.state is ProtocolState.ACTIVE
    proto.receive_message(
        '{"type":"ready","request_id":"x","sample_rate":48000,"client_req_id":"req-00"}')
    proto.receive_message('{"type":"end_of_stream","client_req_id":"req-00"}')
    assert proto.state is ProtocolState.IDLE
    assert parsed(proto.send_end_of_stream()) == final_v
    assert proto.state is ProtocolState.FINISHED


# --------------------------------------------------------------------------
# server -> client


def _server_id(case: dict[str, Any]) -> str:
    return json.dumps(case["wire"], sort_keys=True)[:60]


@pytest.mark.parametrize("case", VECTORS["server"], ids=_server_id)
def test_server_message_decodes(case: dict[str, Any]) -> None:
    for data in (json.dumps(case["wire"]), json.dumps(case["wire"]).encode()):
        event = decode_server_message(data)
        assert type(event) is EVENT_CLASSES[case["event"]]
        assert event.type == case["event"]
        for key, expected in case["expect"].items():
            if key == "audio_hex":
                assert isinstance(event, Audio)
                assert event.audio.hex() == expected
            else:
                assert getattr(event, key) == expected, key


@pytest.mark.parametrize("case", VECTORS["server"], ids=_server_id)
def test_server_message_through_client_protocol(case: dict[str, Any]) -> None:
    """Each vector is also accepted by ClientProtocol in a state that allows it."""
    wire = case["wire"]
    rid = wire.get("client_req_id")
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v", client_req_id=rid))
    if case["event"] != "ready" and case["event"] != "error":
        proto.receive_message(json.dumps(
            {"type": "ready", "request_id": "r", "sample_rate": 48000, "client_req_id": rid}))
    events = proto.receive_message(json.dumps(wire))
    assert [e.type for e in events] == [case["event"]]


@pytest.mark.parametrize("wire", VECTORS["tolerated_unknown"], ids=lambda w: w["type"])
def test_tolerated_unknown(wire: dict[str, Any]) -> None:
    text = json.dumps(wire)
    event = decode_server_message(text)
    assert isinstance(event, UnknownMessage)
    assert event.type == wire["type"]
    assert json.loads(event.raw) == wire
    # Unknown messages never move the lifecycle, even with no request open.
    proto = ClientProtocol()
    assert proto.receive_message(text) == [event]
    assert proto.state is ProtocolState.IDLE


MALFORMED_MENTIONS = {
    "not json": ["not valid JSON"],
    "[1, 2, 3]": ["not a JSON object", "list"],
    '{"no_type": 1}': ["'type'"],
    '{"type": 7}': ["'type'", "7"],
    '{"type": "audio", "audio": "%%%not-base64%%%"}': ["audio", "base64"],
    '{"type": "audio"}': ["audio message", "audio`"],
    '{"type": "text", "text": 12, "start_s": 0}': ["text message", "text"],
    '{"type": "ready", "sample_rate": "fast"}': ["ready message", "sample_rate"],
}


def test_malformed_table_covers_every_vector() -> None:
    assert sorted(MALFORMED_MENTIONS) == sorted(VECTORS["malformed"])


@pytest.mark.parametrize("text", VECTORS["malformed"])
def test_malformed_raises_remote_protocol_error(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_server_message(text)
    message = str(info.value)
    for mention in MALFORMED_MENTIONS[text]:
        assert mention in message, (mention, message)
    assert info.value.close_code == 1002


@pytest.mark.parametrize("text", VECTORS["malformed"])
def test_malformed_through_client_protocol_keeps_state(text: str) -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    request = proto.request()
    assert request is not None
    before = (proto.state, request.client, request.server)
    with pytest.raises(RemoteProtocolError):
        proto.receive_message(text.encode())
    assert (proto.state, request.client, request.server) == before


# --------------------------------------------------------------------------
# audio vectors


def test_int16_to_bytes() -> None:
    vector = AUDIO_VECTORS["int16_to_bytes"]
    samples = np.array(vector["samples"], dtype=np.int16)
    pcm = to_pcm16(samples)
    assert pcm.hex() == vector["hex"]
    assert base64.b64encode(pcm).decode() == vector["base64"]
    # Big-endian input still gives little-endian bytes.
    assert to_pcm16(samples.astype(">i2")).hex() == vector["hex"]
    assert parsed(encode_audio(pcm))["audio"] == vector["base64"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_to_int16_clipped(dtype: type) -> None:
    vector = AUDIO_VECTORS["float_to_int16_clipped"]
    bug = AUDIO_VECTORS["float_to_int16_official_sdk_bug"]
    samples = np.array(vector["samples"], dtype=dtype)
    produced = np.frombuffer(to_pcm16(samples), dtype="<i2").tolist()
    assert produced == vector["int16"]
    assert produced != bug["int16"]
    assert float_to_int16(samples).tolist() == vector["int16"]
    # The specific failure of the official SDK: +1.0 wraps to -32768.
    assert produced[0] == 32767


def test_float_nan_is_zero() -> None:
    produced = np.frombuffer(to_pcm16(np.array([np.nan, 1.0], dtype=np.float32)), "<i2")
    assert produced.tolist() == [0, 32767]


def test_official_sdk_bug_vector_is_what_the_sdk_formula_gives() -> None:
    """Sanity check of the vector itself: (x * 32768).astype(int16) wraps."""
    bug = AUDIO_VECTORS["float_to_int16_official_sdk_bug"]
    samples = np.array(bug["samples"], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        wrapped = (samples * 32768).astype(np.int64).astype(np.int16)
    assert wrapped.tolist() == bug["int16"]


BYTES_PER_80MS_LOOKUP = {
    "pcm_input": ("pcm", Direction.INPUT),
    "pcm_output": ("pcm", Direction.OUTPUT),
}


@pytest.mark.parametrize("key", sorted(AUDIO_VECTORS["bytes_per_80ms"]))
def test_bytes_per_80ms(key: str) -> None:
    expected = AUDIO_VECTORS["bytes_per_80ms"][key]
    if key in BYTES_PER_80MS_LOOKUP:
        name, direction = BYTES_PER_80MS_LOOKUP[key]
        assert lookup_format(name, direction).bytes_per_frame == expected
    else:
        for direction in Direction:
            assert lookup_format(key, direction).bytes_per_frame == expected


def test_mulaw_alias_bytes_per_80ms() -> None:
    fmt = lookup_format("mulaw_8000", Direction.INPUT)
    assert fmt.name == "ulaw_8000"
    assert fmt.bytes_per_frame == AUDIO_VECTORS["bytes_per_80ms"]["ulaw_8000"]


@pytest.mark.parametrize("name", ["wav", "opus"])
def test_containers_have_no_frame_size(name: str) -> None:
    assert lookup_format(name, Direction.INPUT).bytes_per_frame is None


def test_bad_pcm_length_is_refused() -> None:
    with pytest.raises(InvalidAudio):
        to_pcm16(b"\x00\x01\x02")
