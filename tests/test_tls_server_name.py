"""``ClientOptions(server_hostname=...)`` on every adapter mode: reaching a TLS server by
an address of its own (127.0.0.1) while its certificate names the service.

With the name, the connection verifies and works; without it, verification fails,
and that failure is final for the retry policy (one TCP connection, one attempt).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core.errors import ConnectError
from s2s_core.events import EndOfStream
from s2s_core.options import ClientOptions
from s2s_core.retry import ErrorClass, classify
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

NAME = "s2s.invalid"  # RFC 6761: never resolves; only the certificate carries it
SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm")
AUDIO = tone_burst(0.1, 0.3, 24000)


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(context)  # no IP address in the certificate
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module")
def url(server_tls: ssl.SSLContext) -> Iterator[str]:
    with run_server(ssl_context=server_tls) as server_url:
        assert server_url.startswith("wss://127.0.0.1:")
        yield server_url


def test_s2s_by_address_with_the_service_name(harness: Harness, url: str,
                                              client_tls: ssl.SSLContext) -> None:
    options = ClientOptions(server_hostname=NAME)
    result = harness.s2s(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.0,
                         ssl_context=client_tls, options=options)
    assert result.complete and len(result.raw_data) == len(AUDIO) * 4


def test_realtime_by_address_with_the_service_name(harness: Harness, url: str,
                                                   client_tls: ssl.SSLContext) -> None:
    options = ClientOptions(server_hostname=NAME)
    events = harness.realtime(url, SETUP, [b"\x00\x00" * 4800], ssl_context=client_tls,
                              options=options)
    assert isinstance(events[-1], EndOfStream)


class CountingTlsListener:
    """Accepts TCP connections, counts them, and presents the certificate on each."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        self.accepted += 1
        conn.settimeout(5)
        # The client refuses the certificate: the handshake ends in an alert or a reset.
        with conn, contextlib.suppress(OSError), \
                self._context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    def close(self) -> int:
        """Stop; count what is still in the backlog too; return the connections seen."""
        self._stop.set()
        self._thread.join(10)
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                conn, _ = self._sock.accept()
                conn.close()
                self.accepted += 1
        self._sock.close()
        return self.accepted


def test_without_the_name_verification_fails_once(harness: Harness, server_tls: ssl.SSLContext,
                                                  client_tls: ssl.SSLContext) -> None:
    listener = CountingTlsListener(server_tls)
    error: Any = None
    try:
        harness.s2s(f"wss://127.0.0.1:{listener.port}/api/speech/s2s", SETUP, AUDIO, pace=None,
                    ssl_context=client_tls, options=ClientOptions())  # the default retry policy
    except ConnectError as exc:
        error = exc
    finally:
        accepted = listener.close()
    assert isinstance(error, ConnectError), repr(error)
    causes, cause = [], error
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes
    assert classify(error) is ErrorClass.FINAL and not error.retryable
    assert len(error.attempts) == 1 and "final" in error.attempts[0].outcome
    assert accepted == 1  # one connection attempt: a retry cannot fix a certificate
