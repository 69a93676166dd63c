"""One behavioural harness per adapter mode, so one test suite covers them all.

Each harness exposes the same blocking operations; async adapters run them
under their event loop (anyio on asyncio, anyio on trio, trio native), the
threaded adapter calls them directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2s_core.events import Audio, EndOfStream, Ready, Text, UnknownMessage
from s2s_core.results import S2SResult
from s2s_core.setup import Setup

MODES = ("anyio-asyncio", "anyio-asyncio-uvloop", "anyio-trio", "trio", "threaded")
ASYNC_MODES = tuple(mode for mode in MODES if mode != "threaded")


def base_url_of(url: str) -> str:
    """The HTTP base URL that S2SClient turns back into ``url``."""
    return url.replace("ws://", "http://").replace("wss://", "https://").replace(
        "speech/s2s", "")


def tone_burst(seconds_silence: float = 0.4, seconds_tone: float = 0.8,
               rate: int = 24000) -> np.ndarray:
    """Silence, a loud 440 Hz tone, silence: one 'speech' segment for the VAD."""
    quiet = np.zeros(int(rate * seconds_silence), dtype=np.float32)
    t = np.arange(int(rate * seconds_tone)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.concatenate([quiet, tone, quiet])


@dataclass
class StreamOutcome:
    """What a consumer of s2s_stream saw."""

    events: list[Any] = field(default_factory=list)
    audio: bytes = b""
    texts: list[Any] = field(default_factory=list)
    sample_rate: int | None = None
    frame_size: int | None = None
    request_id: str | None = None
    error: BaseException | None = None


class Harness:
    """The blocking operations every adapter must support."""

    mode: str

    def s2s(self, url: str, setup: Setup, audio: Any, **kwargs: Any) -> S2SResult:
        raise NotImplementedError

    def stream(self, url: str, setup: Setup, audio: Any, **kwargs: Any) -> StreamOutcome:
        """Iterate ``s2s_stream``'s events to the end (or the error).

        ``on_event=`` (a callable) sees every event as it comes; once it
        returns True, iteration stops and the stream's block is left.
        """
        raise NotImplementedError

    def realtime(self, url: str, setup: Setup, chunks: Sequence[bytes],
                 **kwargs: Any) -> list[Any]:
        raise NotImplementedError

    def multiplex(self, url: str, jobs: Sequence[tuple[Setup, bytes]],
                  **kwargs: Any) -> list[S2SResult]:
        raise NotImplementedError

    def realtime_outcome(self, url: str, setup: Setup, chunks: Sequence[bytes],
                         **kwargs: Any) -> StreamOutcome:
        """Like ``realtime``, but the error (if any) is returned with what came before."""
        raise NotImplementedError


def client_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split test kwargs into S2SClient arguments and call arguments."""
    names = ("api_key", "token", "ssl_context", "options")
    client = {k: kwargs.pop(k) for k in names if k in kwargs}
    client.setdefault("api_key", "test-key") if "token" not in client else None
    return client, kwargs


class AsyncHarness(Harness):
    """anyio (on asyncio or trio) or trio-native."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.module = importlib.import_module("s2s_trio" if mode == "trio" else "s2s_anyio")

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        if self.mode == "trio":
            import trio

            return trio.run(fn)
        import anyio

        if self.mode == "anyio-asyncio-uvloop":
            return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})
        return anyio.run(fn, backend=self.mode.split("-")[1])

    def s2s(self, url: str, setup: Setup, audio: Any, **kwargs: Any) -> S2SResult:
        client_kw, call_kw = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)

        async def go() -> S2SResult:
            result: S2SResult = await client.s2s(setup, audio, **call_kw)
            return result

        return self.run(go)  # type: ignore[no-any-return]

    def stream(self, url: str, setup: Setup, audio: Any, **kwargs: Any) -> StreamOutcome:
        client_kw, call_kw = client_args(dict(kwargs))
        on_event = call_kw.pop("on_event", None)
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        out = StreamOutcome()

        async def go() -> None:
            try:
                async with client.s2s_stream(setup, audio, **call_kw) as stream:
                    out.sample_rate, out.frame_size = stream.sample_rate, stream.frame_size
                    out.request_id = stream.request_id
                    async for event in stream.iter_events():
                        out.events.append(event)
                        if isinstance(event, Audio):
                            out.audio += event.audio
                        if on_event is not None and on_event(event):
                            break
                    out.texts = list(stream.text_with_timestamps)
            except Exception as exc:
                out.error = exc

        self.run(go)
        return out

    def realtime(self, url: str, setup: Setup, chunks: Sequence[bytes],
                 **kwargs: Any) -> list[Any]:
        client_kw, _ = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        events: list[Any] = []

        async def go() -> None:
            async with client.s2s_realtime(**setup.to_wire_kwargs()) as session:
                for chunk in chunks:
                    await session.send_audio(chunk)
                await session.send_end_of_stream()
                async for event in session:
                    events.append(event)

        self.run(go)
        return events

    def realtime_outcome(self, url: str, setup: Setup, chunks: Sequence[bytes],
                         **kwargs: Any) -> StreamOutcome:
        client_kw, _ = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        out = StreamOutcome()

        async def go() -> None:
            async with client.s2s_realtime(**setup.to_wire_kwargs()) as session:
                try:
                    for chunk in chunks:
                        await session.send_audio(chunk)
                    await session.send_end_of_stream()
                except Exception as exc:  # what arrived before stays readable
                    out.error = exc
                try:
                    async for event in session:
                        out.events.append(event)
                        if isinstance(event, Audio):
                            out.audio += event.audio
                except Exception as exc:
                    out.error = out.error or exc

        self.run(go)
        return out

    def multiplex(self, url: str, jobs: Sequence[tuple[Setup, bytes]],
                  **kwargs: Any) -> list[S2SResult]:
        client_kw, _ = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)

        async def go() -> list[S2SResult]:
            async with client.connection() as conn:
                requests = [await conn.start(setup) for setup, _ in jobs]
                for request, (_, audio) in zip(requests, jobs, strict=True):
                    await request.send_audio(audio)
                    await request.send_end_of_stream()
                results = [await request.result() for request in requests]
                await conn.send_end_of_stream()
                return results

        return self.run(go)  # type: ignore[no-any-return]


class ThreadedHarness(Harness):
    """The blocking adapter."""

    mode = "threaded"

    def __init__(self) -> None:
        self.module = importlib.import_module("s2s_threaded")

    def s2s(self, url: str, setup: Setup, audio: Any, **kwargs: Any) -> S2SResult:
        client_kw, call_kw = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        result: S2SResult = client.s2s(setup, audio, **call_kw)
        return result

    def stream(self, url: str, setup: Setup, audio: Any, **kwargs: Any) -> StreamOutcome:
        client_kw, call_kw = client_args(dict(kwargs))
        on_event = call_kw.pop("on_event", None)
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        out = StreamOutcome()
        try:
            with client.s2s_stream(setup, audio, **call_kw) as stream:
                out.sample_rate, out.frame_size = stream.sample_rate, stream.frame_size
                out.request_id = stream.request_id
                for event in stream.iter_events():
                    out.events.append(event)
                    if isinstance(event, Audio):
                        out.audio += event.audio
                    if on_event is not None and on_event(event):
                        break
                out.texts = list(stream.text_with_timestamps)
        except Exception as exc:
            out.error = exc
        return out

    def realtime(self, url: str, setup: Setup, chunks: Sequence[bytes],
                 **kwargs: Any) -> list[Any]:
        client_kw, _ = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        events: list[Any] = []
        with client.s2s_realtime(**setup.to_wire_kwargs()) as session:
            for chunk in chunks:
                session.send_audio(chunk)
            session.send_end_of_stream()
            events.extend(session)
        return events

    def realtime_outcome(self, url: str, setup: Setup, chunks: Sequence[bytes],
                         **kwargs: Any) -> StreamOutcome:
        client_kw, _ = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        out = StreamOutcome()
        with client.s2s_realtime(**setup.to_wire_kwargs()) as session:
            try:
                for chunk in chunks:
                    session.send_audio(chunk)
                session.send_end_of_stream()
            except Exception as exc:  # what arrived before stays readable
                out.error = exc
            try:
                for event in session:
                    out.events.append(event)
                    if isinstance(event, Audio):
                        out.audio += event.audio
            except Exception as exc:
                out.error = out.error or exc
        return out

    def multiplex(self, url: str, jobs: Sequence[tuple[Setup, bytes]],
                  **kwargs: Any) -> list[S2SResult]:
        client_kw, _ = client_args(dict(kwargs))
        client = self.module.S2SClient(base_url=base_url_of(url), **client_kw)
        with client.connection() as conn:
            requests = [conn.start(setup) for setup, _ in jobs]
            for request, (_, audio) in zip(requests, jobs, strict=True):
                request.send_audio(audio)
                request.send_end_of_stream()
            results = [request.result() for request in requests]
            conn.send_end_of_stream()
            return results


def harness_for(mode: str) -> Harness:
    """The harness of an adapter mode."""
    return ThreadedHarness() if mode == "threaded" else AsyncHarness(mode)


__all__ = ["MODES", "ASYNC_MODES", "Harness", "StreamOutcome", "harness_for", "tone_burst",
           "base_url_of", "Ready", "Text", "EndOfStream", "UnknownMessage"]
