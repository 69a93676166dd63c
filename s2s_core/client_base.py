"""The face every adapter's client shares: credentials, endpoint, options, stream info."""

from __future__ import annotations

import os
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Generic, Self, TypeVar

from .chain import ChainRequest, ChainView
from .client_docs import EITHER, S2S_STREAM, shared_doc
from .errors import LocalProtocolError, MissingCredentials
from .events import Ready, ServerEvent
from .input_plan import InputAttempts, InputOptions, WholeInput, plan_input
from .metrics import Metrics
from .options import LEAD_IN_SILENCE_S, TRAILING_SILENCE_S, ClientOptions
from .request_table import RequestHandle
from .rest import RestSettings
from .results import ResultCollector, TextWithTimestamps
from .setup import Setup
from .urls import DEFAULT_BASE_URL, s2s_url

__all__ = ["ClientBase", "StreamInfo", "SetupLike", "RequestView", "RequestIteration",
           "AsyncRequestIteration", "BlockingRequestIteration"]

SetupLike = Setup | Mapping[str, Any]
"""A ``Setup`` or the official SDK's setup dict."""


AudioT = TypeVar("AudioT")
StreamConnT = TypeVar("StreamConnT")
OpenStreamT = TypeVar("OpenStreamT")


class ClientBase(Generic[AudioT, StreamConnT, OpenStreamT]):
    """Credentials, endpoint and options of an ``S2SClient`` (any adapter), and ``s2s_stream``.

    Each adapter's client gives its kinds: the audio sources it can pull
    (``AudioT``), its connections (``StreamConnT``) and what ``s2s_stream``
    returns (``OpenStreamT``, made by its ``_open_stream``).

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

    @shared_doc(S2S_STREAM, **EITHER)
    def s2s_stream(self, setup: SetupLike, audio: AudioT, *, sample_rate: int | None = None,
                   pace: float | None = 1.0, trailing_silence_s: float = TRAILING_SILENCE_S,
                   lead_in_silence_s: float = LEAD_IN_SILENCE_S, keep_audio: bool = False,
                   connection: StreamConnT | None = None, downmix: bool = False) -> OpenStreamT:
        """Send ``audio`` as one input; the stream is yielded once ready.

        In the async clients (``s2s_anyio``, ``s2s_trio``) a background task
        sends the input; in ``s2s_threaded`` the thread that iterates the
        stream sends it (see its ``S2SStream``). Every argument is checked
        here, before anything is sent.
        """
        plan = plan_input(setup, audio, self.options, sample_rate=sample_rate, pace=pace,
                          trailing_silence_s=trailing_silence_s,
                          lead_in_silence_s=lead_in_silence_s, keep_audio=keep_audio,
                          downmix=downmix)
        return self._open_stream(InputAttempts(plan, retry=self.options.retry,
                                               connection=connection))

    def _open_stream(self, attempts: InputAttempts[StreamConnT]) -> OpenStreamT:
        """The adapter's ``OpenStream`` (retried until ready as ``attempts`` says)."""
        raise NotImplementedError

    def _whole_input(self, setup: SetupLike, audio: object, sample_rate: int | None,
                     options: InputOptions, now: float) -> WholeInput:
        """``s2s``'s input, its arguments checked (before anything is sent; see ``plan_input``).

        ``now``: the adapter's clock (the retry budget counts from it).
        """
        plan = plan_input(setup, audio, self.options, sample_rate=sample_rate, keep_audio=True,
                          **options)
        return WholeInput(plan, self.options.retry, now)


ChainRequestT = TypeVar("ChainRequestT", bound=ChainRequest)


class StreamInfo(Generic[ChainRequestT]):
    """What an ``S2SStream`` tells about its input's requests, as the official SDK names it."""

    _request: ChainView[Any, ChainRequestT, Any]

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


ViewT = TypeVar("ViewT", bound=RequestView)


class RequestIteration(Generic[ViewT]):
    """One consumer's pass over a request's events (the adapters' event iterators).

    Each step claims the request (one iterator at a time: ``claim``); the
    adapter drops the claim when a step fails, ``_took`` when the events end.
    """

    __slots__ = ("__weakref__", "_request")

    _stop: ClassVar[type[Exception]]
    """What ends the iteration (``StopIteration`` or ``StopAsyncIteration``)."""

    def __init__(self, request: ViewT) -> None:
        self._request = request

    def _took(self, event: ServerEvent | None) -> ServerEvent:
        """``event``, or the end of the iteration after the last one (the claim dropped)."""
        if event is None:
            self._request.release(self)
            raise self._stop
        return event


class AsyncRequestIteration(RequestIteration[ViewT]):
    """An async iterator over a request's events (the adapter awaits in ``__anext__``)."""

    __slots__ = ()

    _stop = StopAsyncIteration

    def __aiter__(self) -> Self:
        return self


class BlockingRequestIteration(RequestIteration[ViewT]):
    """An iterator over a request's events (the adapter blocks in ``__next__``)."""

    __slots__ = ()

    _stop = StopIteration

    def __iter__(self) -> Self:
        return self
