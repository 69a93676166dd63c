"""What the local server does on one connection, without I/O.

``ServerSession`` drives a ``ServerConnection``: authentication like the
service (a bad key is accepted at the HTTP level, then refused with error
1008 and close 1008), one engine per request, output scheduled on the
caller's clock, an idle timeout, and, for tests only, injected faults.
The transport adapter calls ``handle_events``/``handle_timer`` and then
moves ``conn.data_to_send()``; when ``abort_transport`` is set it drops the
TCP connection without a close frame.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from .._frames import Opcode
from ..connection import ConnectionState, ServerConnection, UpgradeRequest
from ..events import AudioReceived, Closed, EndOfStreamReceived, ServerSideEvent, SetupReceived
from ..formats import FRAME_SECONDS, Direction, lookup_format
from ..protocol import ProtocolState
from ..setup import Setup
from ._engine import AudioOut, EngineError, LoopbackEngine, TextOut
from ._faults import SETUP_REFUSALS, UPGRADE_REFUSALS, Fault, FaultPlan

__all__ = ["Engine", "EngineFactory", "ServerConfig", "ServerSession", "loopback_engine"]

_OPEN = ConnectionState.OPEN
_COALESCE_BYTES = 8192
"""Most input bytes one engine call takes from consecutive messages (two 80 ms chunks of
24 kHz pcm): libsoxr's buffers grow to the largest call (they took 800 KiB per session at
2000 sessions unbounded, 240 KiB at this bound, 155 KiB never joining)."""


class Engine(Protocol):
    """What the server needs from an engine (``LoopbackEngine`` is one)."""

    @property
    def output_sample_rate(self) -> int: ...

    @property
    def frame_size(self) -> int: ...

    def feed(self, data: bytes) -> list[AudioOut | TextOut]: ...

    def finish(self) -> list[AudioOut | TextOut]: ...


EngineFactory = Callable[[Setup, float], Engine]
"""Builds the engine of a request from its setup and the audio limit in seconds."""


def loopback_engine(setup: Setup, max_audio_s: float) -> Engine:
    """The default engine: deterministic loopback (resample, re-encode, VAD text)."""
    return LoopbackEngine(setup.input_format, setup.output_format, setup.target_language,
                          max_audio_s=max_audio_s)


@dataclass
class ServerConfig:
    """Settings of the local server (shared by its connections).

    Attributes:
        api_keys: Accepted keys; None accepts any client.
        tokens: Single-use tokens accepted as ``?token=``; each is consumed.
        max_audio_s: Audio per request before error 1008.
        idle_timeout_s: Close a socket with nothing received for this long.
        engine_factory: Builds each request's engine.
        input_block_s: Feed each request's engine blocks of this much input
            audio: messages are held until that much has arrived (a raw
            input format's byte rate tells; wav input is never held), or
            for this long at most, or until the request ends. Fewer, larger
            engine calls cost less CPU per second of audio (at a thousand
            sessions libsoxr's cost per call is mostly a fixed one), at the
            price of output up to this much later. 0 (the default) feeds
            every message as it comes. The output is the same either way.
        fault: A fault to inject on every connection (tests only).
        connections: Upgrade requests received so far (counted, tests read it).
        refusals: Refusals made so far by the fault plan.
    """

    api_keys: frozenset[str] | None = None
    tokens: set[str] = field(default_factory=set)
    max_audio_s: float = 300.0
    idle_timeout_s: float = 300.0
    engine_factory: EngineFactory = loopback_engine
    input_block_s: float = 0.0
    fault: FaultPlan | None = None
    connections: int = 0
    refusals: int = 0

    def take_refusal(self, kinds: frozenset[Fault] | dict[Fault, tuple[int, str]]) -> Fault | None:
        """The planned refusal, if it is one of ``kinds`` and not used up (counts it)."""
        plan = self.fault
        if plan is None or plan.fault not in kinds:
            return None
        if plan.times is not None and self.refusals >= plan.times:
            return None
        self.refusals += 1
        return plan.fault


class _Request:
    __slots__ = ("block_bytes", "client_req_id", "closes_socket", "engine", "held",
                 "held_bytes", "hold_until", "sent")

    def __init__(self, engine: Engine, setup: Setup, block_s: float) -> None:
        self.engine = engine
        self.client_req_id = setup.client_req_id
        self.closes_socket = not setup.reuses_socket
        self.sent = 0
        frame_bytes = lookup_format(setup.input_format, Direction.INPUT).bytes_per_frame
        # Input held for the engine (``ServerConfig.input_block_s``); 0: none is.
        self.block_bytes = 0 if frame_bytes is None else round(
            frame_bytes * block_s / FRAME_SECONDS)
        self.held: list[bytes] = []
        self.held_bytes = 0
        self.hold_until = math.inf

    def take_held(self) -> bytes:
        data = b"".join(self.held) if len(self.held) > 1 else self.held[0]
        self.held.clear()
        self.held_bytes = 0
        self.hold_until = math.inf
        return data


class ServerSession:
    """The local server's logic for one connection (pure; see module doc)."""

    def __init__(self, conn: ServerConnection, config: ServerConfig, now: float, *,
                 engine_factory: EngineFactory | None = None) -> None:
        self.conn = conn
        self.config = config
        self._engine_factory = engine_factory or config.engine_factory
        self.abort_transport = False
        self._requests: dict[str | None, _Request] = {}
        self._outbox: deque[tuple[float, bytes | Callable[[], None]]] = deque()
        self._idle_deadline = now + config.idle_timeout_s
        self._output_count = 0
        self._fault_fired = False
        self._stalled = False
        self._last_due = now
        self._hold_until = math.inf  # the earliest ``hold_until`` of the requests

    # -- inputs --

    def handle_events(self, events: list[ServerSideEvent | UpgradeRequest], now: float) -> None:
        """Act on the connection's events.

        Consecutive audio messages of one request (what one read brought: a
        server behind its clients gets several) go to its engine in one call,
        up to ``_COALESCE_BYTES``: the same output, which the engine's chunking
        does not change, for less work per message; an engine error in them
        fails the request before the output of the earlier ones goes out.
        """
        count = len(events)
        i = 0
        while i < count:
            event = events[i]
            i += 1
            if type(event) is AudioReceived:  # the common case first
                self._idle_deadline = now + self.config.idle_timeout_s
                rid = event.client_req_id
                data = event.audio
                if i < count:
                    parts = [data]
                    size = len(data)
                    while i < count:
                        after = events[i]
                        if (type(after) is not AudioReceived or after.client_req_id != rid
                                or size + len(after.audio) > _COALESCE_BYTES):
                            break
                        parts.append(after.audio)
                        size += len(after.audio)
                        i += 1
                    if len(parts) > 1:
                        data = b"".join(parts)
                self._on_audio(rid, data, now)
                continue
            if isinstance(event, UpgradeRequest):
                self._on_upgrade(event, now)
                continue
            self._idle_deadline = now + self.config.idle_timeout_s
            if isinstance(event, AudioReceived):
                self._on_audio(event.client_req_id, event.audio, now)
            elif isinstance(event, SetupReceived):
                self._on_setup(event.setup, now)
            elif isinstance(event, EndOfStreamReceived):
                self._on_end(event, now)
            elif isinstance(event, Closed):
                self._outbox.clear()
        self._flush(now)

    def handle_timer(self, now: float) -> None:
        """Run due output, held input whose time is up, and the idle timeout."""
        if now >= self._idle_deadline and self.conn.state.value == "open":
            self.conn.close(1000, "idle timeout", now=now)
        if now >= self._hold_until:
            self._feed_held(now)
        self._flush(now)
        self.conn.handle_timer(now)

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must run next."""
        deadline = min(self._idle_deadline, self._hold_until)
        if self._outbox and not self._stalled:
            deadline = min(deadline, self._outbox[0][0])
        conn_deadline = self.conn.next_deadline()
        return deadline if conn_deadline is None else min(deadline, conn_deadline)

    # -- handlers --

    def _on_upgrade(self, request: UpgradeRequest, now: float) -> None:
        self.config.connections += 1
        if self._refuse_upgrade(now):
            return
        self.conn.accept(now=now)
        if not self._authorized(request):
            self.conn.send_message(self.conn.protocol.send_error(
                "Invalid or missing API key.", 1008))
            self.conn.close(1008, "invalid api key", now=now)

    def _authorized(self, request: UpgradeRequest) -> bool:
        config = self.config
        if config.api_keys is None:
            return True
        key = request.header("x-api-key")
        if key is not None and key in config.api_keys:
            return True
        tokens = parse_qs(urlsplit(request.target).query).get("token", [])
        if tokens and tokens[0] in config.tokens:
            config.tokens.discard(tokens[0])  # single use
            return True
        return False

    def _refuse_upgrade(self, now: float) -> bool:
        """Apply a planned upgrade refusal; True when it replaced the normal answer."""
        fault = self.config.take_refusal(UPGRADE_REFUSALS)
        if fault is None:
            return False
        plan = self.config.fault
        assert plan is not None
        if fault is Fault.CLOSE_1008:
            self.conn.accept(now=now)
            self.conn.close(1008, "No authentication provided.", now=now)
            return True
        headers = [] if plan.retry_after is None else [(b"retry-after",
                                                        plan.retry_after.encode())]
        status, body = (429, b"Too Many Requests") if fault is Fault.HTTP_429 else (
            503, b"Service Unavailable")
        self.conn.reject(status, body, headers)
        return True

    def _on_setup(self, setup: Setup, now: float) -> None:
        rid = setup.client_req_id
        refusal = self.config.take_refusal(SETUP_REFUSALS)
        if refusal is not None:
            code, message = SETUP_REFUSALS[refusal]
            self._fail_request(rid, code, message.format(model=setup.model_name),
                               closes=True, now=now)
            return
        try:
            engine = self._engine_factory(setup, self.config.max_audio_s)
        except EngineError as exc:
            self._fail_request(rid, exc.code, exc.message, closes=not setup.reuses_socket,
                               now=now)
            return
        self._requests[rid] = _Request(engine, setup, self.config.input_block_s)
        self._queue(self.conn.protocol.send_ready(
            str(uuid.uuid4()), engine.output_sample_rate, frame_size=engine.frame_size,
            model_name=setup.model_name, client_req_id=rid), now)

    def _on_audio(self, rid: str | None, data: bytes, now: float) -> None:
        request = self._requests.get(rid)
        if request is None:
            return  # the request already failed; late audio is dropped
        if request.block_bytes:
            request.held.append(data)
            request.held_bytes += len(data)
            if request.held_bytes < request.block_bytes:
                if request.hold_until == math.inf:
                    request.hold_until = now + self.config.input_block_s
                    self._hold_until = min(self._hold_until, request.hold_until)
                return
            data = request.take_held()
            if self._hold_until != math.inf:
                self._hold_until = min(r.hold_until for r in self._requests.values())
        self._feed(request, data, now)

    def _feed(self, request: _Request, data: bytes, now: float) -> bool:
        """Feed the engine and send what it gives; False when it failed the request."""
        try:
            outputs = request.engine.feed(data)
        except EngineError as exc:
            self._requests.pop(request.client_req_id, None)
            self._fail_request(request.client_req_id, exc.code, exc.message,
                               closes=request.closes_socket, now=now)
            return False
        self._emit(request, outputs, now)
        return True

    def _feed_held(self, now: float) -> None:
        """Feed the held input whose time is up."""
        for request in list(self._requests.values()):
            if request.hold_until <= now:
                self._feed(request, request.take_held(), now)
        self._hold_until = min((r.hold_until for r in self._requests.values()),
                               default=math.inf)

    def _on_end(self, event: EndOfStreamReceived, now: float) -> None:
        if event.final:
            self._queue(lambda: self.conn.close(1000), now)
            return
        request = self._requests.get(event.client_req_id)
        if request is None:
            return
        if request.held and not self._feed(request, request.take_held(), now):
            return
        del self._requests[event.client_req_id]
        try:
            outputs = request.engine.finish()
        except EngineError as exc:
            self._fail_request(event.client_req_id, exc.code, exc.message,
                               closes=request.closes_socket, now=now)
            return
        self._emit(request, outputs, now)
        rid = request.client_req_id
        self._queue(lambda: self.conn.send_message(
            self.conn.protocol.send_end_of_stream(rid)), now)
        if request.closes_socket:
            self._queue(lambda: self.conn.close(1000), now)

    def _fail_request(self, rid: str | None, code: int, message: str, *, closes: bool,
                      now: float) -> None:
        def send() -> None:
            self.conn.send_message(self.conn.protocol.send_error(message, code, rid))
            if closes or self.conn.protocol.state is ProtocolState.FINISHED:
                self.conn.close(code, message[:100])
        self._queue(send, now)

    def _emit(self, request: _Request, outputs: list[AudioOut | TextOut], now: float) -> None:
        if not outputs:
            return
        conn = self.conn
        protocol = conn.protocol
        rid = request.client_req_id
        # What ``_queue`` then ``_flush`` would do at once: nothing waits, no fault.
        direct = (not self._outbox and self.config.fault is None and not self._stalled
                  and not self.abort_transport and conn.state is _OPEN)
        for out in outputs:
            if isinstance(out, AudioOut):
                message = protocol.send_audio(out.data, out.start_s, out.stop_s,
                                              client_req_id=rid, stream_id=0)
            else:
                message = protocol.send_text(out.text, out.start_s, out.stop_s,
                                             client_req_id=rid, stream_id=0)
            if direct:
                conn.send_message(message)
            else:
                self._queue(message, now)

    # -- output scheduling and faults --

    def _queue(self, item: bytes | Callable[[], None], now: float) -> None:
        due = now
        plan = self.config.fault
        if plan is not None and plan.fault is Fault.SLOW_OUTPUT:
            due = max(self._last_due, now) + plan.slow_delay_s
        self._last_due = due
        self._outbox.append((due, item))

    def _flush(self, now: float) -> None:
        conn = self.conn
        while self._outbox and not self._stalled and not self.abort_transport:
            due, item = self._outbox[0]
            if due > now:
                return
            self._outbox.popleft()
            if conn.state.value not in ("open",):
                continue
            if callable(item):
                item()
                continue
            if self._inject(item, now):
                continue
            conn.send_message(item)

    def _inject(self, message: bytes, now: float) -> bool:
        """Apply the fault plan to one outgoing message; True when it replaced it."""
        plan = self.config.fault
        if plan is None:
            return False
        conn = self.conn
        fault = plan.fault
        if fault in SETUP_REFUSALS or fault in UPGRADE_REFUSALS:
            return False  # applied at setup or upgrade, not to output
        if fault is Fault.FRAGMENTED:
            third = max(len(message) // 3, 1)
            conn.send_frame(Opcode.TEXT, message[:third], fin=False)
            conn.send_frame(Opcode.CONTINUATION, message[third:2 * third], fin=False)
            conn.send_frame(Opcode.CONTINUATION, message[2 * third:], fin=True)
            return True
        if fault is Fault.PINGS:
            conn.send_frame(Opcode.PING, b"lb")
            return False
        if fault is Fault.UNKNOWN_TYPES:
            conn.send_frame(Opcode.TEXT, b'{"type":"step","step_idx":1,"vad":[]}')
            return False
        self._output_count += 1
        if self._fault_fired or self._output_count <= plan.after_messages:
            return False
        self._fault_fired = True
        if fault is Fault.DROP_TCP:
            self.abort_transport = True
        elif fault is Fault.CLOSE_1011:
            conn.close(1011, "internal error", now=now)
        elif fault is Fault.ERROR_1011:
            conn.send_message(conn.protocol.send_error("worker crashed", 1011))
            conn.close(1011, "worker crashed", now=now)
        elif fault is Fault.ERROR_KEEP_OPEN:
            conn.send_message(conn.protocol.send_error("worker crashed", 1011))
            self._stalled = True
        elif fault is Fault.STALL:
            self._stalled = True
        elif fault is Fault.OVERSIZED:
            conn.send_frame(Opcode.TEXT, b'{"type":"audio","audio":"'
                            + b"A" * plan.oversized_bytes + b'"}')
            return False
        elif fault is Fault.INVALID_UTF8:
            conn.send_frame(Opcode.TEXT, b'{"type":"text","text":"\xff\xfe"}')
        elif fault is Fault.MALFORMED_JSON:
            conn.send_frame(Opcode.TEXT, b'{"type": "audio", "audio": ')
        else:  # SLOW_OUTPUT is handled by scheduling
            return False
        return True
