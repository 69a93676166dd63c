"""A live source that blocks (a microphone, a pipe, a socket) must not hold back the output.

The speaker pauses: the source's next piece does not come for a while. The
output of what was said before the pause must still reach the caller during
the pause, on every adapter mode. The threaded adapter sends from the thread
that iterates; it must not wait inside the source there. Each source here
yields some speech, then blocks until the test has seen the output of that
speech (at most ``WAIT_S``: no output while the source blocks fails the
test), then goes on or fails; the async modes' sources block by awaiting.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import pytest
from long_audio import speech_like

from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core import RequestStarted
from s2s_core.errors import ConnectionClosedError, InvalidAudio
from s2s_core.events import Audio, Text
from s2s_core.input_plan import InputSource
from s2s_core.loopback import Fault, FaultPlan
from s2s_core.options import ClientOptions
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
SPEECH = tone_burst()  # 1.6 s at 24 kHz: silence, tone, silence
OUT_BYTES_PER_S = 48000 * 2
WAIT_S = 10.0
"""Longest a source blocks, and longest any wait of these tests."""
NO_RETRY = ClientOptions(retry=None)
SPEECH_OUTPUT_S = 1.5
"""Output of ``SPEECH`` (1.6 s) that comes before the input ends: all but its
last 80 ms frame, which the engine's resampler completes only at the end.
The output of its last chunk is needed, so it comes only after the source
was asked for the next piece."""


SOURCE_KINDS = [(mode, kind) for mode in MODES
                for kind in (("plain",) if mode == "threaded" else ("plain", "async"))]
"""Every mode with a plain blocking iterator; the async modes with an async one too."""


@pytest.fixture(params=SOURCE_KINDS, ids=[f"{m}-{k}" for m, k in SOURCE_KINDS])
def harness(request: pytest.FixtureRequest) -> Harness:
    mode, kind = request.param
    made = harness_for(mode)
    made.source_kind = kind  # type: ignore[attr-defined]
    return made


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server() as server_url:
        yield server_url


class LiveSource:
    """``first``, a pause until ``gate`` is set (at most ``WAIT_S``), then ``rest`` or ``fail``.

    ``iterable(harness)`` gives it as the harness's ``source_kind`` says: a
    blocking iterator (``plain``: the client must pull it off the thread or
    loop that delivers the output) or an async one awaiting in a worker
    thread (``async``).
    """

    def __init__(self, first: list[Any], rest: list[Any], gate: threading.Event, *,
                 fail: Exception | None = None) -> None:
        self.first, self.rest, self.gate, self.fail = first, rest, gate, fail
        self.blocked = threading.Event()
        """The source is in its pause."""
        self.resumed = threading.Event()
        """The pause ended (the gate opened, or ``WAIT_S`` passed)."""
        self.timed_out = False

    def iterable(self, harness: Harness | str) -> Any:
        kind = getattr(harness, "source_kind", "plain")
        return self._blocking() if kind == "plain" else self._awaiting()

    def _after_pause(self, opened: bool) -> None:
        self.timed_out = not opened
        self.resumed.set()
        if self.fail is not None:
            raise self.fail

    def _blocking(self) -> Iterator[Any]:
        yield from self.first
        self.blocked.set()
        self._after_pause(self.gate.wait(WAIT_S))
        yield from self.rest

    async def _awaiting(self) -> AsyncIterator[Any]:
        for piece in self.first:
            yield piece
        self.blocked.set()
        opened = await anyio.to_thread.run_sync(self.gate.wait, WAIT_S, abandon_on_cancel=True)
        self._after_pause(opened)
        for piece in self.rest:
            yield piece


class Watch:
    """The consumer's side (``on_event``): sets ``seen`` once the output of ``SPEECH`` came.

    That is its text (the VAD closed the segment) and ``SPEECH_OUTPUT_S``
    of audio, unless ``seen_when`` says otherwise.
    """

    def __init__(self, *, stop: bool = False,
                 seen_when: Callable[[Watch], bool] | None = None) -> None:
        self.audio = 0
        self.texts = 0
        self.started = 0
        self.seen = threading.Event()
        self._stop = stop
        self._seen_when = seen_when or (
            lambda w: w.texts >= 1 and w.audio >= SPEECH_OUTPUT_S * OUT_BYTES_PER_S)

    def __call__(self, event: Any) -> bool:
        if isinstance(event, Audio):
            self.audio += len(event.audio)
        elif isinstance(event, Text):
            self.texts += 1
        elif isinstance(event, RequestStarted):
            self.started += 1
        if self._seen_when(self):
            self.seen.set()
        return self._stop and self.seen.is_set()


def wait_until(predicate: Callable[[], bool]) -> bool:
    """Whether ``predicate`` came true within ``WAIT_S`` (a bounded wait, not a timing)."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("s2s-source")]


def test_output_flows_while_the_source_blocks(harness: Harness, url: str) -> None:
    watch = Watch()
    source = LiveSource([SPEECH], [SPEECH], watch.seen)
    out = harness.stream(url, SETUP, source.iterable(harness), pace=None,
                         trailing_silence_s=0.0, on_event=watch)
    assert not source.timed_out, "no output reached the caller while the source blocked"
    assert out.error is None, repr(out.error)
    assert len(out.audio) == 2 * len(SPEECH) * 4  # every piece, once: 24 -> 48 kHz, 16-bit
    assert len(out.texts) == 2
    if harness.mode == "threaded":
        assert wait_until(lambda: not source_threads()), "the source's thread outlived it"


def test_paced_output_flows_while_the_source_blocks(url: str) -> None:
    """Paced: the wait for the next piece and the pacing deadline mix (threaded)."""
    watch = Watch()
    pieces = [SPEECH[i:i + 4800] for i in range(0, len(SPEECH), 4800)]  # 0.2 s each
    source = LiveSource(pieces, pieces, watch.seen)
    out = harness_for("threaded").stream(url, SETUP, source.iterable("threaded"), pace=4.0,
                                         trailing_silence_s=0.0, on_event=watch)
    assert not source.timed_out, "no output reached the caller while the source blocked"
    assert out.error is None, repr(out.error)
    assert len(out.audio) == 2 * len(SPEECH) * 4


def test_a_source_that_raises_after_blocking_fails_the_stream(harness: Harness,
                                                              url: str) -> None:
    watch = Watch()
    unplugged = RuntimeError("microphone unplugged")
    source = LiveSource([SPEECH], [SPEECH], watch.seen, fail=unplugged)
    out = harness.stream(url, SETUP, source.iterable(harness), pace=None,
                         trailing_silence_s=0.0, on_event=watch)
    assert not source.timed_out, "no output reached the caller while the source blocked"
    error = out.error
    assert isinstance(error, InvalidAudio), repr(error)
    assert "the audio source raised" in str(error) and "microphone unplugged" in str(error)
    assert error.__cause__ is unplugged  # what the source raised, kept as the cause
    assert error.partial_result is not None
    assert len(error.partial_result.text_with_timestamps) == 1  # the speech before the pause


def test_leaving_the_stream_while_the_source_blocks_returns(harness: Harness,
                                                            url: str) -> None:
    watch = Watch(stop=True)  # leave the stream's block once the output came
    release = threading.Event()  # the source's pause ends only after the stream closed
    source = LiveSource([SPEECH], [SPEECH], release)
    outcome: list[Any] = []
    consumer = threading.Thread(target=lambda: outcome.append(harness.stream(
        url, SETUP, source.iterable(harness), pace=None, trailing_silence_s=0.0,
        on_event=watch)), daemon=True)
    try:
        consumer.start()
        consumer.join(WAIT_S)
        assert not consumer.is_alive(), "leaving the stream waited for the blocked source"
        assert not source.resumed.is_set()  # it was still blocked
        assert outcome[0].error is None, repr(outcome[0].error)
        assert watch.seen.is_set()
    finally:
        release.set()
    if harness.mode == "threaded":  # the source's thread ends once the source returns
        assert wait_until(lambda: not source_threads()), "the source's thread was left behind"


def test_a_connection_lost_while_the_source_blocks_is_seen(harness: Harness) -> None:
    release = threading.Event()
    source = LiveSource([SPEECH], [SPEECH], release)
    try:
        with run_server(fault=FaultPlan(Fault.DROP_TCP, after_messages=10)) as url:
            out = harness.stream(url, SETUP, source.iterable(harness), pace=None,
                                 trailing_silence_s=0.0, options=NO_RETRY)
        assert isinstance(out.error, ConnectionClosedError), repr(out.error)
        assert not source.resumed.is_set(), "the failure reached the caller only after the pause"
    finally:
        release.set()
    if harness.mode == "threaded":
        assert wait_until(lambda: not source_threads()), "the source's thread was left behind"


def test_ctrl_c_while_the_source_blocks_reaches_s2s(url: str) -> None:
    """Threaded ``s2s()``: Ctrl-C (on the main thread) while the source pauses."""
    import s2s_threaded as st

    release = threading.Event()
    source = LiveSource([SPEECH], [SPEECH], release)
    client = st.S2SClient("k", base_url=url.replace("ws://", "http://").rsplit("/speech", 1)[0])

    def interrupt() -> None:
        if source.blocked.wait(WAIT_S):
            _thread.interrupt_main()

    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            client.s2s(SETUP, source.iterable("threaded"), pace=None, trailing_silence_s=0.0)
        assert not source.resumed.is_set(), "Ctrl-C was seen only after the source's pause"
    finally:
        release.set()
    assert wait_until(lambda: not source_threads()), "the source's thread was left behind"


def test_a_split_input_flows_while_the_source_blocks(harness: Harness, url: str) -> None:
    """The source blocks past the first cut: the next request's output comes meanwhile.

    Its first 32 s are read back but for the last frame (at most 0.5 s
    here) while it blocks: the output of its last piece is needed.
    """
    given = speech_like(45.0, 24000, seed=5)
    pieces: list[npt.NDArray[np.int16]] = [given.samples[i:i + 24000]
                                            for i in range(0, len(given.samples), 24000)]
    watch = Watch(seen_when=lambda w: w.started >= 1 and w.audio >= 31.5 * OUT_BYTES_PER_S)
    source = LiveSource(pieces[:32], pieces[32:], watch.seen)
    out = harness.stream(url, SETUP, source.iterable(harness), pace=None,
                         options=ClientOptions(max_request_s=25.0), on_event=watch)
    assert not source.timed_out, "no output of the next request while the source blocked"
    assert out.error is None, repr(out.error)
    assert len(out.audio) == round((given.duration_s + 2.0) * OUT_BYTES_PER_S)
    assert len(out.texts) == len(given.bursts)


# -- the threaded adapter's hand-off itself --


def counting(gate: threading.Event | None = None, *, at: int = -1) -> tuple[list[int], Any]:
    """An endless source of 2-byte pieces counting its pulls (blocking on ``gate`` at ``at``)."""
    pulled: list[int] = []

    def pieces() -> Iterator[bytes]:
        for i in range(10**9):
            if i == at and gate is not None:
                gate.wait(WAIT_S)
            pulled.append(i)
            yield b"\0\0"

    return pulled, pieces()


def test_a_source_in_memory_is_read_without_a_thread() -> None:
    from s2s_threaded.source import Source

    for audio in (b"\0\0", SPEECH, [b"\0\0", b"\0\0"], (SPEECH,)):
        source = Source(InputSource(audio, pull_async=False), wake=lambda: None)
        while source.take() is not None:
            pass
        assert not source_threads()


def test_the_source_is_read_ahead_a_few_pieces_at_most() -> None:
    """Backpressure: a source faster than the network waits with a bounded hand-off."""
    from s2s_core.options import SOURCE_READ_AHEAD
    from s2s_threaded.source import PENDING, Source

    pulled, pieces = counting()
    woken = threading.Event()
    source = Source(InputSource(pieces, pull_async=False), wake=woken.set)
    first = source.take()  # starts the thread: nothing is there yet, or the first piece
    taken = 0 if first is PENDING else 1
    if first is PENDING:
        assert woken.wait(WAIT_S)  # the first piece came: the consumer is woken
    assert wait_until(lambda: len(source._reader._ready) == SOURCE_READ_AHEAD)  # type: ignore[union-attr]
    assert len(pulled) == taken + SOURCE_READ_AHEAD  # and the reader waits for room
    for _ in range(SOURCE_READ_AHEAD):
        assert source.take() == b"\0\0"
    source.close()
    assert wait_until(lambda: not source_threads())


def test_a_source_error_comes_after_its_pieces_and_ends_the_thread() -> None:
    from s2s_threaded.source import PENDING, Source

    def failing() -> Iterator[bytes]:
        yield b"\0\0"
        raise OSError("pipe broke")

    woken = threading.Event()
    audio = failing()
    source = Source(InputSource(audio, pull_async=False), wake=woken.set)
    got: list[Any] = []
    with pytest.raises(OSError, match="pipe broke"):
        while True:
            piece = source.take()
            if piece is PENDING:
                assert woken.wait(WAIT_S)
                woken.clear()
            else:
                got.append(piece)
    assert got == [b"\0\0"]
    assert not source_threads()  # joined when the error was taken


def test_closing_does_not_wait_for_a_source_that_blocks() -> None:
    from s2s_threaded.source import Source

    release = threading.Event()
    pulled, pieces = counting(release, at=1)
    source = Source(InputSource(pieces, pull_async=False), wake=lambda: None)
    try:
        assert wait_until(lambda: source.take() == b"\0\0")
        assert wait_until(lambda: source._reader._in_source)  # type: ignore[union-attr]
        closer = threading.Thread(target=source.close, daemon=True)
        closer.start()
        closer.join(WAIT_S)
        assert not closer.is_alive(), "close() waited for the source"
    finally:
        release.set()
    assert wait_until(lambda: not source_threads())  # it ends once the source returns
    assert pulled == [0, 1]  # and pulls nothing more
