"""s2s_core: a sans-IO client and server core for the Gradium S2S WebSocket API.

``import s2s_core`` gives the public API (the names in ``__all__``); the
modules whose names start with ``_`` are private. Two levels to plug in at:

- ``ClientProtocol`` (message level): for a WebSocket you already have;
  ``send_*`` return the JSON text to send, ``receive_message`` returns events.
- ``ClientConnection`` (byte level): bytes in, events out, bytes to write and
  the next deadline, with the WebSocket handshake, framing and timers inside.

The local service without I/O is the subpackage ``s2s_core.loopback``.

Example:
    >>> import s2s_core
    >>> proto = s2s_core.ClientProtocol()
    >>> text = proto.send_setup(s2s_core.Setup(voice_id="YTpq7expH9539ERJ"))
"""

from __future__ import annotations

from ._version import __version__
from .audio import (
    AudioInput,
    Resampler,
    WavAudio,
    WavStreamDecoder,
    WavStreamWriter,
    alaw_decode,
    alaw_encode,
    bytes_per_80ms,
    decode_raw,
    encode_raw,
    float_to_int16,
    frame_bytes,
    pcm16_view,
    read_wav,
    resample,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
    wav_header,
    write_wav,
)
from .client_base import ClientBase, SetupLike
from .connection import (
    DEFAULT_MAX_HANDSHAKE_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    USER_AGENT,
    ClientConnection,
    ConnectionState,
    ServerConnection,
    UpgradeRequest,
)
from .errors import (
    CloseTimeout,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeout,
    HandshakeRejected,
    IdleTimeout,
    InternalServerError,
    InvalidAudio,
    InvalidHeader,
    InvalidSetup,
    InvalidURL,
    KeepaliveTimeout,
    LocalProtocolError,
    MessageTooBig,
    MissingCredentials,
    PolicyViolation,
    ProtocolViolation,
    ReadyTimeout,
    RemoteProtocolError,
    S2SError,
    S2STimeoutError,
    ServerError,
)
from .events import (
    Audio,
    AudioReceived,
    ClientEvent,
    Closed,
    EndOfStream,
    EndOfStreamReceived,
    ErrorMessage,
    Event,
    Ready,
    RequestStarted,
    ServerEvent,
    ServerSideEvent,
    SetupReceived,
    StreamEvent,
    Text,
    UnknownMessage,
)
from .feeder import FeedStep, InputFeeder, Step, may_block, replayable
from .formats import FORMAT_NAMES, FRAME_SECONDS, AudioFormat, Codec, Direction, lookup_format
from .metrics import Metrics
from .options import ClientOptions, OptionKwargs
from .protocol import ClientProtocol, ProtocolState, RequestInfo, ServerProtocol
from .proxy import InvalidProxy, ProxyConfig, ProxyError, proxy_for
from .request_table import WAIT, RequestHandle, RequestTable
from .rest import (
    AuthenticationError,
    Credits,
    InvalidResponse,
    NotFound,
    RestApi,
    RestError,
    RestSettings,
    Token,
    Voice,
)
from .results import S2SResult, TextWithTimestamps
from .retry import (
    Attempt,
    ErrorClass,
    GiveUp,
    InvalidRetryPolicy,
    Retrier,
    Retry,
    RetryPolicy,
    classify,
)
from .setup import DEFAULT_MODEL, JSON_CONFIG_KEYS, TARGET_LANGUAGES, Setup
from .splitter import InputTooLong, InvalidSplit, PauseSplitter, Segment, SegmentPlan
from .stitcher import Stitcher
from .urls import DEFAULT_BASE_URL, REGIONS, S2S_ROUTE, s2s_url
from .voices import FLAGSHIP_VOICES

__all__ = [
    "__version__",
    # setup
    "DEFAULT_MODEL",
    "TARGET_LANGUAGES",
    "Setup",
    # message level
    "ClientProtocol",
    "ProtocolState",
    "RequestInfo",
    "ServerProtocol",
    # byte level
    "DEFAULT_MAX_HANDSHAKE_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "USER_AGENT",
    "ClientConnection",
    "ConnectionState",
    "ServerConnection",
    "UpgradeRequest",
    # events
    "Audio",
    "AudioReceived",
    "ClientEvent",
    "Closed",
    "EndOfStream",
    "EndOfStreamReceived",
    "ErrorMessage",
    "Event",
    "Ready",
    "RequestStarted",
    "ServerEvent",
    "ServerSideEvent",
    "SetupReceived",
    "StreamEvent",
    "Text",
    "UnknownMessage",
    # errors
    "CloseTimeout",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosedError",
    "HandshakeRejected",
    "IdleTimeout",
    "InternalServerError",
    "InputTooLong",
    "InvalidAudio",
    "InvalidSetup",
    "InvalidSplit",
    "KeepaliveTimeout",
    "LocalProtocolError",
    "MessageTooBig",
    "PolicyViolation",
    "ProtocolViolation",
    "ReadyTimeout",
    "RemoteProtocolError",
    "S2SError",
    "S2STimeoutError",
    "ServerError",
    # results
    "Metrics",
    "S2SResult",
    "TextWithTimestamps",
    # long input: split into requests, stitched into one stream
    "PauseSplitter",
    "Segment",
    "SegmentPlan",
    "Stitcher",
    # audio
    "AudioInput",
    "Resampler",
    "WavAudio",
    "WavStreamDecoder",
    "WavStreamWriter",
    "alaw_decode",
    "alaw_encode",
    "bytes_per_80ms",
    "decode_raw",
    "encode_raw",
    "float_to_int16",
    "frame_bytes",
    "pcm16_view",
    "read_wav",
    "resample",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
    "wav_header",
    "write_wav",
    # formats
    "FORMAT_NAMES",
    "FRAME_SECONDS",
    "AudioFormat",
    "Codec",
    "Direction",
    "lookup_format",
    # URLs
    "DEFAULT_BASE_URL",
    "REGIONS",
    "S2S_ROUTE",
    "s2s_url",
    "FLAGSHIP_VOICES",
    "JSON_CONFIG_KEYS",
    # client options and the pieces every adapter shares
    "ClientOptions",
    "OptionKwargs",
    "ClientBase",
    "SetupLike",
    "MissingCredentials",
    "InvalidURL",
    "InvalidHeader",
    # the requests layer (sans-IO)
    "RequestTable",
    "RequestHandle",
    "WAIT",
    "InputFeeder",
    "FeedStep",
    "Step",
    "replayable",
    "may_block",
    # retries
    "RetryPolicy",
    "Retrier",
    "Retry",
    "GiveUp",
    "Attempt",
    "ErrorClass",
    "InvalidRetryPolicy",
    "classify",
    # proxies
    "ProxyConfig",
    "ProxyError",
    "InvalidProxy",
    "proxy_for",
    # REST
    "RestApi",
    "RestSettings",
    "RestError",
    "AuthenticationError",
    "NotFound",
    "InvalidResponse",
    "Voice",
    "Credits",
    "Token",
]
