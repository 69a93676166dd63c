"""Every default of the client, defined once: timeouts, sizes, batch limits.

``ClientConnection``, the adapters' ``connect``/``open_connection`` and every
``S2SClient`` take their defaults from here, so the levels cannot drift.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypedDict

from .retry import RetryPolicy
from .splitter import check_split

__all__ = [
    "ClientOptions",
    "OptionKwargs",
    "CONNECT_TIMEOUT_S",
    "READY_TIMEOUT_S",
    "IDLE_TIMEOUT_S",
    "CLOSE_TIMEOUT_S",
    "PING_INTERVAL_S",
    "PING_TIMEOUT_S",
    "MAX_MESSAGE_SIZE",
    "MAX_HANDSHAKE_SIZE",
    "QUEUE_SIZE",
    "READ_SIZE",
    "READ_SIZE_MIN",
    "WRITE_BATCH_BYTES",
    "DRAIN_AFTER_WRITE_FAILURE_S",
    "LAST_WORDS_S",
    "THREAD_JOIN_S",
    "SOURCE_READ_AHEAD",
    "TRAILING_SILENCE_S",
    "LEAD_IN_SILENCE_S",
    "MAX_REQUEST_S",
    "SPLIT_SEARCH_S",
]

CONNECT_TIMEOUT_S = 10.0
"""TCP + TLS + WebSocket upgrade."""
READY_TIMEOUT_S = 15.0
"""From a setup to its ``ready``."""
IDLE_TIMEOUT_S = 60.0
"""Silence from the server while a request is live. Paced sessions see gaps
of ~3 s between output messages (PROTOCOL.md section 9), far below this."""
CLOSE_TIMEOUT_S = 5.0
"""The closing handshake."""
PING_INTERVAL_S = 20.0
"""Keepalive pings; the service closes sockets idle for about 5 minutes."""
PING_TIMEOUT_S = 20.0
"""Wait for a pong (suspended while our own backpressure stops reading)."""
MAX_MESSAGE_SIZE = 16 * 2**20
"""Largest message accepted (bytes); the service documents none."""
MAX_HANDSHAKE_SIZE = 64 * 2**10
"""Largest HTTP response head (and refusal body kept) in bytes."""
QUEUE_SIZE = 256
"""Events buffered per request before reading pauses (backpressure)."""
READ_SIZE = 256 * 1024
"""Most bytes asked of the transport per read (a burst's worth)."""
READ_SIZE_MIN = 16 * 1024
"""Bytes asked by the first read. A read that fills what it asked doubles the
next (up to ``READ_SIZE``); one under a quarter of it halves it back: a paced
session's reads (one ~10 KiB message) then never allocate 256 KiB each."""
WRITE_BATCH_BYTES = 48 * 1024
"""Input audio queued before one write, when several chunks are due at once."""
DRAIN_AFTER_WRITE_FAILURE_S = 1.0
"""After a failed write, how long the reader may still drain what the peer
sent (its error explains the failure) before the connection is declared
broken."""
LAST_WORDS_S = 1.0
"""How long a close echo may take to go out once the connection is closed."""
THREAD_JOIN_S = 5.0
"""How long ``close()`` waits for the threaded adapter's reader to exit."""
SOURCE_READ_AHEAD = 2
"""Pieces of an input source that may block (an iterator: a microphone, a pipe)
read ahead of need off the consuming thread: a live source's next piece is
taken as soon as it comes; a faster one waits (backpressure) with this many
pieces held."""
TRAILING_SILENCE_S = 2.0
"""Silence appended to raw input before end_of_stream (vendor field notes:
the recognizer needs it to finish the last words)."""
LEAD_IN_SILENCE_S = 0.32
"""Silence sent before raw input (field notes, PROTOCOL.md section 9: a word in
the first ~200 ms of a stream can be dropped by the recognizer; 250-300 ms of
lead-in keeps it). Output timings stay in input time (it is subtracted), and
its output is cut: 0.32 s is four 80 ms frames, so the cut falls on a frame
boundary and every output chunk keeps the service's frame size."""
MAX_REQUEST_S = 290.0
"""Most audio in one request, its lead-in and trailing silence included: a
longer input is split at pauses into several requests (the service takes at
most 300 s per request; 10 s of margin)."""
SPLIT_SEARCH_S = 60.0
"""How far before ``MAX_REQUEST_S`` a request's end is looked for (a pause)."""


class OptionKwargs(TypedDict, total=False):
    """The fields of ``ClientOptions`` as keyword arguments (``connect(..., **kwargs)``)."""

    ssl_context: ssl.SSLContext | None
    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None
    connect_timeout: float | None
    ready_timeout: float | None
    idle_timeout: float | None
    close_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    max_message_size: int | None
    queue_size: int
    proxy: str | None
    trust_env: bool
    retry: RetryPolicy | None
    server_hostname: str | None
    max_request_s: float | None
    split_search_s: float


@dataclass(frozen=True)
class ClientOptions:
    """Connection settings shared by every call of a client (any adapter).

    Attributes:
        ssl_context: Trust a custom CA (verification is always on).
        extra_headers: More upgrade headers; a name we also send replaces ours.
        connect_timeout: Seconds for TCP + TLS + upgrade (``ConnectTimeout``).
        ready_timeout: Seconds from setup to ready (``ReadyTimeout``).
        idle_timeout: Seconds of server silence while a request is live
            (``IdleTimeout``).
        close_timeout: Seconds for the closing handshake (``CloseTimeout``).
        ping_interval: Seconds between keepalive pings (None: off).
        ping_timeout: Seconds to wait for a pong (``KeepaliveTimeout``).
        max_message_size: Largest message accepted, bytes (``MessageTooBig``).
        queue_size: Events buffered per request before reading pauses.
        proxy: ``http://user:pass@host:port`` or ``socks5://...`` to tunnel
            through (never shown in a repr or an error).
        trust_env: With no ``proxy``, read ``HTTPS_PROXY``/``HTTP_PROXY``/
            ``ALL_PROXY``/``NO_PROXY`` (``s2s_core.proxy.proxy_for``).
        server_hostname: The TLS server name (SNI, certificate check) when it
            is not the URL's host, e.g. with ``extra_headers={"Host": ...}``
            to reach the service through an address of its own.
        retry: How ``S2SClient`` calls retry transient failures
            (``s2s_core.retry``); None turns retries off. Only what the
            caller cannot notice is retried: ``s2s`` (its result is whole or
            nothing), ``s2s_stream`` and ``s2s_realtime`` until ready, and a
            later request of a split input until its output reaches the caller.
        max_request_s: Most audio in one request of ``S2SClient``'s calls
            (lead-in and trailing silence included); a longer input (file or
            live) is split at pauses into
            several requests whose outputs reach you as one stream
            (``s2s_core.splitter``, ``s2s_core.stitcher``). None sends any
            input as one request (the service refuses more than 300 s).
        split_search_s: How far before ``max_request_s`` a pause is looked
            for (at most half a request); live audio in that window may be
            held back until a pause (or the limit) decides which request it
            goes to.
    """

    ssl_context: ssl.SSLContext | None = None
    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
    connect_timeout: float | None = CONNECT_TIMEOUT_S
    ready_timeout: float | None = READY_TIMEOUT_S
    idle_timeout: float | None = IDLE_TIMEOUT_S
    close_timeout: float | None = CLOSE_TIMEOUT_S
    ping_interval: float | None = PING_INTERVAL_S
    ping_timeout: float | None = PING_TIMEOUT_S
    max_message_size: int | None = MAX_MESSAGE_SIZE
    queue_size: int = QUEUE_SIZE
    proxy: str | None = field(default=None, repr=False)
    trust_env: bool = True
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    server_hostname: str | None = None
    max_request_s: float | None = MAX_REQUEST_S
    split_search_s: float = SPLIT_SEARCH_S

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size}")
        check_split(self.max_request_s, self.split_search_s)

    @classmethod
    def from_kwargs(cls, base: ClientOptions | None = None, **kwargs: Any) -> ClientOptions:
        """``base`` (or the defaults) with ``kwargs`` replacing fields.

        Raises:
            TypeError: A keyword is not an option (the message lists them).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; "
                            f"options are: {', '.join(sorted(names))}")
        values = {f.name: getattr(base, f.name) for f in fields(cls)} if base else {}
        values.update(kwargs)
        return cls(**values)

    def connection_kwargs(self) -> dict[str, Any]:
        """The ``ClientConnection`` arguments these options set."""
        return {"extra_headers": self.extra_headers, "ready_timeout": self.ready_timeout,
                "idle_timeout": self.idle_timeout, "close_timeout": self.close_timeout,
                "ping_interval": self.ping_interval, "ping_timeout": self.ping_timeout,
                "max_message_size": self.max_message_size}
