"""Setup: validation (InvalidSetup names field, value, allowed) and its wire form."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s_core._wire import encode_setup
from s2s_core.errors import InvalidSetup, S2SError
from s2s_core.formats import FORMAT_NAMES
from s2s_core.setup import DEFAULT_MODEL, TARGET_LANGUAGES, Setup

BAD_VALUES: list[tuple[str, Any]] = [
    ("model_name", 5),
    ("model_name", None),
    ("model_name", b"s2s"),
    ("stt_model_name", 3),
    ("tts_model_name", ["default"]),
    ("client_req_id", 17),
    ("input_format", "mp3"),
    ("input_format", "PCM"),
    ("input_format", "pcm_12345"),
    ("input_format", 16000),
    ("input_format", None),
    ("output_format", "flac"),
    ("output_format", "pcm_96000"),
    ("voice_id", ""),
    ("voice_id", 42),
    ("close_ws_on_eos", "no"),
    ("close_ws_on_eos", 0),
    ("retry_for_s", -1),
    ("retry_for_s", -0.5),
    ("retry_for_s", float("inf")),
    ("retry_for_s", True),
    ("retry_for_s", "5"),
    ("require_voice_id", "yes"),
    ("json_config", [1, 2]),
    ("json_config", 5),
    ("json_config", "not json"),
    ("json_config", "[1]"),
    ("json_config", '"en"'),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=lambda v: repr(v))
def test_bad_value_raises_invalid_setup(field: str, value: Any) -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup(**{"voice_id": "v", field: value})
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, S2SError)
    assert error.field == field
    assert error.value == value
    assert error.allowed
    message = str(error)
    assert repr(field) in message
    assert repr(value) in message


def test_nan_retry_is_refused() -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup(voice_id="v", retry_for_s=float("nan"))
    assert info.value.field == "retry_for_s"
    assert math.isnan(info.value.value)
    assert "nan" in str(info.value)


@pytest.mark.parametrize("config", [{"target_language": "jp"}, '{"target_language": "xx"}'])
def test_bad_target_language(config: dict[str, str] | str) -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup(voice_id="v", json_config=config)
    assert info.value.field == "json_config.target_language"
    bad = "jp" if isinstance(config, dict) else "xx"
    assert info.value.value == bad
    assert repr(bad) in str(info.value)
    for language in TARGET_LANGUAGES:
        assert language in info.value.allowed


def test_bad_format_lists_allowed_values() -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup(voice_id="v", input_format="mp3")
    for name in FORMAT_NAMES:
        assert name in info.value.allowed


@pytest.mark.parametrize("language", TARGET_LANGUAGES)
def test_good_target_languages(language: str) -> None:
    setup = Setup(voice_id="v", json_config={"target_language": language})
    assert setup.target_language == language


def test_no_target_language_keeps_the_input_language() -> None:
    assert Setup(voice_id="v").target_language is None
    assert Setup(voice_id="v", json_config={}).target_language is None
    assert Setup(voice_id="v", json_config='{"other": 1}').target_language is None


def test_voice_id_required() -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup()
    assert info.value.field == "voice_id"
    assert info.value.value is None
    assert "require_voice_id=False" in str(info.value)


def test_voice_id_optional_with_require_voice_id_false() -> None:
    setup = Setup(require_voice_id=False)
    wire = setup.to_wire()
    assert "voice_id" not in wire
    assert "require_voice_id" not in wire
    assert json.loads(encode_setup(setup)) == {
        "type": "setup", "model_name": DEFAULT_MODEL,
        "input_format": "pcm", "output_format": "pcm",
    }


def test_require_voice_id_is_never_sent() -> None:
    assert "require_voice_id" not in Setup(voice_id="v", require_voice_id=False).to_wire()
    assert "require_voice_id" not in Setup(voice_id="v").to_wire()


def test_json_config_object_on_the_wire() -> None:
    config = {"target_language": "fr"}  # other keys: see test_field_faults (item 13)
    wire = json.loads(encode_setup(Setup(voice_id="v", json_config=config)))
    assert wire["json_config"] == config


@pytest.mark.parametrize("text", [
    '{"target_language":  "fr" ,  "x": 1}',
    '{"target_language": "de"}',
    '{}',
    '{"a": "\\u00e9"}',
])
def test_json_config_string_passed_through_untouched(text: str) -> None:
    setup = Setup(voice_id="v", json_config=text)
    assert setup.json_config == text
    wire = json.loads(encode_setup(setup))
    assert wire["json_config"] == text  # still a string, byte for byte
    assert isinstance(wire["json_config"], str)


def test_from_mapping_accepts_type_setup_and_overrides() -> None:
    setup = Setup.from_mapping({"type": "setup", "voice_id": "a", "output_format": "wav"},
                               voice_id="b")
    assert setup.voice_id == "b"
    assert setup.output_format == "wav"


@pytest.mark.parametrize("key", ["voice", "target_language", "sample_rate", "inputFormat"])
def test_from_mapping_rejects_unknown_keys(key: str) -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup.from_mapping({"voice_id": "v", key: "x"})
    assert info.value.field == key
    assert info.value.value == "x"
    assert repr(key) in str(info.value)


def test_from_mapping_rejects_other_type() -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup.from_mapping({"type": "audio", "voice_id": "v"})
    assert info.value.field == "type"
    assert info.value.value == "audio"


def test_from_mapping_validates_values() -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup.from_mapping({"voice_id": "v", "input_format": "aac"})
    assert (info.value.field, info.value.value) == ("input_format", "aac")


def test_defaults_on_the_wire() -> None:
    wire = json.loads(encode_setup(Setup(voice_id="v")))
    assert wire == {"type": "setup", "model_name": "s2s-translate", "voice_id": "v",
                    "input_format": "pcm", "output_format": "pcm"}


def test_optional_fields_on_the_wire() -> None:
    setup = Setup(voice_id="v", stt_model_name="stt", tts_model_name="tts",
                  client_req_id="c1", close_ws_on_eos=False, retry_for_s=0)
    wire = json.loads(encode_setup(setup))
    assert wire["close_ws_on_eos"] is False  # False is sent, not dropped
    assert wire["retry_for_s"] == 0
    assert wire["client_req_id"] == "c1"
    assert wire["stt_model_name"] == "stt"
    assert wire["tts_model_name"] == "tts"
    assert setup.reuses_socket is True
    assert Setup(voice_id="v").reuses_socket is False
    assert Setup(voice_id="v", close_ws_on_eos=True).reuses_socket is False


def test_setup_is_frozen() -> None:
    setup = Setup(voice_id="v")
    with pytest.raises(AttributeError):
        setup.voice_id = "w"  # type: ignore[misc]


def test_setup_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Setup("v")  # type: ignore[misc]


@settings(max_examples=150, deadline=None)
@given(
    input_format=st.sampled_from(FORMAT_NAMES),
    output_format=st.sampled_from(FORMAT_NAMES),
    voice=st.text(min_size=1, max_size=20),
    rid=st.none() | st.text(max_size=10),
    language=st.none() | st.sampled_from(TARGET_LANGUAGES),
    as_string=st.booleans(),
)
def test_formats_always_on_the_wire(input_format: str, output_format: str, voice: str,
                                    rid: str | None, language: str | None,
                                    as_string: bool) -> None:
    config: dict[str, str] | str | None = None
    if language is not None:
        config = {"target_language": language}
        if as_string:
            config = json.dumps(config)
    setup = Setup(voice_id=voice, input_format=input_format, output_format=output_format,
                  client_req_id=rid, json_config=config)
    wire = json.loads(encode_setup(setup))
    assert wire["type"] == "setup"
    assert wire["input_format"] == input_format
    assert wire["output_format"] == output_format
    assert wire["model_name"] == DEFAULT_MODEL
    assert wire["voice_id"] == voice
    assert wire.get("client_req_id") == rid
    assert wire.get("json_config") == config
    assert setup.target_language == language
    # The wire form round-trips through from_mapping.
    assert Setup.from_mapping(wire) == setup


def test_to_wire_is_json_ready() -> None:
    setup = Setup(voice_id="v", json_config={"target_language": "pt"}, retry_for_s=2.5)
    assert msgspec.json.decode(msgspec.json.encode(setup.to_wire())) == setup.to_wire()
