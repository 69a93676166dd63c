"""The documentation the async and the blocking clients share, written once.

Both flavours of a call (``s2s_anyio``/``s2s_trio`` and ``s2s_threaded``)
take the same arguments, return the same shapes and raise the same errors;
only the waiting differs (awaited or blocking, async or plain iteration).
Each flavour's own docstring says what differs; ``shared_doc`` appends the
text kept here, with the flavour's words in its ``{fields}``, so ``help()``
shows the whole on both::

    @shared_doc(S2S, **ASYNC)
    async def s2s(self, ...) -> S2SResult:
        "Translate a whole input and return the whole result (awaitable)."

``ASYNC`` and ``BLOCKING`` hold each flavour's words.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["shared_doc", "ASYNC", "BLOCKING", "EITHER", "S2S_REALTIME", "S2S_STREAM", "S2S",
           "S2S_STREAM_CLASS", "SPLIT_SESSION", "SPLIT_SEND_AUDIO", "CONNECT", "OPEN_CONNECTION",
           "VOICE_LIST", "VOICE_GET", "CREDITS", "MINT_TOKEN"]

T = TypeVar("T", bound=Callable[..., Any])

ASYNC = {"iterable": "an iterable or an async iterable", "with_": "async with"}
"""The async flavour's words (``s2s_anyio``, ``s2s_trio``)."""
BLOCKING = {"iterable": "an iterable", "with_": "with"}
"""The blocking flavour's words (``s2s_threaded``)."""
EITHER = {"iterable": "an iterable (or an async iterable, in the async clients)"}
"""Words for a call written once for every flavour."""


def shared_doc(text: str, **words: str) -> Callable[[T], T]:
    """Append ``text`` (its ``{fields}`` filled from ``words``) to a function's or class's doc."""

    def apply(target: T) -> T:
        own = inspect.cleandoc(target.__doc__ or "")
        shared = text.format(**words).strip()  # written flush left
        target.__doc__ = f"{own}\n\n{shared}" if own else shared
        return target

    return apply


def _section(title: str, entries: dict[str, str], *names: str) -> str:
    """A Google-style section listing ``names`` from ``entries``, in that order."""
    lines = [f"{title}:"]
    for name in names:
        first, *rest = inspect.cleandoc(entries[name]).splitlines()
        lines.append(f"    {name}: {first}")
        lines.extend(f"        {line}" for line in rest)
    return "\n".join(lines)


# -- one input (s2s, s2s_stream) --

_INPUT_ARGS = {
    "setup": "A ``Setup`` or the official SDK's setup dict.",
    "audio": """Bytes in the setup's input format, a numpy array (int16,
        float32/64 clipped), or {iterable} yielding such chunks.""",
    "sample_rate": "Rate of numpy input when not the format's rate.",
    "pace": """1.0 (the default) sends at real time (recommended by the
        vendor), 2.0 twice as fast, None as fast as possible.""",
    "trailing_silence_s": """Silence appended to raw (pcm, G.711) input,
        and to every request but the last of a split input (default
        ``options.TRAILING_SILENCE_S``, 2 s).""",
    "lead_in_silence_s": """Silence sent before raw input, and before
        every request but the first of a split input (the recognizer
        may drop a word in a stream's first ~200 ms; default
        ``options.LEAD_IN_SILENCE_S``, 0.32 s). Output timings stay in
        input time.""",
    "keep_audio": """Keep every output chunk for ``result()`` (off by
        default so a long stream does not grow memory; ``result()``
        then holds the audio not iterated before it).""",
    "connection": """Run the first request on this connection instead of
        opening one (later requests of a split input open their own).""",
    "downmix": """Average the channels of 2-D numpy input, (samples,
        channels) or (channels, samples), instead of refusing it (off by
        default).""",
}

_INPUT_ERRORS = {
    "InvalidSetup": "The setup is invalid (before anything is sent).",
    "InvalidAudio": """``sample_rate`` or a silence length is out of range,
        or ``audio`` is an array that cannot be sent (its dtype, or a
        2-D shape without ``downmix``), before anything is sent;
        later chunks of an iterable fail the stream instead.""",
    "InputTooLong": "A whole opus input is longer than ``max_request_s``.",
    "ValueError": "``pace`` is not positive.",
    "S2SError": """On any later failure, with ``partial_result`` attached
        and ``attempts`` listing every attempt (and ``segment``, the part
        of a split input whose request failed).""",
}

_SPLIT = """An input longer than ``options.max_request_s`` (290 s) is split at
pauses into several requests, each on its own connection opened while the
previous one's output still streams back; the stream reads them as one
(see ``S2SStream``)."""

S2S_STREAM = "\n\n".join([
    _SPLIT,
    _section("Args", _INPUT_ARGS, "setup", "audio", "sample_rate", "pace",
             "trailing_silence_s", "lead_in_silence_s", "keep_audio", "connection",
             "downmix"),
    """Returns:
    An ``OpenStream``. Entering it (``async with``; ``with`` in
    ``s2s_threaded``) connects (unless given ``connection``), sends
    the setup and yields the ``S2SStream`` once
    ``ready`` came; a transient failure until then is retried as
    ``options.retry`` says (a one-shot source only if nothing was
    pulled from it yet). Leaving it stops the input and closes what it
    opened.""",
    _section("Raises", _INPUT_ERRORS, "InvalidSetup", "InvalidAudio", "InputTooLong",
             "ValueError"),
])
"""``S2SClient.s2s_stream``: splitting, arguments, return, errors."""

S2S = "\n\n".join([
    """Nothing reaches the caller before the result, so any transient
failure is retried as ``options.retry`` says, if the input can be
replayed: the whole input again, on a new connection, when its first
request failed; a later request of a split input alone. An input
longer than ``options.max_request_s`` is split (see ``s2s_stream``);
the result joins every request (``request_ids``).""",
    _section("Args", _INPUT_ARGS, "setup", "audio", "sample_rate", "pace",
             "trailing_silence_s", "lead_in_silence_s", "downmix"),
    """Returns:
    The whole ``S2SResult``: ``raw_data`` in the setup's output format,
    ``text_with_timestamps`` in input time, ``request_ids``, ``metrics``.""",
    _section("Raises", _INPUT_ERRORS, "InvalidSetup", "InvalidAudio", "InputTooLong",
             "ValueError", "S2SError"),
])
"""``S2SClient.s2s``: retries, arguments, return, errors."""

S2S_REALTIME = """The session is yielded once ``ready`` came: connect failures and a
refused setup before that are retried as ``options.retry`` says (no
audio was sent yet). Once it is yours, its first request is not
retried. Past ``options.max_request_s`` of audio it rolls over to a
new request at a pause while you keep sending (``SplitSession``); a
later request is retried until its output reaches you.

Args:
    **setup: The setup's fields, as in the official SDK's setup dict
        (see ``Setup``).

Returns:
    An ``OpenSession``: ``{with_} client.s2s_realtime(...) as session``.

Raises:
    InvalidSetup: A setup field is unknown or invalid.
    S2SError: On entry, when connecting or the setup failed for good."""
"""``S2SClient.s2s_realtime``: what the session does, arguments, return, errors."""

S2S_STREAM_CLASS = """Iterate ``iter_audio()`` for output bytes or ``iter_events()`` for every
event; text segments collect in ``text_with_timestamps`` either way. An
input longer than ``options.max_request_s`` runs as several requests,
read here as one stream: each later request's ``Ready`` comes as a
``RequestStarted`` event, timings are in input time, and one
``EndOfStream`` ends it."""
"""``S2SStream``: how it is read."""

SPLIT_SESSION = """Past ``options.max_request_s`` of audio, the session rolls over to a new
request at a pause while you keep calling ``send_audio``: the next
request is set up on its own connection while the previous one's output
still streams back, and iteration reads them as one stream (each later
request's ``Ready`` comes as a ``RequestStarted``; one ``EndOfStream``).
Audio near a request's end may be held back until a pause decides where
it goes (at most ``options.split_search_s``). ``connection`` and
``request`` are the first request's; ``chain`` holds them all."""
"""``SplitSession``: how it rolls over."""

SPLIT_SEND_AUDIO = """Args:
    audio: One chunk: bytes in the setup's input format, or samples (a
        numpy array, at the format's rate).
    downmix: Average the channels of a 2-D array instead of refusing it.

Raises:
    InvalidAudio: The chunk is not valid for the input format.
    LocalProtocolError: ``send_end_of_stream`` was called already.
    S2SError: The request it goes to failed (and is not retried)."""
"""``SplitSession.send_audio``: arguments and errors."""

# -- connect, open_connection --

_CONNECT_ARGS = {
    "url": "The ``ws://``/``wss://`` S2S endpoint.",
    "setup": "A ``Setup`` or a dict of its fields.",
    "api_key": "Sent as ``x-api-key``.",
    "token": "Single-use token, sent as ``?token=``.",
    "keep_audio": "Keep output audio for ``result()``.",
    "options": "Every connection setting (``ClientOptions``).",
    "**kwargs": """Any ``ClientOptions`` field, replacing ``options``'
        (``connect_timeout=``, ``idle_timeout=``, ``queue_size=``...).""",
}

CONNECT = _section("Args", _CONNECT_ARGS, "url", "setup", "api_key", "token", "keep_audio",
                   "options", "**kwargs")
"""``connect``: arguments."""

OPEN_CONNECTION = _section("Args", _CONNECT_ARGS, "url", "api_key", "token", "options",
                           "**kwargs")
"""``open_connection``: arguments."""

# -- REST --

_REST_ERRORS = {
    "AuthenticationError": "Bad key (HTTP 401/403).",
    "RestError": "Any other HTTP error; InvalidResponse for an unreadable answer.",
    "ConnectError, ConnectTimeout, S2STimeoutError": "The transport failed.",
    "MissingApiKey": "The client has a token and no key.",
}

VOICE_LIST = """Args:
    include_catalog: Also list the catalog's voices (the default), not
        only the account's own.

""" + _section("Raises", _REST_ERRORS, "AuthenticationError", "RestError",
               "ConnectError, ConnectTimeout, S2STimeoutError", "MissingApiKey")
"""``voice_list``: errors (the other calls' are the same)."""

VOICE_GET = """Args:
    uid: The voice's id.

Raises:
    NotFound: No voice with this uid (HTTP 404).
    RestArgumentError: Empty uid.
    AuthenticationError, RestError, ConnectError, S2STimeoutError: As
        for ``voice_list``."""
"""``voice_get``: errors."""

CREDITS = """Raises:
    AuthenticationError: Bad key: what a 1008 refusal meant when this raises.
    RestError, ConnectError, S2STimeoutError: As for ``voice_list``."""
"""``credits``: errors."""

MINT_TOKEN = """Raises:
    AuthenticationError, RestError, ConnectError, S2STimeoutError: As
        for ``voice_list``."""
"""``mint_token``: errors."""
