"""Every bad argument is refused before anything is streamed: exit 2, one line naming it.

Each line names the argument, the value and what is allowed. Every
``translate`` here points ``--url`` at a socket that listens and never
answers: a run that connected would hang there until its connect timeout;
after the runs, no connection is waiting on it. Each run gets a bounded wait
(``REFUSAL_TIMEOUT``) far above what a refusal takes (well under a second).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest
from cli_support import (
    SAMPLE,
    blocking_env,
    child_env,
    expect_one_error,
    speech,
    write_audio,
)

from s2s_cli import _media as media

REFUSAL_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def silent() -> Iterator[socket.socket]:
    """A listening socket that never accepts: the URL no refused run may reach."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


def _unwritable(folder: Path) -> Path:
    """A folder where no file can be created (root ignores permissions: /proc it is)."""
    if os.geteuid() == 0:
        return Path("/proc")
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked


_T = ["translate", "talk.wav", "--url", "{url}"]

# name -> (arguments, words the one error line must contain); {url} is the silent
# socket's, {locked} a folder where nothing can be created.
CASES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "rate-low": (["translate", "talk.raw", "--rate", "7", "-o", "out.wav", "--url", "{url}"],
                 ("--rate", "'7'", "8000", "192000")),
    "rate-high": (["translate", "talk.raw", "--rate", "1000000000", "-o", "out.wav",
                   "--url", "{url}"], ("--rate", "'1000000000'", "8000 to 192000")),
    "rate-for-a-header": (["translate", "talk.mp3", "--rate", "16000", "-o", "out.wav",
                           "--url", "{url}"],
                          ("--rate 16000", "talk.mp3", "MP3 header", "raw PCM only")),
    "rate-for-an-untagged-mp3": (["translate", "bare.mp3", "--rate", "24000", "-o", "out.wav",
                                  "--url", "{url}"],
                                 ("--rate 24000", "bare.mp3", ".mp3 file", "raw PCM only")),
    "output-is-a-folder": ([*_T, "-o", "folder"], ("-o folder", "is a directory", "a file path")),
    "output-folder-missing": ([*_T, "-o", "missing/out.wav"],
                              ("-o missing/out.wav", "'missing' does not exist",
                               "existing, writable folder")),
    "output-not-writable": ([*_T, "-o", "{locked}/out.wav"],
                            ("-o {locked}/out.wav", "not writable", "existing, writable folder")),
    "output-extension": ([*_T, "-o", "out.xyz"],
                         ("-o out.xyz", "unknown extension '.xyz'", ".wav", ".flac", ".mp4")),
    "video-output-of-audio": ([*_T, "-o", "out.mp4"],
                              ("-o out.mp4", "no video stream", "audio extension", ".wav")),
    "output-is-the-input": ([*_T, "-o", "talk.wav"], ("-o talk.wav", "the input itself")),
    "url-scheme": (["translate", "talk.wav", "-o", "out.wav", "--url", "ftp://example.com/api/"],
                   ("--url ftp://example.com/api/", "'ftp'", "ws, wss, http, https")),
    "missing-input": (["translate", "nope.wav", "-o", "out.wav", "--url", "{url}"],
                      ("nope.wav", "not found")),
    "jobs": ([*_T, "-o", "out.wav", "--jobs", "0"], ("--jobs", "'0'", ">= 1")),
    "language": ([*_T, "-o", "out.wav", "--target-language", "xx"],
                 ("--target-language", "'xx'", "'fr'")),
    "wire-format": ([*_T, "-o", "out.wav", "--input-format", "opus"],
                    ("--input-format", "'opus'", "pcm_16000")),
    "json-and-stdout": ([*_T, "-o", "-", "--json"], ("-o -", "--json")),
    "ext-of-one-input": ([*_T, "-o", "out.wav", "--ext", "flac"], ("--ext", "batch")),
    "ext-unknown": (["translate", "talk.wav", "talk.mp3", "-o", "out/", "--url", "{url}",
                     "--ext", "xyz"], ("--ext xyz", "unknown extension", ".flac")),
    "batch-into-a-file": (["translate", "talk.wav", "talk.raw", "-o", "out.wav", "--url",
                           "{url}"], ("-o out.wav", "folder")),
    "stdin-in-a-batch": (["translate", "-", "talk.wav", "-o", "out/", "--url", "{url}"],
                         ("INPUT -", "single input")),
    "loop-of-threaded": ([*_T, "-o", "out.wav", "--backend", "threaded", "--loop", "trio"],
                         ("--loop trio", "threaded", "no --loop")),
    "backend-without-trio": ([*_T, "-o", "out.wav", "--backend", "trio"],
                             ("--backend trio", "not installed", "pip install 's2s-core[trio]'")),
    "loop-without-uvloop": ([*_T, "-o", "out.wav", "--loop", "uvloop"],
                            ("--loop uvloop", "not installed", "pip install 's2s-core[uvloop]'")),
    "serve-port": (["serve", "--port", "99999"], ("--port", "'99999'", "0 to 65535")),
    "serve-port-negative": (["serve", "--port", "-1"], ("--port", "'-1'", "0 to 65535")),
    "serve-loop-without-trio": (["serve", "--loop", "trio"],
                                ("--loop trio", "pip install 's2s-core[trio]'")),
    "serve-audio-limit": (["serve", "--max-audio-s", "0"], ("--max-audio-s", "'0'", "> 0")),
    "voices-url-scheme": (["voices", "--url", "file:///etc/passwd"],
                          ("--url file:///etc/passwd", "'file'", "ws, wss, http, https")),
}

Refusal = tuple[subprocess.CompletedProcess[str], tuple[str, ...], Path]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory,
             silent: socket.socket) -> dict[str, Refusal]:
    folder = tmp_path_factory.mktemp("refusals")
    (folder / "folder").mkdir()
    (folder / "talk.wav").write_bytes(SAMPLE.read_bytes())
    (folder / "talk.raw").write_bytes(speech(16_000).tobytes())
    write_audio(folder / "talk.mp3", "mp3", "libmp3lame", speech(16_000), 16_000)
    with av.open(str(folder / "bare.mp3"), "w", format="mp3",  # no ID3 tag, no Xing header
                 options={"id3v2_version": "0", "write_xing": "0"}) as bare, \
            av.open(str(folder / "talk.mp3")) as tagged:
        stream = bare.add_stream("libmp3lame", rate=16_000, layout="mono")
        for packet in tagged.demux(audio=0):
            if packet.size:
                packet.stream = stream
                bare.mux(packet)
    assert media.sniff_header((folder / "bare.mp3").read_bytes()[:12]) is None
    values = {"url": f"ws://127.0.0.1:{silent.getsockname()[1]}/api/speech/s2s",
              "locked": str(_unwritable(folder))}
    env = child_env(**blocking_env(folder / "blocked", "trio", "uvloop"))

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "s2s_cli",
                               *(arg.format(**values) for arg in args)],
                              cwd=folder, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=REFUSAL_TIMEOUT)

    before = sorted(p.name for p in folder.iterdir())
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(run, args) for name, (args, _) in CASES.items()}
        done = {name: future.result() for name, future in futures.items()}
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written or created
    return {name: (proc, tuple(w.format(**values) for w in CASES[name][1]), folder)
            for name, proc in done.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_with_exit_2_and_one_line(refusals: dict[str, Refusal], name: str) -> None:
    proc, words, _ = refusals[name]
    expect_one_error(proc, 2, *words)
    assert "usage:" not in proc.stderr


def test_no_refused_run_connected(refusals: dict[str, Refusal], silent: socket.socket) -> None:
    assert refusals
    silent.setblocking(False)
    with pytest.raises(BlockingIOError):
        silent.accept()
