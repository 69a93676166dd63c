"""Long inputs in the sans-IO core: where requests end, what each is sent, one stream out.

``PauseSplitter`` (cut points), ``InputChunker``/``InputFeeder`` (chunks per
request, padding, steps) and ``Stitcher`` (one stream in input time), fed
directly; the requests are served by the local engine without any socket.
"""

from __future__ import annotations

import itertools
import struct

import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from long_audio import assert_same_bursts, find_bursts, speech_like, tone

from s2s_core import (
    InputTooLong,
    InvalidSplit,
    PauseSplitter,
    RequestStarted,
    Segment,
    SegmentPlan,
    Stitcher,
)
from s2s_core.audio import read_wav, ulaw_decode, ulaw_encode, wav_header
from s2s_core.audio_input import Chunk, InputChunker, check_length, plan_chunks
from s2s_core.errors import ConnectionClosedError, InvalidAudio, LocalProtocolError
from s2s_core.events import Audio, EndOfStream, Ready, StreamEvent, Text
from s2s_core.feeder import InputFeeder, Step
from s2s_core.loopback import AudioOut, LoopbackEngine, TextOut
from s2s_core.options import LEAD_IN_SILENCE_S, ClientOptions
from s2s_core.setup import Setup

RATE = 8000


def pcm_setup(input_format: str = "pcm_8000", output_format: str = "pcm_8000") -> Setup:
    return Setup(voice_id="v", input_format=input_format, output_format=output_format)


def cuts_of(samples: npt.NDArray[np.int16], sizes: list[int], *, limit: float = 20.0,
            search: float = 6.0) -> tuple[list[int], int]:
    """Feed ``samples`` in pieces of ``sizes`` (cycled); the cuts, and the most ever held.

    Checks on the way that ``committed`` (what may be sent to the current
    request) never passes a cut decided later, and never moves back.
    """
    splitter = PauseSplitter(RATE, max_request_s=limit, split_search_s=search)
    pos, step, held = 0, 0, 0
    commits: list[tuple[int, int]] = []  # (cuts known then, committed)
    while pos < len(samples):
        size = sizes[step % len(sizes)]
        splitter.feed(samples[pos:pos + size])
        pos = min(pos + size, len(samples))
        step += 1
        commits.append((len(splitter.cuts), splitter.committed))
        held = max(held, pos - splitter.committed)
    splitter.finish()
    assert splitter.committed == len(samples)
    cuts = splitter.cuts
    previous = 0
    for known, committed in commits:
        assert committed >= previous
        previous = committed
        if known < len(cuts):
            assert committed <= cuts[known]  # the next cut was still to come
    return cuts, held


# -- the splitter --

SPEECH = speech_like(75.0, RATE, seed=3, pauses=(0.2, 0.9))  # some pauses too short to cut
TALK = speech_like(75.0, RATE, seed=4)  # one text per burst


def test_cuts_fall_in_pauses_and_under_the_limit() -> None:
    cuts, _ = cuts_of(SPEECH.samples, [len(SPEECH.samples)])
    assert len(cuts) >= 3
    starts = [0, *cuts]
    for begin, end in itertools.pairwise(starts):
        assert 14 * RATE <= end - begin <= 20 * RATE  # inside the 6 s window before 20 s
    for cut in cuts:
        at = cut / RATE
        assert not any(b.start_s <= at <= b.stop_s for b in SPEECH.bursts), at
        assert cut % round(RATE * 0.02) == 0  # on a frame boundary


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40000), min_size=1, max_size=12))
def test_the_same_cuts_whatever_the_chunking(sizes: list[int]) -> None:
    whole, _ = cuts_of(SPEECH.samples, [len(SPEECH.samples)])
    chunked, _ = cuts_of(SPEECH.samples, sizes)
    assert chunked == whole


def test_the_same_cuts_fed_sample_by_sample() -> None:
    short = SPEECH.samples[:round(30 * RATE)]
    whole, _ = cuts_of(short, [len(short)], limit=8.0, search=3.0)
    by_sample, _ = cuts_of(short, [1], limit=8.0, search=3.0)
    assert by_sample == whole and len(whole) >= 3


def test_a_sentence_pause_is_taken_at_once() -> None:
    """Live input: little is held back when the window has real pauses."""
    _, held = cuts_of(SPEECH.samples, [160])
    assert held <= 5 * RATE  # the longest burst and a pause, not the 6 s window


def test_no_pause_means_a_hard_cut_at_the_limit() -> None:
    cuts, held = cuts_of(tone(70.0, RATE), [800])
    assert cuts == [20 * RATE, 40 * RATE, 60 * RATE]
    assert held <= 6 * RATE + 800  # at most the search window is held back


def test_the_quietest_stretch_when_no_sentence_pause() -> None:
    """Noise everywhere, one stretch 20 dB quieter (shorter than a sentence pause)."""
    rng = np.random.default_rng(1)
    noise = (rng.normal(0, 0.1, 30 * RATE) * 32767).astype(np.int16)
    quiet = slice(round(16.0 * RATE), round(16.3 * RATE))
    noise[quiet] //= 10
    cuts, _ = cuts_of(noise, [1000])
    assert len(cuts) == 1 and 16.0 * RATE < cuts[0] < 16.3 * RATE


def test_quiet_speech_is_not_a_pause() -> None:
    """Speech at -45 dBFS (a quiet recording) has its pauses found relative to its peak."""
    quiet = speech_like(40.0, RATE, seed=5)
    samples = (quiet.samples.astype(np.int32) // 60).astype(np.int16)
    cuts, _ = cuts_of(samples, [4000])
    for cut in cuts:
        assert not any(b.start_s <= cut / RATE <= b.stop_s for b in quiet.bursts)


@pytest.mark.parametrize(("limit", "search"), [(0.5, 0.1), (float("nan"), 1.0), (10.0, -1.0),
                                               (10.0, float("inf")), (True, 1.0)])
def test_bad_split_options_are_refused(limit: float, search: float) -> None:
    with pytest.raises(InvalidSplit, match=r"max_request_s|split_search_s"):
        PauseSplitter(RATE, max_request_s=limit, split_search_s=search)
    with pytest.raises(InvalidSplit):
        ClientOptions(max_request_s=limit, split_search_s=search)
    assert isinstance(InvalidSplit("x"), ValueError)


def test_the_search_window_is_at_most_half_a_request() -> None:
    cuts, _ = cuts_of(SPEECH.samples, [len(SPEECH.samples)], limit=20.0, search=500.0)
    starts = [0, *cuts]
    assert cuts and all(10 * RATE <= b - a <= 20 * RATE
                        for a, b in itertools.pairwise(starts))
    ClientOptions(max_request_s=30.0)  # the default 60 s window is then half of it


def test_a_limit_without_room_for_the_padding_is_refused() -> None:
    with pytest.raises(InvalidSplit, match="leaves"):
        InputChunker(pcm_setup(), max_request_s=2.0, lead_in_silence_s=0.5,
                     trailing_silence_s=1.0)


# -- the chunker: what each request is sent --

def chunks_of(data: bytes, setup: Setup, **kwargs: float) -> tuple[list[Chunk], SegmentPlan]:
    chunker = InputChunker(setup, **kwargs)  # type: ignore[arg-type]
    chunks = [*chunker.feed(data), *chunker.finish()]
    return chunks, chunker.plan


def by_request(chunks: list[Chunk]) -> dict[int, list[Chunk]]:
    out: dict[int, list[Chunk]] = {}
    for chunk in chunks:
        out.setdefault(chunk.segment, []).append(chunk)
    return out


def test_each_request_gets_its_part_and_its_padding() -> None:
    data = SPEECH.samples.tobytes()
    chunks, plan = chunks_of(data, pcm_setup(), lead_in_silence_s=0.32, trailing_silence_s=2.0,
                             max_request_s=22.32)
    requests = by_request(chunks)
    assert len(requests) == len(plan.segments) >= 3 and plan.input_done
    lead, trail = round(0.32 * RATE) * 2, 2 * RATE * 2
    joined = b""
    for index, part in requests.items():
        raw = b"".join(bytes(c.data) for c in part)
        segment = plan.segments[index]
        assert segment.lead_in_s == 0.32 and segment.duration_s is not None
        assert len(raw) == lead + round(segment.duration_s * RATE) * 2 + trail
        assert raw[:lead] == bytes(lead) and raw[-trail:] == bytes(trail)
        joined += raw[lead:-trail]
        # Seam padding goes at once; the input's own ends are paced as before.
        assert part[0].paced is (index == 0)
        assert part[-1].paced is (index == len(requests) - 1)
        assert sum(c.seconds for c in part) == pytest.approx(0.32 + segment.duration_s + 2.0)
    assert joined == data
    starts = [s.start_s for s in plan.segments]
    assert starts == sorted(starts) and all(
        a.stop_s == pytest.approx(b.start_s)
        for a, b in zip(plan.segments, plan.segments[1:], strict=False))


def test_g711_requests_are_padded_with_the_codec_silence() -> None:
    data = ulaw_encode(SPEECH.samples)
    chunks, _plan = chunks_of(data, pcm_setup("ulaw_8000"), lead_in_silence_s=0.32,
                             trailing_silence_s=1.0, max_request_s=21.32)
    requests = by_request(chunks)
    assert len(requests) >= 3
    for part in requests.values():
        raw = b"".join(bytes(c.data) for c in part)
        assert raw[:2560] == b"\xff" * 2560 and raw[-8000:] == b"\xff" * 8000


def wav_bytes(samples: npt.NDArray[np.int16], rate: int, *, extra: bytes = b"") -> bytes:
    data = samples.tobytes()
    return wav_header(rate, data_size=len(data)) + data + extra


def test_a_split_wav_input_gets_a_header_per_request() -> None:
    after = b"LIST" + struct.pack("<I", 4) + b"abcd"  # metadata after the samples
    data = wav_bytes(SPEECH.samples, RATE, extra=after)
    chunks, plan = chunks_of(data, Setup(voice_id="v", input_format="wav"),
                             lead_in_silence_s=0.32, trailing_silence_s=1.0,
                             max_request_s=21.32)
    requests = by_request(chunks)
    assert len(requests) >= 3
    joined = b""
    for index, part in requests.items():
        raw = b"".join(bytes(c.data) for c in part)
        audio = read_wav(raw)  # every request is a WAV stream of its own
        assert audio.sample_rate == RATE
        samples = audio.samples.tobytes()
        if index == 0:
            assert raw.startswith(data[:44])  # the input's own header, as sent
            assert plan.segments[0].lead_in_s == 0.0
        else:
            assert raw[4:8] == b"\xff\xff\xff\xff"  # "unknown length" sizes
            samples = samples[round(0.32 * RATE) * 2:]
        if index < len(requests) - 1:
            samples = samples[:-RATE * 2]  # the seam's trailing silence
        joined += samples
    assert joined == SPEECH.samples.tobytes()  # and the LIST after the data is not audio


def test_a_wav_input_that_is_not_split_goes_as_it_came() -> None:
    data = wav_bytes(SPEECH.samples[:RATE * 5], RATE, extra=b"JUNK" + bytes(4))
    chunks, plan = chunks_of(data, Setup(voice_id="v", input_format="wav"),
                             lead_in_silence_s=0.32, trailing_silence_s=2.0,
                             max_request_s=290.0)
    assert b"".join(bytes(c.data) for c in chunks) == data
    assert len(plan.segments) == 1 and plan.segments[0].duration_s == 5.0


def ogg_page(granule: int, body: bytes) -> bytes:
    segments = [255] * (len(body) // 255) + [len(body) % 255]
    return (b"OggS\x00\x00" + struct.pack("<q", granule) + bytes(12)
            + bytes([len(segments)]) + bytes(segments) + body)


def test_opus_durations_come_from_the_ogg_pages() -> None:
    stream = ogg_page(0, b"OpusHead" + bytes(11)) + b"".join(
        ogg_page(48000 * (i + 1), bytes(300)) for i in range(5))
    chunks = plan_chunks(stream, Setup(voice_id="v", input_format="opus"))
    assert b"".join(bytes(c.data) for c in chunks) == stream
    assert sum(c.seconds for c in chunks) == pytest.approx(5.0)


def test_an_opus_input_longer_than_the_limit_is_refused_before_sending() -> None:
    stream = ogg_page(0, b"OpusHead" + bytes(11)) + ogg_page(48000 * 31, bytes(100))
    chunker = InputChunker(Setup(voice_id="v", input_format="opus"), max_request_s=30.0)
    with pytest.raises(InputTooLong, match="opus input longer than max_request_s") as info:
        check_length(chunker, stream)
    assert isinstance(info.value, ValueError)
    # Not split, not refused: without a limit it goes as one request.
    check_length(InputChunker(Setup(voice_id="v", input_format="opus")), stream)
    # Bytes that are not Ogg are left to the server to judge.
    check_length(InputChunker(Setup(voice_id="v", input_format="opus"), max_request_s=30.0),
                 b"\x00" * 100)


def test_a_streamed_opus_input_is_refused_at_the_page_past_the_limit() -> None:
    pages = [ogg_page(0, b"OpusHead" + bytes(11))] + [
        ogg_page(48000 * 10 * (i + 1), bytes(100)) for i in range(4)]
    feeder = InputFeeder(InputChunker(Setup(voice_id="v", input_format="opus"),
                                      max_request_s=30.0), pace=None, now=0.0)
    sent = 0
    with pytest.raises(InputTooLong):
        for page in pages:
            assert feeder.next_step(0.0).kind is Step.NEED_INPUT
            feeder.feed(page)
            while feeder.next_step(0.0).kind is Step.SEND:
                sent += 1
    assert sent == 4  # the header and the first 30 s went out; the page past it did not


def test_a_live_input_keeps_its_pieces_and_its_ends() -> None:
    pieces = [SPEECH.samples[i:i + 1000].tobytes() for i in range(0, len(SPEECH.samples), 1000)]
    chunker = InputChunker(pcm_setup(), lead_in_silence_s=0.32, trailing_silence_s=2.0,
                           max_request_s=22.32, live=True)
    chunks = [c for piece in pieces for c in chunker.feed(piece)] + [*chunker.finish()]
    assert len(chunker.plan.segments) >= 3
    first, last = chunks[0], chunks[-1]
    assert bytes(first.data) == pieces[0][:len(first.data)] and first.segment == 0
    assert bytes(last.data) == pieces[-1][-len(last.data):]  # no trailing silence at the end
    with pytest.raises(InvalidAudio, match="odd"):
        list(chunker.feed(b"\x00" * 3))


# -- the feeder: steps across requests --

def test_steps_across_requests() -> None:
    chunker = InputChunker(pcm_setup(), lead_in_silence_s=0.32, trailing_silence_s=1.0,
                           max_request_s=21.32)
    feeder = InputFeeder(chunker, pace=None, now=0.0)
    kinds: list[tuple[Step, int]] = []
    fed = False
    while True:
        step = feeder.next_step(0.0)
        if step.kind is Step.NEED_INPUT:
            if fed:
                feeder.finish()
            else:
                feeder.feed(SPEECH.samples.tobytes())
                fed = True
            continue
        if step.kind is Step.WAIT_FOR_OUTPUT:
            # At most two requests live: the third starts once the first was read.
            assert step.segment == feeder.plan.finished
            feeder.plan.finished += 1
            continue
        kinds.append((step.kind, step.segment))
        if step.kind is Step.DONE:
            break
    compact = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    count = len(feeder.plan.segments)
    expected = [(Step.SEND, 0)]
    for index in range(1, count):
        expected += [(Step.END_OF_STREAM, index - 1), (Step.START, index), (Step.SEND, index)]
    expected += [(Step.END_OF_STREAM, count - 1), (Step.DONE, 0)]
    assert compact == expected


def test_seam_padding_does_not_move_the_schedule() -> None:
    """Paced at real time: the input after a seam is due when it would be without one."""
    chunker = InputChunker(pcm_setup(), lead_in_silence_s=0.32, trailing_silence_s=1.0,
                           max_request_s=21.32)
    feeder = InputFeeder(chunker, pace=1.0, now=100.0)
    feeder.feed(SPEECH.samples.tobytes())
    now, sent = 100.0, 0.0
    while True:
        step = feeder.next_step(now)
        if step.kind is Step.WAIT:
            assert step.until is not None
            now = step.until
        elif step.kind is Step.START and step.segment > 1:
            feeder.plan.finished = step.segment - 1
        elif step.kind is Step.WAIT_FOR_OUTPUT:
            feeder.plan.finished = step.segment + 1
        elif step.kind is Step.NEED_INPUT:
            break
        elif step.kind is Step.SEND:
            sent = now
    # Lead-in (0.32 s) and the audio sent so far: no trailing silence was paced.
    assert sent <= 100.0 + 0.32 + SPEECH.duration_s
    assert sent >= 100.0 + feeder.plan.segments[-1].start_s


def test_what_a_later_request_was_sent_is_kept_until_it_is_read() -> None:
    chunker = InputChunker(pcm_setup(), max_request_s=20.0)
    feeder = InputFeeder(chunker, pace=None, now=0.0)
    feeder.feed(SPEECH.samples[:round(30 * RATE)].tobytes())
    sent: dict[int, bytes] = {}

    def run_until(kind: Step) -> None:
        while (step := feeder.next_step(0.0)).kind is not kind:
            if step.kind is Step.SEND:
                sent[step.segment] = sent.get(step.segment, b"") + b"".join(
                    bytes(c) for c in step.chunks)
            elif step.kind is Step.WAIT_FOR_OUTPUT:
                feeder.plan.finished += 1  # read to its end (request 1 is not read yet)

    run_until(Step.NEED_INPUT)
    feeder.finish()
    run_until(Step.DONE)
    assert len(sent) >= 2
    replayed, ended = feeder.replay(1)
    assert b"".join(replayed) == sent[1] and ended
    assert feeder.replayable(1)
    with pytest.raises(LocalProtocolError, match="was not started"):
        feeder.replay(0)
    feeder.plan.delivered.add(1)  # the caller got its first event
    assert not feeder.replayable(1)
    with pytest.raises(LocalProtocolError, match="reached the caller"):
        feeder.replay(1)


# -- the stitcher: one stream out, served by the local engine --

def serve(data: bytes | npt.NDArray[np.int16], setup: Setup, *, lead: float = 0.32,
          trailing: float = 2.0, limit: float | None = 22.32, fail: int | None = None,
          keep_audio: bool = True, eager: bool = False) -> tuple[Stitcher, list[StreamEvent]]:
    """Run an input through requests served by ``LoopbackEngine``s; stitch what they say.

    ``fail``: that request ends with a ConnectionClosedError after its ready.
    ``eager``: the consumer reads every reply of the current request as soon as
    the engine makes it (the tightest interleaving of the two sides).
    """
    chunker = InputChunker(setup, lead_in_silence_s=lead, trailing_silence_s=trailing,
                           max_request_s=limit)
    feeder = InputFeeder(chunker, pace=None, now=0.0)
    stitcher = Stitcher(feeder.plan, setup.output_format, keep_audio=keep_audio)
    replies: dict[int, list[object]] = {}
    engines: dict[int, LoopbackEngine] = {}
    out: list[StreamEvent] = []

    def start(index: int) -> None:
        engines[index] = engine = LoopbackEngine(setup.input_format, setup.output_format)
        replies[index] = [Ready(request_id=f"r{index}", sample_rate=engine.output_sample_rate)]

    def consume_one() -> None:
        index = stitcher.current
        item = replies[index].pop(0)
        if isinstance(item, Exception):
            raise stitcher.fail(item)  # type: ignore[arg-type]
        out.extend(stitcher.take(item))  # type: ignore[arg-type]

    def events(items: list[AudioOut | TextOut]) -> list[object]:
        return [Audio(audio=o.data, start_s=o.start_s, stop_s=o.stop_s)
                if isinstance(o, AudioOut) else Text(text=o.text, start_s=o.start_s,
                                                      stop_s=o.stop_s)
                for o in items]

    start(0)
    fed = False
    while True:
        step = feeder.next_step(0.0)
        if step.kind is Step.NEED_INPUT:
            if fed:
                feeder.finish()
            else:
                feeder.feed(data)
                fed = True
        elif step.kind is Step.START:
            start(step.segment)
        elif step.kind is Step.SEND:
            for chunk in step.chunks:
                replies[step.segment] += events(engines[step.segment].feed(bytes(chunk)))
                while eager and replies.get(stitcher.current) and not stitcher.done:
                    consume_one()
        elif step.kind is Step.END_OF_STREAM:
            index = step.segment
            replies[index] += events(engines[index].finish())
            replies[index].append(EndOfStream())
            if index == fail:
                replies[index][1:] = [ConnectionClosedError(1006, "", "dropped")]
        elif step.kind is Step.WAIT_FOR_OUTPUT:
            while stitcher.plan.finished <= step.segment:
                consume_one()
        else:
            break
    while not stitcher.done:
        consume_one()
    return stitcher, out


def test_the_joined_output_is_the_input_on_its_timeline() -> None:
    stitcher, events = serve(TALK.samples.tobytes(), pcm_setup())
    result = stitcher.result()
    count = len(stitcher.plan.segments)
    assert count >= 3 and result.complete and result.request_ids == [f"r{i}" for i in range(count)]
    output = result.pcm16()
    # The same rate in and out: the echo is exact, every seam included.
    assert len(output) == len(TALK.samples) + 2 * RATE
    assert np.array_equal(output[:len(TALK.samples)], TALK.samples)
    assert not output[len(TALK.samples):].any()
    kinds = [type(e) for e in events if not isinstance(e, (Audio, Text))]
    assert kinds == [Ready, *[RequestStarted] * (count - 1), EndOfStream]
    started = [e for e in events if isinstance(e, RequestStarted)]
    assert [e.index for e in started] == list(range(1, count))
    assert [e.input_start_s for e in started] == [s.start_s for s in stitcher.plan.segments[1:]]
    assert started[0].request_id == "r1" and started[0].client_req_id is None
    # Audio events tile the timeline.
    audio = [e for e in events if isinstance(e, Audio)]
    assert b"".join(e.audio for e in audio) == result.raw_data
    for a, b in itertools.pairwise(audio):
        assert a.stop_s == b.start_s
    # One text per burst, in input time, in order; the last ends where the speech ends.
    texts = result.text_with_timestamps
    assert len(texts) == len(TALK.bursts)
    for text, burst in zip(texts, TALK.bursts, strict=True):
        assert abs(text.start_s - burst.start_s) <= 0.02 and abs(text.stop_s - burst.stop_s) <= 0.02


def test_a_consumer_as_fast_as_the_server_gets_the_same_stream() -> None:
    """Output of a request's trailing silence read the moment it is made is still cut."""
    eager, _ = serve(TALK.samples.tobytes(), pcm_setup(), eager=True)
    late, _ = serve(TALK.samples.tobytes(), pcm_setup())
    assert eager.result().raw_data == late.result().raw_data
    assert eager.result().text_with_timestamps == late.result().text_with_timestamps


def test_the_lead_in_is_cut_and_subtracted() -> None:
    short = SPEECH.samples[:RATE * 5].tobytes()
    stitcher, events = serve(short, pcm_setup(), limit=None)
    result = stitcher.result()
    assert result.raw_data == short + bytes(2 * RATE * 2)
    first = result.text_with_timestamps[0]
    assert abs(first.start_s - SPEECH.bursts[0].start_s) <= 0.02
    # Every event keeps the engine's 80 ms frame (the lead-in is four frames).
    audio = [e for e in events if isinstance(e, Audio)]
    assert all(len(e.audio) == 1280 for e in audio[:-1])


def test_a_text_in_the_lead_in_is_clamped_to_zero() -> None:
    plan = SegmentPlan([Segment(0, 0.0, 0.32)])
    stitcher = Stitcher(plan, "pcm_8000", keep_audio=True)
    stitcher.take(Ready(request_id="r", sample_rate=8000))
    [text] = stitcher.take(Text(text="hi", start_s=0.1, stop_s=0.5))
    assert isinstance(text, Text) and text.start_s == 0.0 and text.stop_s == pytest.approx(0.18)


def test_a_hard_cut_tone_comes_back_whole() -> None:
    samples = tone(50.0, RATE)
    stitcher, _ = serve(samples.tobytes(), pcm_setup())
    output = stitcher.result().pcm16()
    assert len(stitcher.plan.segments) == 3
    assert np.array_equal(output[:len(samples)], samples)


def test_ulaw_in_and_out() -> None:
    data = ulaw_encode(SPEECH.samples)
    stitcher, _ = serve(data, pcm_setup("ulaw_8000", "ulaw_8000"), trailing=1.0,
                        limit=21.32)
    result = stitcher.result()
    assert len(stitcher.plan.segments) >= 3
    assert result.raw_data[:len(data)] == data and result.raw_data[len(data):] == b"\xff" * 8000


def test_wav_in_and_out_has_one_header_with_real_sizes() -> None:
    data = wav_bytes(SPEECH.samples, RATE)
    setup = Setup(voice_id="v", input_format="wav", output_format="wav")
    stitcher, events = serve(data, setup, trailing=1.0, limit=21.32)
    result = stitcher.result()
    assert len(stitcher.plan.segments) >= 3
    assert result.raw_data.count(b"RIFF") == 1
    audio = read_wav(result.raw_data)
    assert audio.sample_rate == 48000
    found = find_bursts(audio.samples, 48000)
    assert_same_bursts(found, SPEECH.bursts)
    # No trailing silence at the end of a wav input: the output is as long as the input.
    assert len(audio.samples) == round(SPEECH.duration_s * 48000)
    assert b"".join(e.audio for e in events if isinstance(e, Audio)).count(b"RIFF") == 1


def test_opus_output_is_a_chained_ogg_stream() -> None:
    """Opus cannot be cut: each request's stream follows the last, timings shifted."""
    plan = SegmentPlan([Segment(0, 0.0, 0.32, 10.0), Segment(1, 10.0, 0.32, 5.0)],
                       input_done=True)
    stitcher = Stitcher(plan, "opus", keep_audio=True)
    out: list[StreamEvent] = []
    for index in range(2):
        out += stitcher.take(Ready(request_id=f"r{index}", sample_rate=48000))
        out += stitcher.take(Audio(audio=f"ogg{index}".encode(), start_s=1.0, stop_s=1.5))
        out += stitcher.take(EndOfStream())
    assert stitcher.result().raw_data == b"ogg0ogg1"
    audio = [e for e in out if isinstance(e, Audio)]
    assert [(e.start_s, e.stop_s) for e in audio] == [(0.68, 1.18), (10.68, 11.18)]
    assert [type(e) for e in out].count(EndOfStream) == 1


def test_a_failed_request_says_which_part_and_keeps_what_came_before() -> None:
    with pytest.raises(ConnectionClosedError) as info:
        serve(SPEECH.samples.tobytes(), pcm_setup(), fail=1)
    error = info.value
    segment = error.segment
    assert isinstance(segment, Segment) and segment.index == 1
    assert any("request 2 (input" in note for note in error.__notes__)
    partial = error.partial_result
    assert partial is not None and not partial.complete
    assert partial.request_ids == ["r0", "r1"]
    # Everything before the failed request, on the input's timeline.
    before = round(segment.start_s * RATE)
    assert np.array_equal(partial.pcm16()[:before], SPEECH.samples[:before])


def test_a_stream_without_keep_audio_keeps_no_audio() -> None:
    stitcher, events = serve(SPEECH.samples.tobytes(), pcm_setup(), keep_audio=False)
    assert stitcher.result().raw_data == b""
    assert sum(len(e.audio) for e in events if isinstance(e, Audio)) == (
        len(SPEECH.samples) + 2 * RATE) * 2


def test_request_started_is_a_frozen_event() -> None:
    ready = Ready(request_id="r", sample_rate=48000, client_req_id="c")
    event = RequestStarted(index=2, input_start_s=580.0, ready=ready)
    assert event.type == "request_started" and event.request_id == "r"
    assert event.client_req_id == "c"
    with pytest.raises(AttributeError):
        event.index = 3  # type: ignore[misc]
    assert msgspec.structs.asdict(event)["input_start_s"] == 580.0


def test_the_lead_in_default_is_whole_frames() -> None:
    assert round(LEAD_IN_SILENCE_S / 0.08, 9) == 4


def test_ulaw_decode_roundtrip_is_exact_for_the_test_input() -> None:
    """The G.711 tests above compare bytes: the codec is its own inverse on its output."""
    data = ulaw_encode(SPEECH.samples)
    assert ulaw_encode(ulaw_decode(data)) == data


def test_a_wav_header_split_across_messages_goes_out_whole_once() -> None:
    plan = SegmentPlan([Segment(0, 0.0, 0.0, 1.0), Segment(1, 1.0, 0.0, 1.0)], input_done=True)
    stitcher = Stitcher(plan, "wav", keep_audio=True)
    header = wav_header(8000)
    out: list[StreamEvent] = []
    for index in range(2):
        out += stitcher.take(Ready(request_id=f"r{index}", sample_rate=8000))
        out += stitcher.take(Audio(audio=header[:10]))
        out += stitcher.take(Audio(audio=header[10:]))
        out += stitcher.take(Audio(audio=bytes(16000)))
        out += stitcher.take(EndOfStream())
    sent = b"".join(e.audio for e in out if isinstance(e, Audio))
    assert sent == header + bytes(32000)
    assert read_wav(stitcher.result().raw_data).samples.shape == (16000,)
