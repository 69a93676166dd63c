"""The face every adapter's client shares: credentials, endpoint, options, stream info."""

from __future__ import annotations

import os
import ssl
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

from .audio_input import InputChunker, check_length
from .errors import LocalProtocolError, MissingCredentials
from .events import Ready
from .metrics import Metrics
from .options import ClientOptions
from .request_table import RequestHandle
from .rest import RestSettings
from .results import ResultCollector, TextWithTimestamps
from .setup import Setup
from .stitcher import Stitcher
from .urls import DEFAULT_BASE_URL, s2s_url

__all__ = ["ClientBase", "StreamInfo", "SessionBase", "SetupLike", "plan_input", "ChainView",
           "RequestView"]

SetupLike = Setup | Mapping[str, Any]
"""A ``Setup`` or the official SDK's setup dict."""


class ClientBase:
    """Credentials, endpoint and options of an ``S2SClient`` (any adapter).

    Args:
        api_key: Defaults to the GRADIUM_API_KEY environment variable.
        base_url: API base; ``http(s)`` becomes ``ws(s)`` by scheme only.
        region: Legacy ``"eu"``/``"us"`` hosts, only when asked for.
        token: A single-use token (``?token=``) instead of a key: it is
            good for one connection.
        ssl_context: Trust a custom CA (verification is always on).
        options: Timeouts, TLS, queue sizes.

    Raises:
        MissingCredentials: No key, no token and no GRADIUM_API_KEY.
    """

    def __init__(self, api_key: str | None = None, *, base_url: str = DEFAULT_BASE_URL,
                 region: str | None = None, token: str | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 options: ClientOptions | None = None) -> None:
        if api_key is None and token is None:
            api_key = os.environ.get("GRADIUM_API_KEY")
        if api_key is None and token is None:
            raise MissingCredentials(
                "no credentials: pass api_key=..., token=..., or set GRADIUM_API_KEY")
        options = options or ClientOptions()
        if ssl_context is not None:
            options = replace(options, ssl_context=ssl_context)
        self._api_key = api_key
        self._token = token
        self.url = s2s_url(base_url, region=region)
        self.options = options
        self._rest = RestSettings.for_s2s_url(
            self.url, api_key, ssl_context=options.ssl_context,
            timeout=options.connect_timeout, proxy=options.proxy, trust_env=options.trust_env,
            extra_headers=options.extra_headers)

    def __repr__(self) -> str:
        auth = "api_key=***" if self._api_key is not None else "token=***"
        return f"{type(self).__name__}(url={self.url!r}, {auth})"


class _HasRequest(Protocol):
    @property
    def ready(self) -> Ready | None: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]: ...


class _ChainRequest(Protocol):
    @property
    def ready(self) -> Ready | None: ...

    @property
    def metrics(self) -> Metrics: ...


ChainRequestT = TypeVar("ChainRequestT", bound=_ChainRequest)


class StreamInfo(Generic[ChainRequestT]):
    """What an ``S2SStream`` tells about its input's requests, as the official SDK names it."""

    _request: ChainView[ChainRequestT]

    @property
    def request(self) -> ChainRequestT:
        """The request being read now (the first one until it ends)."""
        return self._request.request

    @property
    def requests(self) -> list[ChainRequestT]:
        """Every request of the input started so far, in input order."""
        return self._request.requests

    @property
    def request_ids(self) -> list[str]:
        """The server's ids of the requests read so far, in input order."""
        return self._request.stitcher.request_ids

    @property
    def sample_rate(self) -> int | None:
        """Output sample rate from ``ready``."""
        ready = self._request.ready
        return ready.sample_rate if ready is not None else None

    @property
    def frame_size(self) -> int | None:
        """Output samples per frame from ``ready``, when sent."""
        ready = self._request.ready
        return ready.frame_size if ready is not None else None

    @property
    def request_id(self) -> str | None:
        """The server's request id."""
        ready = self._request.ready
        return ready.request_id if ready is not None else None

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments received so far."""
        return self._request.text_with_timestamps

    @property
    def metrics(self) -> Metrics:
        """Latency and throughput so far (live; final once the request ended)."""
        return self._request.metrics


class _HasCore(Protocol):
    @property
    def core(self) -> Any: ...


ConnT = TypeVar("ConnT", bound=_HasCore)
RequestT = TypeVar("RequestT", bound=_HasRequest)


class SessionBase(Generic[ConnT, RequestT]):
    """What a ``Session`` (a connection with its one request) tells, in every adapter."""

    def __init__(self, conn: ConnT, request: RequestT) -> None:
        self.connection = conn
        self.request = request

    def __repr__(self) -> str:
        return f"<Session {self.connection.core!r}>"

    @property
    def ready(self) -> Ready | None:
        """The server's ``ready``, once received."""
        return self.request.ready

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments received so far."""
        return self.request.text_with_timestamps

    @property
    def metrics(self) -> Metrics:
        """Latency and throughput so far (live; final once the request ended)."""
        return self.request.metrics


def plan_input(setup: SetupLike, audio: object, options: ClientOptions, *,
               sample_rate: int | None, trailing_silence_s: float, lead_in_silence_s: float,
               downmix: bool) -> tuple[Setup, Callable[[], InputChunker]]:
    """The setup and a chunker factory for one input of ``s2s``/``s2s_stream``.

    Every argument, and an input given whole, is checked here, before
    anything is sent. The factory makes one chunker per attempt (a fresh
    resampler and split plan each time).

    Raises:
        InvalidSetup: The setup is invalid.
        InvalidAudio: ``sample_rate``, a silence length or a whole array is
            refused.
        InputTooLong: A whole opus input is longer than ``max_request_s``.
    """
    checked = setup if isinstance(setup, Setup) else Setup.from_mapping(setup)

    def chunker() -> InputChunker:
        return InputChunker(checked, sample_rate=sample_rate,
                            trailing_silence_s=trailing_silence_s,
                            lead_in_silence_s=lead_in_silence_s,
                            max_request_s=options.max_request_s,
                            split_search_s=options.split_search_s, downmix=downmix)

    first = chunker()
    first.check(audio)
    check_length(first, audio)
    return checked, chunker


class _ChainLink(Protocol[ChainRequestT]):
    request: ChainRequestT | None


class ChainView(Generic[ChainRequestT]):
    """What a chain of requests (one input split over several) tells, in every adapter.

    The adapters' ``RequestChain`` keep their links (a request and its
    connection each) in ``_links`` by segment index and a ``Stitcher``.
    """

    _links: Mapping[int, _ChainLink[ChainRequestT]]
    stitcher: Stitcher

    def __repr__(self) -> str:
        return f"<RequestChain {len(self._links)} request(s), reading {self.stitcher.current}>"

    @property
    def ready(self) -> Ready | None:
        """The first request's ``ready``, once received."""
        first = self._links[0].request
        return first.ready if first is not None else None

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments read so far, in input time."""
        return self.stitcher.texts

    def _current_metrics(self) -> Metrics | None:
        """The current request's metrics, or None before any request started."""
        link = self._links.get(self.stitcher.current, self._links.get(0))
        request = None if link is None else link.request
        return None if request is None else request.metrics

    @property
    def metrics(self) -> Metrics:
        """The latency figures of the request being read now (live).

        A split input's requests each have their own; this is the current
        one's (the first request's until the second one's output begins).
        """
        return self.request.metrics

    @property
    def request(self) -> ChainRequestT:
        """The request being read now."""
        link = self._links.get(self.stitcher.current, self._links[0])
        request = link.request or self._links[0].request
        assert request is not None
        return request

    @property
    def requests(self) -> list[ChainRequestT]:
        """Every request started so far, in input order."""
        return [link.request for _, link in sorted(self._links.items())
                if link.request is not None]


class RequestView:
    """What a request tells (its setup, id, ready, texts, metrics), in every adapter.

    The adapters' ``Request`` add the waiting (async or blocking) on top of
    the core's ``RequestHandle``.
    """

    handle: RequestHandle
    _consumer: weakref.ref[object] | None = None

    def __repr__(self) -> str:
        return f"<Request {self.handle!r}>"

    def claim(self, consumer: object) -> None:
        """Make ``consumer`` the request's one iterator (until it ends or is dropped).

        Raises:
            LocalProtocolError: Another live iterator consumes this request.
        """
        current = self._consumer() if self._consumer is not None else None
        if current is consumer:
            return  # claimed already (every event of an iteration claims)
        if current is not None:
            raise LocalProtocolError("this request is already being iterated by another consumer")
        self._consumer = weakref.ref(consumer)

    def release(self, consumer: object) -> None:
        """``consumer`` stopped iterating."""
        if self._consumer is not None and self._consumer() is consumer:
            self._consumer = None

    @property
    def setup(self) -> Setup:
        """The request's setup."""
        return self.handle.setup

    @property
    def client_req_id(self) -> str | None:
        """The request's multiplexing id."""
        return self.handle.client_req_id

    @property
    def collector(self) -> ResultCollector:
        """What the request consumed so far."""
        return self.handle.collector

    @property
    def ready(self) -> Ready | None:
        """The server's ``ready``, once received."""
        return self.handle.ready

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments received so far (in iteration order)."""
        return self.handle.text_with_timestamps

    @property
    def metrics(self) -> Metrics:
        """Latency and throughput so far (live; final once the request ended)."""
        return self.handle.metrics()
