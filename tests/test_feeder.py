"""InputFeeder: which input chunks are due at ``now``, and when the next one is (sans-IO)."""

from __future__ import annotations

import io
import os
import pathlib

import numpy as np
import pytest

from s2s_core.audio_input import InputChunker
from s2s_core.errors import InvalidAudio, LocalProtocolError
from s2s_core.feeder import FeedStep, InputFeeder, Step, may_block, replayable
from s2s_core.options import WRITE_BATCH_BYTES
from s2s_core.setup import Setup

PCM = Setup(voice_id="v", input_format="pcm", output_format="pcm")  # 24 kHz, 3840 B per 80 ms
FRAME = 3840
ULAW = Setup(voice_id="v", input_format="ulaw_8000", output_format="pcm")


def feeder(setup: Setup = PCM, *, pace: float | None = 1.0, now: float = 0.0,
           trailing_silence_s: float = 0.0, **kwargs: float | int) -> InputFeeder:
    chunker = InputChunker(setup, trailing_silence_s=trailing_silence_s)
    return InputFeeder(chunker, pace=pace, now=now, **kwargs)  # type: ignore[arg-type]


def frames(count: int, first: int = 0) -> bytes:
    """``count`` 80 ms frames, each filled with its own index (to check order)."""
    return b"".join(bytes([(first + i) % 256]) * FRAME for i in range(count))


def sent_bytes(step: FeedStep) -> bytes:
    return b"".join(bytes(c) for c in step.chunks)


def run_unpaced(feed: InputFeeder, pieces: list[bytes]) -> list[FeedStep]:
    """Every step until DONE, feeding ``pieces`` when asked (the adapter's loop)."""
    steps = []
    source = iter(pieces)
    while True:
        step = feed.next_step(0.0)
        steps.append(step)
        if step.kind is Step.NEED_INPUT:
            piece = next(source, None)
            if piece is None:
                feed.finish()
            else:
                feed.feed(piece)
        elif step.kind is Step.DONE:
            return steps


def test_pacing_at_real_time_sends_each_chunk_at_its_due_time() -> None:
    feed = feeder(pace=1.0, now=100.0)
    assert feed.next_step(100.0).kind is Step.NEED_INPUT
    feed.feed(frames(10))
    step = feed.next_step(100.0)
    assert step.kind is Step.SEND and sent_bytes(step) == frames(1)
    step = feed.next_step(100.0)
    assert step.kind is Step.WAIT and step.until == pytest.approx(100.08)
    assert step.chunks == []
    # Asked a little early: still waiting, for the same time.
    assert feed.next_step(100.05).until == pytest.approx(100.08)
    step = feed.next_step(100.08)
    assert step.kind is Step.SEND and sent_bytes(step) == frames(1, first=1)
    # Late by 0.3 s: everything due by then goes in one write, in order.
    step = feed.next_step(100.4)
    assert step.kind is Step.SEND and sent_bytes(step) == frames(4, first=2)
    assert feed.sent_s == pytest.approx(0.48)
    assert feed.next_step(100.4).until == pytest.approx(100.48)


def test_pacing_is_relative_to_pace() -> None:
    feed = feeder(pace=2.0, now=0.0)
    feed.next_step(0.0)
    feed.feed(frames(3))
    assert feed.next_step(0.0).kind is Step.SEND
    assert feed.next_step(0.0).until == pytest.approx(0.04)


def test_unpaced_input_is_batched_up_to_the_write_batch() -> None:
    data = frames(40)  # 153600 bytes
    steps = run_unpaced(feeder(pace=None), [data])
    sends = [s for s in steps if s.kind is Step.SEND]
    assert b"".join(sent_bytes(s) for s in sends) == data
    sizes = [len(sent_bytes(s)) for s in sends]
    # Each write takes chunks until it holds the batch (so it ends at most
    # one chunk past it); only the last may be smaller.
    assert all(WRITE_BATCH_BYTES <= n < WRITE_BATCH_BYTES + FRAME for n in sizes[:-1])
    assert 0 < sizes[-1] < WRITE_BATCH_BYTES + FRAME
    assert len(sends) == -(-len(data) // (WRITE_BATCH_BYTES // FRAME * FRAME + FRAME))
    assert not [s for s in steps if s.kind is Step.WAIT]  # unpaced never waits


def test_batch_bytes_is_configurable() -> None:
    steps = run_unpaced(feeder(pace=None, batch_bytes=1), [frames(5)])
    assert [len(s.chunks) for s in steps if s.kind is Step.SEND] == [1] * 5


def test_steps_come_in_order_need_input_send_end_of_stream_done() -> None:
    steps = run_unpaced(feeder(pace=None), [frames(2), frames(1), b""])
    kinds = [s.kind for s in steps]
    assert kinds == [Step.NEED_INPUT, Step.SEND, Step.NEED_INPUT, Step.SEND,
                     Step.NEED_INPUT, Step.NEED_INPUT, Step.END_OF_STREAM, Step.DONE]


def test_end_of_stream_is_given_once_then_done_forever() -> None:
    feed = feeder(pace=None)
    feed.next_step(0.0)
    feed.finish()
    assert feed.next_step(0.0).kind is Step.END_OF_STREAM
    for _ in range(3):
        assert feed.next_step(0.0).kind is Step.DONE
    feed.finish()  # finishing twice is harmless


def test_a_partial_frame_is_held_until_the_next_piece_or_the_end() -> None:
    feed = feeder(pace=None)
    feed.next_step(0.0)
    feed.feed(b"\x01\x00" * 1000)  # 2000 bytes: less than a frame
    assert feed.next_step(0.0).kind is Step.NEED_INPUT
    feed.feed(b"\x01\x00" * 1000)
    assert sent_bytes(feed.next_step(0.0)) == b"\x01\x00" * 1920
    assert feed.next_step(0.0).kind is Step.NEED_INPUT
    feed.finish()
    tail = feed.next_step(0.0)
    assert sent_bytes(tail) == b"\x01\x00" * 80  # the rest, short
    assert feed.sent_s == pytest.approx(2000 / 24000)


def test_feed_misuse_is_refused() -> None:
    feed = feeder(pace=None, batch_bytes=1)
    with pytest.raises(LocalProtocolError, match="feed"):
        feed.next_step(0.0)
        feed.feed(frames(2))
        feed.next_step(0.0)  # one chunk sent, one still waiting
        feed.feed(frames(1))
    with pytest.raises(LocalProtocolError, match="finish"):
        feed.finish()  # input left to send
    feed.next_step(0.0)
    assert feed.next_step(0.0).kind is Step.NEED_INPUT
    feed.finish()
    with pytest.raises(LocalProtocolError, match="feed"):
        feed.feed(frames(1))


def test_trailing_silence_follows_the_input() -> None:
    feed = feeder(pace=None, trailing_silence_s=0.2)
    steps = run_unpaced(feed, [frames(1)])
    sent = b"".join(sent_bytes(s) for s in steps if s.kind is Step.SEND)
    assert sent == frames(1) + b"\x00" * 9600  # 0.2 s at 24 kHz, 16-bit
    assert feed.sent_s == pytest.approx(0.28)


def test_trailing_silence_in_g711_is_the_codec_silence() -> None:
    feed = feeder(ULAW, pace=None, trailing_silence_s=0.1)
    steps = run_unpaced(feed, [b"\x7f" * 640])
    sent = b"".join(sent_bytes(s) for s in steps if s.kind is Step.SEND)
    assert sent == b"\x7f" * 640 + b"\xff" * 800


def test_trailing_silence_is_paced_too() -> None:
    feed = feeder(pace=1.0, trailing_silence_s=0.16)
    feed.next_step(0.0)
    feed.finish()
    assert sent_bytes(feed.next_step(0.0)) == b"\x00" * FRAME
    assert feed.next_step(0.0).until == pytest.approx(0.08)
    assert feed.next_step(0.08).kind is Step.SEND
    assert feed.next_step(0.16).kind is Step.END_OF_STREAM  # nothing left: no wait


def test_a_bad_piece_raises_at_next_step() -> None:
    feed = feeder(pace=None)
    feed.next_step(0.0)
    feed.feed("text")  # type: ignore[arg-type]  # cut lazily: nothing raised yet
    with pytest.raises(InvalidAudio, match="bytes or numpy"):
        feed.next_step(0.0)


def test_numpy_for_a_g711_input_raises_at_next_step() -> None:
    feed = feeder(ULAW, pace=None)
    feed.next_step(0.0)
    feed.feed(np.zeros(80, dtype=np.int16))
    with pytest.raises(InvalidAudio, match="pcm input_format"):
        feed.next_step(0.0)


def test_a_partial_sample_at_the_end_raises_at_next_step() -> None:
    feed = feeder(pace=None)
    feed.next_step(0.0)
    feed.feed(b"\x00" * (FRAME + 1))
    assert feed.next_step(0.0).kind is Step.SEND
    assert feed.next_step(0.0).kind is Step.NEED_INPUT
    feed.finish()
    with pytest.raises(InvalidAudio, match="partial sample"):
        feed.next_step(0.0)


@pytest.mark.parametrize("pace", [0, -1.0])
def test_pace_must_be_positive(pace: float) -> None:
    with pytest.raises(ValueError, match="pace"):
        feeder(pace=pace)


def test_only_an_input_in_memory_cannot_block() -> None:
    """What an adapter may pull on the thread that delivers the output, and what not."""
    samples = np.zeros(10, dtype=np.int16)
    in_memory = [b"ab", bytearray(2), memoryview(b"ab"), samples, [b"ab", samples], (b"ab",),
                 iter([b"ab"]), iter((b"ab",))]
    assert not any(may_block(audio) for audio in in_memory)

    class Pieces(list[bytes]):  # a subclass may iterate differently: not trusted
        pass

    def generated() -> object:
        yield b"ab"

    may_wait = [generated(), Pieces([b"ab"]), {b"ab": 1}.keys(), range(3)]
    assert all(may_block(audio) for audio in may_wait)
    assert replayable(Pieces([b"ab"]))  # a different question: a list can be sent again


def test_a_file_on_disk_cannot_block_a_pipe_can(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "in.pcm"
    path.write_bytes(bytes(480))
    with open(path, "rb") as on_disk, open(path, "rb", buffering=0) as raw:
        assert not may_block(on_disk) and not may_block(raw)
    assert may_block(on_disk)  # closed: nothing tells what it was; the safe answer
    assert not may_block(io.BytesIO(bytes(480)))
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        assert may_block(pipe)
