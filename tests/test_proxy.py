"""Issue 15: proxies. The rules of ``proxy_for``, and every adapter mode through a real
CONNECT (and SOCKS5) proxy to a host name that only the proxy can resolve."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator

import pytest
import trustme

from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core.errors import ConnectError, ConnectTimeout, S2SError
from s2s_core.options import ClientOptions
from s2s_core.proxy import (
    InvalidProxy,
    ProxyConfig,
    ProxyError,
    bypasses_proxy,
    proxy_for,
)
from s2s_core.retry import ErrorClass, classify
from s2s_core.setup import Setup
from tunnel_proxy import TunnelProxy, running_proxy

pytestmark = pytest.mark.timeout(60)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
AUDIO = tone_burst(0.1, 0.3, 24000)
NAME = "s2s.invalid"  # RFC 6761: never resolves, so only the proxy can reach it
SECRET = "pw-SENTINEL-7f3a"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
              "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


# --- proxy_for: which proxy, from the arguments and the environment ---


def env(**values: str) -> dict[str, str]:
    return dict(values)


def test_explicit_proxy_wins_over_the_environment_and_no_proxy() -> None:
    environ = env(https_proxy="http://envproxy:1", no_proxy="*")
    got = proxy_for("wss://api.example.com/x", proxy="http://mine:3128", environ=environ)
    assert got == ProxyConfig("http", "mine", 3128)
    config = ProxyConfig("socks5h", "s", 1080)
    assert proxy_for("ws://h/", proxy=config, environ=environ) is config


@pytest.mark.parametrize(("url", "expected"), [
    ("wss://api.example.com/api/speech/s2s", "secure"),
    ("https://api.example.com/", "secure"),
    ("ws://127.0.0.1:8765/api/speech/s2s", "plain"),
    ("http://127.0.0.1:8765/", "plain"),
])
def test_scheme_picks_the_variable(url: str, expected: str) -> None:
    environ = env(https_proxy="http://secure:1", http_proxy="http://plain:2")
    got = proxy_for(url, environ=environ)
    assert got is not None and got.host == expected


def test_all_proxy_is_the_fallback() -> None:
    assert proxy_for("wss://h/", environ=env(all_proxy="socks5h://s:9")) == ProxyConfig(
        "socks5h", "s", 9)
    assert proxy_for("ws://h/", environ=env(ALL_PROXY="http://a:7"),
                     ) == ProxyConfig("http", "a", 7)
    both = env(https_proxy="http://first:1", all_proxy="http://second:2")
    assert proxy_for("wss://h/", environ=both) == ProxyConfig("http", "first", 1)


def test_lower_case_wins_and_upper_case_alone_counts() -> None:
    both = env(https_proxy="http://lower:1", HTTPS_PROXY="http://upper:2")
    assert proxy_for("wss://h/", environ=both) == ProxyConfig("http", "lower", 1)
    assert proxy_for("wss://h/", environ=env(HTTPS_PROXY="http://upper:2")) == ProxyConfig(
        "http", "upper", 2)
    bypass = env(https_proxy="http://p:1", no_proxy="other.com", NO_PROXY="h")
    assert proxy_for("wss://h/", environ=bypass) is not None  # lower-case no_proxy rules
    assert proxy_for("wss://h/", environ=env(https_proxy="http://p:1", NO_PROXY="h")) is None


def test_empty_values_count_as_unset() -> None:
    environ = env(https_proxy="", HTTPS_PROXY="http://upper:2", no_proxy="")
    assert proxy_for("wss://h/", environ=environ) == ProxyConfig("http", "upper", 2)
    assert proxy_for("wss://h/", environ=env(https_proxy="  ")) is None


def test_upper_case_http_proxy_is_ignored_in_cgi() -> None:
    cgi = env(HTTP_PROXY="http://attacker:1", REQUEST_METHOD="GET")
    assert proxy_for("ws://h/", environ=cgi) is None
    cgi["http_proxy"] = "http://admin:2"
    assert proxy_for("ws://h/", environ=cgi) == ProxyConfig("http", "admin", 2)


def test_trust_env_false_ignores_the_environment() -> None:
    environ = env(https_proxy="http://p:1", http_proxy="http://p:1", all_proxy="http://p:1")
    assert proxy_for("wss://h/", trust_env=False, environ=environ) is None
    assert proxy_for("wss://h/", proxy="http://q:2", trust_env=False,
                     environ=environ) == ProxyConfig("http", "q", 2)


def test_os_environ_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://fromenv:8")
    assert proxy_for("wss://h/") == ProxyConfig("http", "fromenv", 8)


@pytest.mark.parametrize(("host", "port", "no_proxy", "bypassed"), [
    ("api.example.com", 443, "*", True),
    ("api.example.com", 443, "api.example.com", True),
    ("API.Example.COM", 443, "api.example.com", True),
    ("api.example.com", 443, "API.EXAMPLE.COM", True),
    ("api.example.com", 443, "example.com", True),
    ("example.com", 443, "example.com", True),
    ("api.example.com", 443, ".example.com", True),
    ("example.com", 443, ".example.com", True),
    ("api.example.com", 443, "*.example.com", True),
    ("badexample.com", 443, "example.com", False),
    ("example.com.evil.net", 443, "example.com", False),
    ("api.example.com", 443, "other.com, example.com", True),
    ("api.example.com", 443, "other.com example.com", True),
    ("api.example.com", 443, "api.example.com:443", True),
    ("api.example.com", 443, "api.example.com:8443", False),
    ("api.example.com.", 443, "example.com", True),
    ("10.1.2.3", 80, "10.1.2.3", True),
    ("10.1.2.3", 80, "10.0.0.0/8", True),
    ("11.1.2.3", 80, "10.0.0.0/8", False),
    ("10.1.2.3", 80, "10.1.2.3:80", True),
    ("10.1.2.3", 80, "10.1.2.3:81", False),
    ("::1", 80, "::1", True),
    ("[::1]", 80, "::1", True),
    ("::1", 80, "[::1]:80", True),
    ("::1", 80, "[::1]:81", False),
    ("fe80::1", 80, "fe80::/10", True),
    ("10.1.2.3", 80, "::1", False),
    ("example.com", 80, "10.0.0.0/8", False),  # no DNS lookup for IP entries
    ("api.example.com", 443, "", False),
    ("api.example.com", 443, " , ,", False),
    ("api.example.com", 443, "example.com:notaport", False),
])
def test_no_proxy_rules(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypassed


def test_no_proxy_uses_the_urls_default_port() -> None:
    environ = env(https_proxy="http://p:1", no_proxy="h:443")
    assert proxy_for("wss://h/x", environ=environ) is None
    assert proxy_for("wss://h:8443/x", environ=environ) is not None


@pytest.mark.parametrize(("url", "expected"), [
    ("http://p", ProxyConfig("http", "p", 80)),
    ("p:3128", ProxyConfig("http", "p", 3128)),
    ("HTTP://P:1", ProxyConfig("http", "p", 1)),
    ("socks5://s", ProxyConfig("socks5", "s", 1080)),
    ("socks5h://s:9", ProxyConfig("socks5h", "s", 9)),
    ("socks4a://s", ProxyConfig("socks4a", "s", 1080)),
    ("http://[::1]:3128", ProxyConfig("http", "::1", 3128)),
    ("http://us%40er:p%3Aw@p:1", ProxyConfig("http", "p", 1, "us@er", "p:w")),
])
def test_proxy_urls(url: str, expected: ProxyConfig) -> None:
    assert ProxyConfig.parse(url) == expected


@pytest.mark.parametrize("url", [
    f"https://user:{SECRET}@p:443",
    f"ftp://user:{SECRET}@p:21",
    f"http://user:{SECRET}@p:notaport",
    f"http://user:{SECRET}@:3128",
])
def test_bad_proxy_urls_are_typed_and_hide_the_password(url: str) -> None:
    with pytest.raises(InvalidProxy) as info:
        ProxyConfig.parse(url)
    assert isinstance(info.value, ValueError) and isinstance(info.value, S2SError)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.args)
    assert "***@" in str(info.value)


def test_config_never_shows_credentials() -> None:
    config = ProxyConfig.parse(f"http://user:{SECRET}@proxy.corp:3128")
    assert config.password == SECRET
    for text in (str(config), repr(config), config.url, f"{config}", f"{config!r}"):
        assert SECRET not in text and "user" not in text
    assert str(config) == "http://proxy.corp:3128"
    assert repr(config) == "ProxyConfig('http://***@proxy.corp:3128')"


# --- every adapter mode through a real proxy ---


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def plain_port() -> Iterator[int]:
    with run_server() as url:
        yield _port(url)


@pytest.fixture(scope="module")
def tls_port(ca: trustme.CA) -> Iterator[int]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(server)
    with run_server(ssl_context=server) as url:
        yield _port(url)


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _port(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


def _url(port: int, *, secure: bool, host: str = NAME) -> str:
    return f"{'wss' if secure else 'ws'}://{host}:{port}/api/speech/s2s"


def _complete(harness: Harness, url: str, **kwargs: object) -> None:
    result = harness.s2s(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.0, **kwargs)
    assert result.complete and len(result.raw_data) > 0


def test_the_name_resolves_only_through_the_proxy(harness: Harness, plain_port: int) -> None:
    with pytest.raises(ConnectError):
        harness.s2s(_url(plain_port, secure=False), SETUP, AUDIO, pace=None)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_plain_ws_through_the_environment(harness: Harness, plain_port: int, variable: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with running_proxy({NAME: ("127.0.0.1", plain_port)}) as proxy:
        monkeypatch.setenv(variable, f"http://{proxy.url}")
        _complete(harness, _url(plain_port, secure=False))
    assert proxy.tunnels == [f"{NAME}:{plain_port}"]


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_tls_inside_the_tunnel_through_the_environment(
        harness: Harness, tls_port: int, client_tls: ssl.SSLContext, variable: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with running_proxy({NAME: ("127.0.0.1", tls_port)}) as proxy:
        monkeypatch.setenv(variable, proxy.url)  # no scheme: http://
        _complete(harness, _url(tls_port, secure=True), ssl_context=client_tls)
    assert proxy.tunnels == [f"{NAME}:{tls_port}"]


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_explicit_proxy_with_credentials(harness: Harness, plain_port: int, tls_port: int,
                                         client_tls: ssl.SSLContext, secure: bool) -> None:
    port = tls_port if secure else plain_port
    with running_proxy({NAME: ("127.0.0.1", port)}, credentials=("user", SECRET)) as proxy:
        options = ClientOptions(proxy=f"http://user:{SECRET}@{proxy.url}")
        _complete(harness, _url(port, secure=secure), options=options,
                  **({"ssl_context": client_tls} if secure else {}))
    assert proxy.tunnels == [f"{NAME}:{port}"] and proxy.refused == []


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_socks5h_with_credentials(harness: Harness, plain_port: int, tls_port: int,
                                  client_tls: ssl.SSLContext, secure: bool) -> None:
    port = tls_port if secure else plain_port
    with running_proxy({NAME: ("127.0.0.1", port)}, credentials=("user", SECRET)) as proxy:
        options = ClientOptions(proxy=f"socks5h://user:{SECRET}@{proxy.url}")
        _complete(harness, _url(port, secure=secure), options=options,
                  **({"ssl_context": client_tls} if secure else {}))
    assert proxy.tunnels == [f"{NAME}:{port}"]


def test_tls_is_verified_against_the_service_not_the_proxy(
        harness: Harness, tls_port: int, client_tls: ssl.SSLContext) -> None:
    # The proxy reaches the same server under another name: its certificate
    # names s2s.invalid, so the client must refuse it.
    with running_proxy({"other.invalid": ("127.0.0.1", tls_port)}) as proxy:
        options = ClientOptions(proxy=f"http://{proxy.url}")
        with pytest.raises(ConnectError) as info:
            harness.s2s(_url(tls_port, secure=True, host="other.invalid"), SETUP, AUDIO,
                        pace=None, ssl_context=client_tls, options=options)
    assert not isinstance(info.value, ProxyError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert proxy.tunnels == [f"other.invalid:{tls_port}"]


def test_no_proxy_bypasses_it(harness: Harness, plain_port: int,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    with running_proxy({NAME: ("127.0.0.1", plain_port)}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.url}")
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        _complete(harness, _url(plain_port, secure=False, host="127.0.0.1"))
    assert proxy.tunnels == []


def test_trust_env_false_ignores_the_proxy_variables(harness: Harness, plain_port: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with running_proxy({NAME: ("127.0.0.1", plain_port)}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.url}")
        monkeypatch.setenv("ALL_PROXY", f"http://{proxy.url}")
        _complete(harness, _url(plain_port, secure=False, host="127.0.0.1"),
                  options=ClientOptions(trust_env=False))
    assert proxy.tunnels == []


def test_open_connection_takes_proxy_too(harness: Harness, plain_port: int) -> None:
    """The bare connection API (no S2SClient) has the same two arguments."""
    with running_proxy({NAME: ("127.0.0.1", plain_port)}) as proxy:
        _bare_connection(harness, _url(plain_port, secure=False), proxy=f"http://{proxy.url}")
    assert proxy.tunnels == [f"{NAME}:{plain_port}"]


def _bare_connection(harness: Harness, url: str, **kwargs: object) -> None:
    module = harness.module  # type: ignore[attr-defined]
    if harness.mode == "threaded":
        with module.open_connection(url, api_key="k", **kwargs) as conn:
            assert conn.core is not None
        return

    async def go() -> None:
        async with module.open_connection(url, api_key="k", **kwargs) as conn:
            assert conn.core is not None

    harness.run(go)  # type: ignore[attr-defined]


# --- refusals: typed, naming the proxy, never its password ---


def _refused(harness: Harness, proxy: TunnelProxy, port: int, proxy_url: str,
             caplog: pytest.LogCaptureFixture) -> ProxyError:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProxyError) as info:
        harness.s2s(_url(port, secure=False), SETUP, AUDIO, pace=None,
                    options=ClientOptions(proxy=proxy_url))
    error = info.value
    assert isinstance(error, ConnectError) and isinstance(error, ConnectionError)
    assert error.proxy == f"http://{proxy.url}"
    assert error.target == f"{NAME}:{port}"
    _assert_no_secret(error, caplog)
    return error


def _assert_no_secret(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:  # the whole chain
        seen.append(current)
        for text in (str(current), repr(current), repr(current.args),
                     repr(vars(current))):
            assert SECRET not in text
        current = current.__cause__ or current.__context__
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()


def test_407_is_a_typed_error_without_the_password(
        harness: Harness, plain_port: int, caplog: pytest.LogCaptureFixture) -> None:
    with running_proxy({NAME: ("127.0.0.1", plain_port)}, credentials=("user", "right")) as p:
        error = _refused(harness, p, plain_port, f"http://user:{SECRET}@{p.url}", caplog)
    assert error.status == 407 and "407" in str(error)
    assert p.refused == [407] and p.tunnels == []
    assert classify(error) is ErrorClass.FINAL and not error.retryable


def test_403_and_502_carry_the_status(harness: Harness, plain_port: int,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with running_proxy({NAME: ("127.0.0.1", plain_port)}, refuse_status=403) as p:
        forbidden = _refused(harness, p, plain_port, f"http://{p.url}", caplog)
    assert forbidden.status == 403 and classify(forbidden) is ErrorClass.FINAL
    with running_proxy({}) as p:  # the proxy cannot resolve the name either
        bad_gateway = _refused(harness, p, plain_port, f"http://user:{SECRET}@{p.url}", caplog)
    assert bad_gateway.status == 502 and classify(bad_gateway) is ErrorClass.TRANSIENT


def test_unreachable_proxy(harness: Harness, plain_port: int,
                           caplog: pytest.LogCaptureFixture) -> None:
    with running_proxy({}) as p:
        pass  # its port is closed again
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProxyError) as info:
        harness.s2s(_url(plain_port, secure=False), SETUP, AUDIO, pace=None,
                    options=ClientOptions(proxy=f"http://user:{SECRET}@{p.url}"))
    assert info.value.status is None and info.value.proxy == f"http://{p.url}"
    assert classify(info.value) is ErrorClass.TRANSIENT
    _assert_no_secret(info.value, caplog)


def test_socks5_auth_failure_hides_the_password(harness: Harness, plain_port: int,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with running_proxy({NAME: ("127.0.0.1", plain_port)}, credentials=("user", "right")) as p:
        caplog.set_level(logging.DEBUG)
        with pytest.raises(ProxyError) as info:
            harness.s2s(_url(plain_port, secure=False), SETUP, AUDIO, pace=None,
                        options=ClientOptions(proxy=f"socks5h://user:{SECRET}@{p.url}"))
    assert info.value.proxy == f"socks5h://{p.url}"
    _assert_no_secret(info.value, caplog)


def test_bad_proxy_setting_fails_before_connecting(harness: Harness, plain_port: int) -> None:
    with pytest.raises(InvalidProxy):
        harness.s2s(_url(plain_port, secure=False), SETUP, AUDIO, pace=None,
                    options=ClientOptions(proxy=f"https://user:{SECRET}@p:1"))


def test_a_silent_proxy_is_a_connect_timeout(harness: Harness, plain_port: int) -> None:
    # It completes TCP (the kernel's backlog) and never answers CONNECT.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"http://user:{SECRET}@127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ConnectTimeout) as info:
            harness.s2s(_url(plain_port, secure=False), SETUP, AUDIO, pace=None,
                        options=ClientOptions(proxy=address, connect_timeout=0.5))
    assert classify(info.value) is ErrorClass.TRANSIENT
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_options_never_show_the_proxy_password() -> None:
    options = ClientOptions(proxy=f"http://user:{SECRET}@p:1")
    assert SECRET not in repr(options) and SECRET not in str(options)
