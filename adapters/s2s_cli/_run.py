"""The translation loop of ``s2s translate``, on the anyio, trio or threaded client.

``Translation`` does the bookkeeping (what was sent and received, when, the
output file) and tells a ``Reporter`` about it; the ``run_*`` functions only
drive a client's ``s2s_stream`` and feed its events to the ``Translation``.
Presentation lives in ``_present``.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

from s2s_anyio import ClientOptions
from s2s_core.events import Audio, EndOfStream, ServerEvent, Text, UnknownMessage
from s2s_core.setup import Setup
from s2s_core.urls import S2S_ROUTE

from ._audio import InputAudio, OutputWav, UsageError

if TYPE_CHECKING:
    import s2s_anyio
    import s2s_threaded
    import s2s_trio

    AsyncClient: TypeAlias = s2s_anyio.S2SClient | s2s_trio.S2SClient

__all__ = ["BACKENDS", "Reporter", "Summary", "Target", "Translation", "check_backend", "run"]

BACKENDS = ("anyio", "trio", "threaded")


@dataclass(frozen=True)
class Target:
    """Where to connect: an S2S URL (or base URL) and the key to present."""

    url: str
    api_key: str

    @property
    def base_url(self) -> str:
        """The base URL ``S2SClient`` wants.

        A full ``.../speech/s2s`` URL is cut back to its base; a bare
        ``scheme://host:port`` gets the API's ``/api/`` path.
        """
        url = self.url
        if "://" not in url:
            local = url.startswith(("127.", "localhost", "[::1]"))
            url = ("ws://" if local else "wss://") + url
        parts = urllib.parse.urlsplit(url)
        path = parts.path.rstrip("/")
        if path.endswith("/" + S2S_ROUTE):
            path = path[: -len(S2S_ROUTE)]
        elif not path:
            path = "/api/"
        else:
            return url
        return urllib.parse.urlunsplit(parts._replace(path=path))


@dataclass(frozen=True)
class Summary:
    """What one translation did, for the final report.

    Times are seconds since the run started (before connecting).
    """

    request_id: str | None
    output: Path
    sample_rate: int | None
    output_s: float
    wall_s: float
    ready_s: float | None
    first_audio_s: float | None
    first_text_s: float | None
    speech_s: float
    sent_s: float
    bytes_sent: int
    bytes_received: int
    segments: int
    input_format: str
    output_format: str

    @property
    def real_time_factor(self) -> float | None:
        """Wall time over the duration of the audio sent (1.0 = real time)."""
        return self.wall_s / self.sent_s if self.sent_s else None


class Reporter(Protocol):
    """What the user sees; ``at_s`` are seconds since the run started."""

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None: ...

    def sent(self, sent_s: float) -> None: ...

    def text(self, event: Text, at_s: float) -> None: ...

    def audio(self, event: Audio, received_s: float, at_s: float) -> None: ...

    def unknown(self, event: UnknownMessage, at_s: float) -> None: ...

    def end(self, at_s: float) -> None: ...


class Translation:
    """Bookkeeping of one run: the audio source, the events, the output file."""

    def __init__(self, setup: Setup, audio: InputAudio, output: OutputWav, reporter: Reporter,
                 *, pace: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.setup = setup
        self.audio = audio
        self.output = output
        self.reporter = reporter
        self.pace = pace
        self._clock = clock
        self._t0 = clock()
        self.request_id: str | None = None
        self.ready_s: float | None = None
        self.first_audio_s: float | None = None
        self.first_text_s: float | None = None
        self.sent_s = 0.0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.segments = 0

    def begin(self) -> None:
        """Start the clock (just before connecting)."""
        self._t0 = self._clock()

    def elapsed(self) -> float:
        """Seconds since ``begin``."""
        return self._clock() - self._t0

    def source(self) -> Iterator[bytes | memoryview]:
        """The input in 80 ms chunks; counts each one once the client took it."""
        for chunk in self.audio.chunks():
            yield chunk.data
            self.sent_s += chunk.seconds
            self.bytes_sent += len(chunk.data)
            self.reporter.sent(self.sent_s)

    def on_ready(self, request_id: str | None, sample_rate: int | None) -> None:
        """The stream is ready: fix the output rate."""
        self.request_id = request_id
        self.ready_s = self.elapsed()
        self.output.start(sample_rate)
        self.reporter.ready(request_id, sample_rate, self.ready_s)

    def on_event(self, event: ServerEvent) -> None:
        """One event after ready (errors are raised by the client, not seen here)."""
        at = self.elapsed()
        if isinstance(event, Audio):
            if self.first_audio_s is None:
                self.first_audio_s = at
            self.bytes_received += len(event.audio)
            self.output.write(event.audio)
            self.reporter.audio(event, self.output.seconds, at)
        elif isinstance(event, Text):
            if self.first_text_s is None:
                self.first_text_s = at
            self.segments += 1
            self.reporter.text(event, at)
        elif isinstance(event, EndOfStream):
            self.reporter.end(at)
        elif isinstance(event, UnknownMessage):
            self.reporter.unknown(event, at)

    def finish(self) -> Summary:
        """Write the output file into place and sum up."""
        wall = self.elapsed()
        self.output.commit()
        return Summary(
            request_id=self.request_id, output=self.output.path,
            sample_rate=self.output.sample_rate, output_s=self.output.seconds, wall_s=wall,
            ready_s=self.ready_s, first_audio_s=self.first_audio_s,
            first_text_s=self.first_text_s, speech_s=self.audio.speech_s,
            sent_s=self.sent_s, bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received, segments=self.segments,
            input_format=self.setup.input_format, output_format=self.setup.output_format)


def check_backend(backend: str) -> None:
    """Fail early when ``backend`` cannot run here.

    Raises:
        UsageError: Unknown backend, or its package is missing.
    """
    if backend == "trio":
        try:
            import trio  # noqa: F401
        except ImportError:
            raise UsageError("the trio backend needs trio: pip install 's2s-core[trio]'") from None
    elif backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


def run(backend: str, target: Target, translation: Translation, *,
        connect_timeout: float) -> Summary:
    """Run the translation on ``backend`` (one of ``BACKENDS``)."""
    options = ClientOptions(connect_timeout=connect_timeout)
    if backend == "anyio":
        import anyio

        import s2s_anyio
        client: AsyncClient = s2s_anyio.S2SClient(target.api_key, base_url=target.base_url,
                                                  options=options)
        return anyio.run(_run_async, client, translation)
    if backend == "trio":
        import trio

        import s2s_trio
        client = s2s_trio.S2SClient(target.api_key, base_url=target.base_url, options=options)
        return trio.run(_run_async, client, translation)
    if backend == "threaded":
        import s2s_threaded

        threaded = s2s_threaded.S2SClient(target.api_key, base_url=target.base_url,
                                          options=options)
        return _run_threaded(threaded, translation)
    raise UsageError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


async def _run_async(client: AsyncClient, t: Translation) -> Summary:
    t.begin()
    async with client.s2s_stream(t.setup, t.source(), pace=t.pace,
                                 trailing_silence_s=0.0) as stream:
        t.on_ready(stream.request_id, stream.sample_rate)
        async for event in stream.iter_events():
            t.on_event(event)
    return t.finish()


def _run_threaded(client: s2s_threaded.S2SClient, t: Translation) -> Summary:
    t.begin()
    with client.s2s_stream(t.setup, t.source(), pace=t.pace, trailing_silence_s=0.0) as stream:
        t.on_ready(stream.request_id, stream.sample_rate)
        for event in stream.iter_events():
            t.on_event(event)
    return t.finish()
