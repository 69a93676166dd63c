"""Per-request bookkeeping shared by the adapters (pure; no queues, no waiting).

An adapter's reader thread or task calls ``delivered``/``ended`` as events
arrive or the connection ends; the consumer calls ``consume`` on each event
it takes from its queue and ``failure`` once the queue is drained; senders
call ``check_send`` first. Every error that leaves here carries
``partial_result``.
"""

from __future__ import annotations

from .errors import ConnectionClosedError, LocalProtocolError, S2SError
from .events import Audio, Closed, EndOfStream, ErrorMessage, Ready, ServerEvent, Text
from .protocol import RequestInfo
from .results import ResultCollector, error_from_event

__all__ = ["RequestTracker"]


class RequestTracker:
    """What one request has received and how it ended."""

    __slots__ = ("collector", "finished", "keep_audio", "terminal")

    def __init__(self, output_format: str | None, *, keep_audio: bool) -> None:
        self.collector = ResultCollector(output_format)
        self.keep_audio = keep_audio
        self.terminal: S2SError | None = None
        """Why the request ended, known to the reader before the consumer sees it."""
        self.finished = False
        """The consumer has seen the end (end_of_stream, an error, or the close)."""

    # -- reader side --

    def delivered(self, event: ServerEvent) -> bool:
        """Record an event handed to the consumer's queue; True when it ends the request."""
        kind = type(event)
        if kind is Ready:
            self.collector.ready = event  # type: ignore[assignment]
            return False
        if isinstance(event, ErrorMessage):
            if self.terminal is None:
                # Known at once, so waiters and senders fail with it before it is consumed.
                self.terminal = error_from_event(event, self.collector.request_id)
            return True
        return kind is EndOfStream

    def ended(self, error: S2SError) -> None:
        """The connection ended before the request did."""
        if self.terminal is None:
            self.terminal = error

    # -- consumer side --

    def consume(self, event: ServerEvent) -> ServerEvent:
        """Account for an event taken from the queue.

        Raises:
            S2SError: The event is the server's error for this request.
        """
        kind = type(event)
        collector = self.collector
        if kind is Audio:
            if self.keep_audio:
                collector.add(event)
        elif kind is Text:
            collector.add(event)
        elif kind is EndOfStream:
            collector.add(event)
            self.finished = True
        elif isinstance(event, ErrorMessage):
            self.finished = True
            raise collector.fail(self.terminal or error_from_event(event, collector.request_id))
        return event

    def failure(self) -> S2SError:
        """The error to raise once the queue is drained without an end_of_stream."""
        self.finished = True
        if self.collector.error is not None:
            return self.collector.error
        error = self.terminal or ConnectionClosedError(1006, "", "the request ended unexpectedly")
        return self.collector.fail(error)

    def check_send(self, what: str, info: RequestInfo | None, closed: Closed | None) -> None:
        """Raise the reason a send cannot go out, if there is one.

        Args:
            what: The call, for the message.
            info: The core's view of the request (it knows a server error
                before the reader routed it).
            closed: The core's ``Closed`` event, once the connection ended.
        """
        error: S2SError | None = None
        if self.terminal is not None or self.collector.error is not None:
            error = self.terminal or self.collector.error
        elif info is not None and info.error is not None:
            error = error_from_event(info.error, self.collector.request_id)
        elif closed is not None and not self.collector.done:
            error = error_from_event(closed, self.collector.request_id)
        elif self.finished:
            raise LocalProtocolError(f"cannot {what}: the request has ended")
        if error is not None:
            if error.partial_result is None:
                error.partial_result = self.collector.snapshot()
            raise error
