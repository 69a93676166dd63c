"""Frame reader cost per call: the fast lane and the general path (no SDK involved).

Run ``python -m benchmarks.frames``. Each case feeds ``FrameReader`` the bytes
of whole frames as a transport would hand them over and prints the best
per-call time of several repeats. The fast lane is what almost every frame
takes (one whole, final, unfragmented text or binary frame); the general path
takes fragments, control frames, 64-bit lengths and frames split across reads.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

from s2s_core._frames import FrameReader, FrameWriter, Opcode

ROUNDS, NUMBER = 9, 20000


def per_call_us(fn: Callable[[], object]) -> float:
    """Best time of one call over ROUNDS repeats of NUMBER calls, in microseconds."""
    return min(timeit.repeat(fn, number=NUMBER, repeat=ROUNDS)) / NUMBER * 1e6


def _frames(writer: FrameWriter, opcode: Opcode, payload: bytes, parts: int = 1) -> bytes:
    """``payload`` as one message in ``parts`` fragments."""
    if parts == 1:
        return writer.frame(opcode, payload)
    step = -(-len(payload) // parts)
    pieces = [payload[i:i + step] for i in range(0, len(payload), step)]
    out = [writer.frame(opcode if i == 0 else Opcode.CONTINUATION, piece,
                        fin=i == len(pieces) - 1) for i, piece in enumerate(pieces)]
    return b"".join(out)


def cases() -> dict[str, tuple[bool, list[bytes], int]]:
    """Name -> (reader expects masked frames, the reads to feed, messages they hold)."""
    server, client = FrameWriter(mask=False), FrameWriter(mask=True)
    audio = b"x" * 10_240  # ~ one 80 ms server audio message (48 kHz pcm in JSON)
    small = b"y" * 200
    big = server.frame(Opcode.TEXT, audio)
    masked = client.frame(Opcode.TEXT, audio[:5120])
    return {
        "fast: 10 KB text, unmasked (client reads)": (False, [big], 1),
        "fast: 5 KB text, masked (server reads)": (True, [masked], 1),
        "fast: 8 x 200 B text in one read": (False, [server.frame(Opcode.TEXT, small) * 8], 8),
        "general: 10 KB text split over two reads": (False, [big[:4000], big[4000:]], 1),
        "general: 10 KB text in 3 fragments": (False, [_frames(server, Opcode.TEXT, audio, 3)], 1),
        "general: ping then pong": (False, [server.frame(Opcode.PING, b"p")
                                            + server.frame(Opcode.PONG, b"p")], 2),
        "general: 80 KB text (64-bit length)": (False, [server.frame(Opcode.TEXT, audio * 8)], 1),
    }


def main() -> int:
    for name, (masked, reads, count) in cases().items():
        reader = FrameReader(expect_masked=masked)
        feed = reader.feed

        def run(feed: Callable[[bytes], object] = feed, reads: list[bytes] = reads) -> None:
            for data in reads:
                feed(data)

        got = sum(len(reader.feed(data)) for data in reads)
        if got != count or reader.error is not None:
            raise RuntimeError(f"{name}: {got} messages, error {reader.error}")
        print(f"{name}: {per_call_us(run):.3f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
