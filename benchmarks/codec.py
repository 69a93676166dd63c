"""Message codec cost per 80 ms message, against json + stdlib base64 (same run).

Run ``python -m benchmarks.codec``. Decode: one server audio message (80 ms of
48 kHz pcm, ~10 KB of JSON) to an ``Audio`` event, against ``json.loads`` +
``base64.b64decode``. Encode: one client audio message (80 ms of 24 kHz pcm)
against ``json.dumps`` + ``base64.b64encode``. No WebSocket framing on either
side (``python -m benchmarks --only decode,encode`` measures with framing).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import timeit
from collections.abc import Callable

from s2s_core import _wire as messages

ROUNDS, NUMBER = 9, 5000


def per_call_us(fn: Callable[[], object]) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=ROUNDS)) / NUMBER * 1e6


def main() -> int:
    out_pcm, in_pcm = os.urandom(7680), os.urandom(3840)
    server_msg = messages.encode_server_audio(out_pcm, 0.0, 0.08, stream_id=0)
    server_text = server_msg.decode()

    def ours_decode() -> object:
        return messages.decode_server_message(server_msg)

    def stdlib_decode() -> object:
        message = json.loads(server_text)
        return base64.b64decode(message["audio"])

    def ours_encode() -> object:
        return messages.encode_audio(in_pcm)

    def stdlib_encode() -> object:
        return json.dumps({"type": "audio", "audio": base64.b64encode(in_pcm).decode()})

    assert messages.decode_server_message(server_msg).audio == stdlib_decode()  # type: ignore[union-attr]
    assert json.loads(ours_encode()) == json.loads(stdlib_encode())
    for name, ours, theirs in (("decode 10 KB server audio message", ours_decode, stdlib_decode),
                               ("encode 5 KB client audio message", ours_encode, stdlib_encode)):
        a, b = per_call_us(ours), per_call_us(theirs)
        print(f"{name}: ours {a:.2f} us, json + stdlib base64 {b:.2f} us, ratio {b / a:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
