"""What a live session (``connect``, ``s2s_realtime``) is in every adapter, without waiting.

``SessionBase`` tells what a session's request tells; ``SplitSessionBase``
takes a split session's input for its chain's feeder; ``OpenSessionBase``
decides which session a new connection makes. The adapters' ``Session``,
``SplitSession`` and ``OpenSession`` add the waiting: connecting, sending,
reading, closing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from .chain import ChainView
from .client_base import SetupLike
from .errors import LocalProtocolError
from .events import Ready
from .feeder import InputFeeder
from .input_plan import downmixed, live_input
from .metrics import Metrics
from .options import ClientOptions
from .protocol import AudioInput
from .results import TextWithTimestamps
from .retry import RetryPolicy
from .setup import Setup
from .stitcher import Stitcher

__all__ = ["SessionBase", "SplitSessionBase", "OpenSessionBase"]


class _HasRequest(Protocol):
    @property
    def ready(self) -> Ready | None: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]: ...


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


ChainT = TypeVar("ChainT", bound=ChainView[Any, Any, Any])


class SplitSessionBase(Generic[ChainT]):
    """What a live session split over several requests adds, in every adapter.

    The adapters' ``SplitSession`` hand each ``send_audio`` and
    ``send_end_of_stream`` to ``chain``'s feeder here, then do what it says.
    """

    chain: ChainT

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments read so far, in input time."""
        return self.chain.text_with_timestamps

    @property
    def request_ids(self) -> list[str]:
        """The server's ids of the requests read so far, in input order."""
        return self.chain.stitcher.request_ids

    def _feed(self, audio: AudioInput, *, downmix: bool) -> None:
        """Take one chunk of ``send_audio`` (``downmix``: average a 2-D array's channels).

        Raises:
            LocalProtocolError: ``send_end_of_stream`` was called already.
            InvalidAudio: The chunk is not valid for the input format.
        """
        self._check_open("send_audio")
        self.chain.feeder.feed(downmixed(audio) if downmix else audio)

    def _finish(self) -> None:
        """Take ``send_end_of_stream``.

        Raises:
            LocalProtocolError: It was called already.
        """
        self._check_open("send_end_of_stream")
        self.chain.feeder.finish()

    def _check_open(self, what: str) -> None:
        if self.chain.feeder.finished:
            raise LocalProtocolError(f"cannot {what}: the session's audio already ended "
                                     "(send_end_of_stream was called)")


class _HasOptions(Protocol):
    @property
    def options(self) -> ClientOptions: ...


SessionT = TypeVar("SessionT")
SplitT = TypeVar("SplitT")


class OpenSessionBase(Generic[ConnT, RequestT, SessionT, SplitT]):
    """What ``connect`` and ``s2s_realtime`` open, before any waiting.

    The setup, checked at the call; and the session a connection and its
    set-up request make: a ``Session``, or for ``s2s_realtime`` (a
    ``client`` with ``options.max_request_s``) a ``SplitSession`` whose
    chain rolls over to new requests. The adapters' ``OpenSession`` set the
    three kinds it makes (``_session_type``, ``_split_type``,
    ``_chain_type``) and connect, retry, wait and close.

    Args:
        setup: A ``Setup`` or a dict of its fields.
        keep_audio: Keep output audio for ``result()``.
        retry: Retry a failed start until ``ready`` (``s2s_realtime``); None
            yields the session right after the setup is sent.
        client: The ``S2SClient`` (its options, its later connections).

    Raises:
        InvalidSetup: The setup is invalid.
    """

    _session_type: Callable[[ConnT, RequestT], SessionT]
    _split_type: Callable[[ConnT, RequestT, Any], SplitT]
    _chain_type: Callable[[Any, Setup, InputFeeder, Stitcher, ConnT, RequestT], Any]

    def __init__(self, setup: SetupLike, *, keep_audio: bool, retry: RetryPolicy | None,
                 client: _HasOptions | None) -> None:
        self._setup = setup if isinstance(setup, Setup) else Setup.from_mapping(setup)
        self._keep_audio = keep_audio
        self._retry = retry
        self._client = client
        self._split: SplitT | None = None
        """The split session made, if any (its chain closes on exit)."""

    @property
    def _splits(self) -> bool:
        """Whether the session splits its input over several requests."""
        return self._client is not None and self._client.options.max_request_s is not None

    @property
    def _request_keeps_audio(self) -> bool:
        """``keep_audio`` for the first request (a split session's stitcher keeps it instead)."""
        return self._keep_audio and not self._splits

    def _made(self, conn: ConnT, request: RequestT, now: float) -> SessionT | SplitT:
        """The session of ``conn`` once ``request`` was set up (``now``: the adapter's clock)."""
        client = self._client
        if client is None or client.options.max_request_s is None:
            return self._session_type(conn, request)
        feeder, stitcher = live_input(self._setup, client.options, keep_audio=self._keep_audio,
                                      now=now)
        chain = self._chain_type(client, self._setup, feeder, stitcher, conn, request)
        self._split = split = self._split_type(conn, request, chain)
        return split
