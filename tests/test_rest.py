"""The REST calls: the sans-IO core fed bytes, the local server's routes, and the
httpx clients of every adapter mode against the local server."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import h11
import pytest
import trustme
from test_server import SETUP as RAW_SETUP
from test_server import RawClient

from _s2s_async.rest import AsyncRestClient
from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core import __version__
from s2s_core.connection import ServerConnection, UpgradeRequest
from s2s_core.errors import (
    ConnectError,
    InvalidURL,
    LocalProtocolError,
    PolicyViolation,
    S2SError,
    S2STimeoutError,
)
from s2s_core.loopback import EngineError, LoopbackEngine
from s2s_core.loopback.rest import LOCAL_VOICES, CreditLedger, LocalRest, TokenStore
from s2s_core.options import LEAD_IN_SILENCE_S
from s2s_core.rest import (
    API_SOURCE,
    AuthenticationError,
    Credits,
    InvalidResponse,
    MissingApiKey,
    NotFound,
    RestApi,
    RestArgumentError,
    RestError,
    RestSettings,
    Token,
    Voice,
    rest_base_from_s2s_url,
    rest_base_url,
)
from s2s_core.setup import TARGET_LANGUAGES, Setup
from s2s_core.voices import FLAGSHIP_VOICES
from s2s_threaded.rest import RestClient

pytestmark = pytest.mark.timeout(60)

KEY = "sk-very-secret-key"
API = RestApi("https://api.example.com/api/", KEY)


# --- the sans-IO core: requests ---


def test_requests_use_the_websocket_base_url_and_send_key_and_source() -> None:
    calls = {
        API.voice_list(): "https://api.example.com/api/voices/?limit=0&include_catalog=1",
        API.voice_list(include_catalog=False):
            "https://api.example.com/api/voices/?limit=0&include_catalog=0",
        API.voice_get("b35yykvVppLXyw_l"): "https://api.example.com/api/voices/b35yykvVppLXyw_l",
        API.credits(): "https://api.example.com/api/usages/credits",
        API.mint_token(): "https://api.example.com/api/api-keys/token",
    }
    for call, url in calls.items():
        assert (call.method, call.url) == ("GET", url)
        headers = dict(call.headers)
        assert headers["x-api-key"] == KEY
        assert headers["x-api-source"] == API_SOURCE == f"s2s-core/{__version__}"


def test_voice_uid_is_quoted_and_bad_arguments_fail_before_sending() -> None:
    assert API.voice_get("a/b?c d").url.endswith("/api/voices/a%2Fb%3Fc%20d")
    for uid in ("", " ", ".", "..", None, 3):
        with pytest.raises(RestArgumentError, match="voice uid"):
            API.voice_get(uid)  # type: ignore[arg-type]
    with pytest.raises(RestArgumentError, match="include_catalog"):
        API.voice_list(include_catalog="yes")  # type: ignore[arg-type]
    assert isinstance(RestArgumentError("x"), ValueError)


def test_a_token_only_client_cannot_call_rest() -> None:
    api = RestApi("https://api.example.com/api/", None)
    for build in (api.voice_list, api.credits, api.mint_token):
        with pytest.raises(MissingApiKey, match="needs an API key"):
            build()
    with pytest.raises(MissingApiKey):
        api.voice_get("x")


def test_extra_headers_are_sent_but_cannot_replace_ours() -> None:
    api = RestApi("https://h/api/", KEY, extra_headers={"X-Gateway": "g", "X-API-Key": "other"})
    headers = api.credits().headers
    assert ("X-Gateway", "g") in headers
    assert [v for k, v in headers if k.lower() == "x-api-key"] == [KEY]


def test_base_urls_change_the_scheme_only() -> None:
    assert rest_base_url() == "https://api.gradium.ai/api/"
    assert rest_base_url(region="eu") == "https://eu.api.gradium.ai/api/"
    assert rest_base_url("127.0.0.1:8765/api") == "http://127.0.0.1:8765/api/"
    assert rest_base_url("wss://ws-https.example/api/") == "https://ws-https.example/api/"
    assert rest_base_from_s2s_url("wss://h:1/api/speech/s2s") == "https://h:1/api/"
    # A token in the WebSocket URL never reaches REST.
    assert rest_base_from_s2s_url("ws://h/api/speech/s2s?token=t") == "http://h/api/"
    for bad in ("wss://h/api/other", "ftp://h/api/speech/s2s"):
        with pytest.raises(ValueError, match="not an S2S WebSocket URL"):
            rest_base_from_s2s_url(bad)
    with pytest.raises(ValueError, match="region"):
        rest_base_url(region="mars")


def test_the_key_never_shows_in_reprs_or_errors() -> None:
    with pytest.raises(InvalidURL) as refused:  # user info is refused, its password masked
        RestApi("https://user:pw@h/api/", KEY)
    assert "pw" not in str(refused.value) and "user:***@h" in str(refused.value)
    api = RestApi("https://h/api/", KEY)
    call = api.credits()
    with pytest.raises(AuthenticationError) as error:
        call.parse(401, {}, b'{"detail":"bad key"}')
    token = Token(token="tok-secret", expires_at=datetime.now(UTC))
    shown = [repr(api), repr(call), str(error.value), repr(token),
             repr(RestSettings("https://h/api/", KEY)), repr(AsyncRestClient("https://h/", KEY)),
             repr(RestClient("https://h/", KEY))]
    for text in shown:
        assert KEY not in text and "pw" not in text and "tok-secret" not in text
    assert "***" in repr(api) and "***" in repr(token)


def test_flagship_voices_cover_every_target_language() -> None:
    assert tuple(sorted(FLAGSHIP_VOICES)) == tuple(sorted(TARGET_LANGUAGES))
    assert FLAGSHIP_VOICES["fr"] == "b35yykvVppLXyw_l"
    with pytest.raises(TypeError):
        FLAGSHIP_VOICES["fr"] = "x"  # type: ignore[index]


# --- the sans-IO core: answers ---


def test_voice_list_reads_voices_ignoring_unknown_fields() -> None:
    body = (b'[{"uid":"a","name":"Elise","language":"fr","description":"warm",'
            b'"is_catalog":true,"start_s":0.5,"tags":[{"category":"gender","value":"feminine",'
            b'"id":7}],"created_at":"2025-01-01","owner":{"org":1}},'
            b'{"uid":"b"}]')
    voices = API.voice_list().parse(200, {}, body)
    assert voices[0] == Voice(uid="a", name="Elise", language="fr", description="warm",
                              is_catalog=True, start_s=0.5, tags=voices[0].tags)
    assert voices[0].tag("gender") == "feminine" and voices[0].tag("region") is None
    assert voices[1] == Voice(uid="b")  # missing optional fields take their defaults


def test_null_fields_count_as_missing() -> None:
    body = b'{"uid":"x","name":null,"language":null,"is_catalog":null,"tags":null}'
    assert API.voice_get("x").parse(200, {}, body) == Voice(uid="x")


def test_voice_list_accepts_an_envelope_object() -> None:
    voices = API.voice_list().parse(200, {}, b'{"voices":[{"uid":"a"}],"total":1}')
    assert [v.uid for v in voices] == ["a"]


@pytest.mark.parametrize(("body", "words"), [
    (b"<html>maintenance</html>", ["voice_list", "not JSON", "text/html", "maintenance"]),
    (b'{"uid":"a"}', ["voice_list", "array of voices", "an object"]),
    (b'[{"uid":"a"},[1]]', ["voice_list", "voice 1", "JSON object"]),
    (b'[{"name":"no uid"}]', ["voice_list", "voice 0", "uid"]),
    (b'[{"uid":"a","is_catalog":"maybe"}]', ["voice_list", "is_catalog"]),
])
def test_unreadable_answers_name_the_endpoint(body: bytes, words: list[str]) -> None:
    with pytest.raises(InvalidResponse) as info:
        API.voice_list().parse(200, {"Content-Type": "text/html"}, body)
    for word in words:
        assert word in str(info.value)
    assert info.value.status == 200 and isinstance(info.value, ValueError)


def test_credits_are_read_leniently_but_need_remaining() -> None:
    credits = API.credits().parse(200, {}, b'{"remaining":120,"allocated":"3600","plan":"pro"}')
    assert credits == Credits(remaining=120.0, allocated=3600.0) and not credits.exhausted
    assert API.credits().parse(200, {}, b'{"remaining":0}').exhausted
    with pytest.raises(InvalidResponse, match=r"credits.*remaining"):
        API.credits().parse(200, {}, b'{"allocated":5}')


@pytest.mark.parametrize(("expires", "expected"), [
    ('"2030-01-02T03:04:05Z"', datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ('"2030-01-02T05:04:05+02:00"', datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ('"2030-01-02T03:04:05.123456"', datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ("1893553445", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
])
def test_token_expiry_is_timezone_aware(expires: str, expected: datetime) -> None:
    token = API.mint_token().parse(200, {}, f'{{"token":"t","expires_at":{expires}}}'.encode())
    assert token.token == "t" and token.expires_at == expected
    assert token.expires_at.tzinfo is not None


@pytest.mark.parametrize("body", [b'{"token":"","expires_at":"2030-01-01T00:00:00Z"}',
                                  b'{"token":"t"}', b'{"token":"t","expires_at":"soon"}'])
def test_bad_tokens_are_invalid_responses(body: bytes) -> None:
    with pytest.raises(InvalidResponse, match="mint_token"):
        API.mint_token().parse(200, {}, body)


@pytest.mark.parametrize(("status", "body", "kind", "detail", "retryable"), [
    (401, b'{"detail":"Invalid API key"}', AuthenticationError, "Invalid API key", False),
    (403, b'{"error":"revoked"}', AuthenticationError, "revoked", False),
    (404, b'{"detail":"Voice not found"}', NotFound, "Voice not found", False),
    (422, b'{"detail":[{"loc":["limit"],"msg":"bad"}]}', RestError,
     '[{"loc":["limit"],"msg":"bad"}]', False),
    (429, b'{"detail":"slow down"}', RestError, "slow down", True),
    (500, b'{"error":"boom"}', RestError, "boom", True),
    (502, b"<html>Bad gateway</html>", RestError, "<html>Bad gateway</html>", True),
    (503, b"", RestError, "Service Unavailable", True),
])
def test_error_statuses_are_typed_with_the_servers_text(
        status: int, body: bytes, kind: type[RestError], detail: str, retryable: bool) -> None:
    with pytest.raises(kind) as info:
        API.voice_get("x").parse(status, {}, body)
    error = info.value
    assert type(error) is kind and isinstance(error, S2SError)
    assert (error.status, error.detail, error.retryable) == (status, detail, retryable)
    assert error.url == "https://api.example.com/api/voices/x" and error.endpoint == "voice_get"
    assert str(status) in str(error) and detail in str(error)


def test_error_classes_are_also_builtin_errors() -> None:
    assert issubclass(NotFound, LookupError) and issubclass(AuthenticationError, PermissionError)
    assert issubclass(InvalidResponse, ValueError) and issubclass(MissingApiKey, ValueError)


# --- the local server's REST side, without I/O ---


def test_server_connection_answers_a_plain_get() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET /api/usages/credits?x=1 HTTP/1.1\r\nhost: h\r\n"
                      b"x-api-key: k\r\n\r\n")
    request = conn.http_request
    assert request is not None and conn.events_received() == []
    assert (request.method, request.target, request.header("X-API-KEY")) == (
        "GET", "/api/usages/credits?x=1", "k")
    assert "k" not in repr(request) and "x=1" not in repr(request)
    conn.respond(200, b'{"remaining":1}')
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "h")]))
    client.receive_data(conn.data_to_send())
    response, data = client.next_event(), client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == 200
    assert (b"content-type", b"application/json") in list(response.headers)
    assert isinstance(data, h11.Data) and data.data == b'{"remaining":1}'
    assert conn.state.value == "closed"
    with pytest.raises(LocalProtocolError):
        conn.respond(200)


def test_a_head_request_gets_headers_only() -> None:
    conn = ServerConnection()
    conn.receive_data(b"HEAD /api/voices/ HTTP/1.1\r\nhost: h\r\n\r\n")
    conn.respond(200, b"[]")
    head = conn.data_to_send()
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 2" in head
    assert head.endswith(b"\r\n\r\n")


def test_server_connection_still_upgrades_and_refuses_broken_upgrades() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET /api/speech/s2s HTTP/1.1\r\nhost: h\r\nconnection: Upgrade\r\n"
                      b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
                      b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert isinstance(conn.events_received()[0], UpgradeRequest) and conn.http_request is None
    broken = ServerConnection()  # asks for an upgrade without its key: still a 400
    broken.receive_data(b"GET / HTTP/1.1\r\nhost: h\r\nconnection: Upgrade\r\n"
                        b"upgrade: websocket\r\n\r\n")
    assert broken.http_request is None
    assert broken.data_to_send().startswith(b"HTTP/1.1 400")
    garbage = ServerConnection()
    garbage.receive_data(b"\x16\x03\x01 not http\r\n\r\n")
    assert garbage.http_request is None and garbage.data_to_send().startswith(b"HTTP/1.1 400")


def test_local_routes() -> None:
    rest, tokens = LocalRest(), set[str]()

    def get(target: str, key: str | None = "k", keys: frozenset[str] | None = None) -> Any:
        return rest.answer("GET", target, key, api_keys=keys, tokens=tokens, now=1e9)

    every = API.voice_list().parse(200, {}, get("/api/voices/?limit=0&include_catalog=1").body)
    assert every == list(LOCAL_VOICES)
    own = API.voice_list().parse(200, {}, get("/api/voices/?limit=0&include_catalog=0").body)
    assert own and not any(v.is_catalog for v in own)
    assert len(API.voice_list().parse(200, {}, get("/api/voices?limit=2&include_catalog=1")
                                      .body)) == 2
    for language, uid in FLAGSHIP_VOICES.items():
        voice = API.voice_get(uid).parse(200, {}, get(f"/api/voices/{uid}").body)
        assert voice.language == language and voice.is_catalog
    missing = get("/api/voices/nope")
    assert missing.status == 404 and b'"detail"' in missing.body
    assert get("/api/voices/?include_catalog=maybe").status == 422
    assert get("/api/elsewhere").status == 404 and get("/other").status == 404
    assert rest.answer("POST", "/api/voices/", "k", api_keys=None, tokens=tokens,
                       now=0).status == 405
    refused = get("/api/usages/credits", key="bad", keys=frozenset({"k"}))
    assert refused.status == 401 and b"API key" in refused.body
    assert get("/api/usages/credits", key="k", keys=frozenset({"k"})).status == 200


def test_token_store_mints_single_use_tokens_into_the_servers_set() -> None:
    accepted: set[str] = set()
    store = TokenStore(accepted, ttl_s=60)
    one, two = store.mint(1e9), store.mint(1e9)
    assert one.token != two.token and accepted == {one.token, two.token}
    assert one.expires_at == datetime.fromtimestamp(1e9, UTC) + timedelta(seconds=60)


def test_metered_engines_charge_input_seconds_and_refuse_when_empty() -> None:
    rest = LocalRest(credits=1.0)
    factory = rest.metered(lambda setup, limit: LoopbackEngine(
        setup.input_format, setup.output_format, max_audio_s=limit))
    setup = Setup(voice_id="v", input_format="pcm", output_format="pcm")
    engine = factory(setup, 300.0)
    engine.feed(bytes(24000))  # 0.5 s of pcm at 24 kHz
    assert rest.ledger.remaining == pytest.approx(0.5)
    engine.feed(bytes(48000))  # 1 s more: the balance stops at zero
    engine.finish()
    assert rest.ledger.remaining == 0 and rest.ledger.exhausted
    with pytest.raises(EngineError) as info:
        factory(setup, 300.0)
    assert info.value.code == 1008 and "credits" in info.value.message


def test_credit_ledger() -> None:
    ledger = CreditLedger(10)
    ledger.charge(2.5)
    assert (ledger.remaining, ledger.allocated, ledger.exhausted) == (7.5, 10.0, False)


# --- every adapter mode against the local server ---


class RestRunner:
    """Runs one REST call with the client of an adapter mode."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.harness: Harness = harness_for(mode)

    def __call__(self, url: str, name: str, *args: Any, api_key: str | None = KEY,
                 **settings: Any) -> Any:
        settings = {"timeout": 10.0, **settings}
        base_url = rest_base_from_s2s_url(url)
        if self.mode == "threaded":
            return getattr(RestClient(base_url, api_key, **settings), name)(*args)
        aclient = AsyncRestClient(base_url, api_key, **settings)

        async def go() -> Any:
            call: Callable[..., Awaitable[Any]] = getattr(aclient, name)
            return await call(*args)

        return self.harness.run(go)  # type: ignore[attr-defined]


@pytest.fixture(params=MODES)
def rest(request: pytest.FixtureRequest) -> RestRunner:
    return RestRunner(request.param)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server(api_keys=[KEY]) as server_url:
        yield server_url


AUDIO = tone_burst()  # 1.6 s at 24 kHz
TRANSLATE = Setup(voice_id=FLAGSHIP_VOICES["fr"], input_format="pcm", output_format="pcm",
                  json_config={"target_language": "fr"})


def test_voice_list_finds_a_french_catalog_voice(rest: RestRunner, url: str) -> None:
    voices = rest(url, "voice_list")
    french = [v for v in voices if v.language == "fr" and v.is_catalog]
    assert FLAGSHIP_VOICES["fr"] in [v.uid for v in french]
    own = rest(url, "voice_list", False)
    assert own and not any(v.is_catalog for v in own)


def test_voice_get_of_an_unknown_uid_is_a_typed_404(rest: RestRunner, url: str) -> None:
    assert rest(url, "voice_get", FLAGSHIP_VOICES["de"]).language == "de"
    with pytest.raises(NotFound) as info:
        rest(url, "voice_get", "no-such-voice")
    assert info.value.status == 404 and "no-such-voice" in info.value.detail


def test_a_bad_key_is_an_authentication_error(rest: RestRunner, url: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        rest(url, "credits", api_key="wrong")
    assert info.value.status == 401 and "wrong" not in str(info.value)


def test_credits_decrease_with_the_audio_translated(rest: RestRunner) -> None:
    with run_server(api_keys=[KEY], rest=LocalRest(credits=100.0)) as url:
        before = rest(url, "credits")
        assert before == Credits(remaining=100.0, allocated=100.0)
        result = rest.harness.s2s(url, TRANSLATE, AUDIO, api_key=KEY, pace=None,
                                  trailing_silence_s=0.4)
        assert result.complete
        after = rest(url, "credits")
        # Everything sent is billed: the audio, its trailing silence and its lead-in.
        spent = 1.6 + 0.4 + LEAD_IN_SILENCE_S
        assert before.remaining - after.remaining == pytest.approx(spent, abs=1e-3)


def test_no_credits_left_refuses_sessions_with_1008(rest: RestRunner) -> None:
    with run_server(api_keys=[KEY], rest=LocalRest(credits=1.0)) as url:
        assert rest.harness.s2s(url, TRANSLATE, AUDIO, api_key=KEY, pace=None).complete
        assert rest(url, "credits").exhausted
        with pytest.raises(PolicyViolation) as info:
            rest.harness.s2s(url, TRANSLATE, AUDIO, api_key=KEY, pace=None)
        assert info.value.code == 1008 and "credits" in info.value.message


def test_a_minted_token_opens_exactly_one_session(rest: RestRunner, url: str) -> None:
    token = rest(url, "mint_token")
    assert token.expires_at > datetime.now(UTC)
    result = rest.harness.s2s(url, TRANSLATE, AUDIO[:2400], token=token.token, pace=None)
    assert result.complete
    with pytest.raises(PolicyViolation) as info:
        rest.harness.s2s(url, TRANSLATE, AUDIO[:2400], token=token.token, pace=None)
    assert info.value.code == 1008


def test_a_used_token_gets_error_1008_then_close_1008(url: str) -> None:
    token = RestRunner("threaded")(url, "mint_token")
    with_token = url + "?token=" + token.token
    first = RawClient(with_token, key=None)
    first.send(RAW_SETUP)
    first.send({"type": "end_of_stream"})
    assert [m["type"] for m in first.until_closed()] == ["ready", "end_of_stream"]
    second = RawClient(with_token, key=None)
    [error] = second.until_closed()
    assert error["type"] == "error" and error["code"] == 1008
    assert second.close is not None and second.close.code == 1008


def test_minting_needs_a_valid_key(rest: RestRunner, url: str) -> None:
    with pytest.raises(AuthenticationError):
        rest(url, "mint_token", api_key="wrong")


def test_a_refused_connection_is_a_connect_error(rest: RestRunner) -> None:
    with run_server() as url:
        pass  # the port is closed again
    with pytest.raises(ConnectError, match="credits"):
        rest(url, "credits")


def test_a_silent_server_times_out(rest: RestRunner) -> None:
    with socket.socket() as listener:  # the kernel accepts; nobody ever answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/api/speech/s2s"
        with pytest.raises(S2STimeoutError, match=r"no answer within 0\.3 s"):
            rest(url, "voice_list", timeout=0.3)


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_rest_uses_the_tls_context(rest: RestRunner,
                                   tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with run_server(ssl_context=server_ctx) as url:
        assert url.startswith("wss://")
        assert rest(url, "credits", ssl_context=client_ctx).remaining > 0
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            rest(url, "credits")  # verification is on: the test CA is not trusted


def test_httpx_is_imported_on_the_first_call_only() -> None:
    code = ("import sys, _s2s_async.rest, s2s_threaded.rest, s2s_core.rest\n"
            "assert 'httpx' not in sys.modules, 'imported with the clients'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_server_answers_rest_on_trio_too() -> None:
    with run_server(backend="trio", api_keys=[KEY]) as url:
        voices = RestRunner("threaded")(url, "voice_list")
    assert {v.language for v in voices if v.is_catalog} == set(TARGET_LANGUAGES)


@pytest.mark.parametrize("adapter", ["anyio-asyncio", "anyio-trio", "trio", "threaded"])
def test_every_s2s_client_has_the_rest_calls(adapter: str) -> None:
    """``S2SClient`` of each adapter carries voice_list/voice_get/credits/mint_token."""
    import anyio
    import trio

    import s2s_anyio
    import s2s_threaded
    import s2s_trio
    from harness import base_url_of

    with run_server() as url:
        base = base_url_of(url)
        if adapter == "threaded":
            client = s2s_threaded.S2SClient("k", base_url=base)
            voices = client.voice_list()
            credits = client.credits()
        else:
            async def calls() -> tuple[list[Any], Any]:
                module: Any = s2s_trio if adapter == "trio" else s2s_anyio
                aclient = module.S2SClient("k", base_url=base)
                return await aclient.voice_list(), await aclient.credits()

            if adapter == "trio":
                voices, credits = trio.run(calls)
            else:
                voices, credits = anyio.run(calls, backend=adapter.split("-")[1])
    assert any(v.language == "fr" and v.is_catalog for v in voices)
    assert credits.remaining > 0
