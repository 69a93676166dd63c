"""The S2S request lifecycle as data: one transition table for both sides.

Every message, ours or the peer's, is checked against the same table. A
request has two states, one per sender (as in h11): what the client may still
send, and what the server may still send. ``SIDE_EFFECTS`` holds the moves one
sender's message forces on the other side. The README's diagram is drawn from
these tables (``render_diagram``).
"""

from __future__ import annotations

import enum

__all__ = [
    "Sender",
    "Kind",
    "RequestState",
    "TRANSITIONS",
    "SIDE_EFFECTS",
    "next_state",
    "render_diagram",
]


class Sender(enum.Enum):
    """Who sent a message."""

    # Identity hashing: table lookups run per message, and Enum hashes by name in Python.
    __hash__ = object.__hash__

    CLIENT = "client"
    SERVER = "server"


class Kind(enum.Enum):
    """Message types that move the lifecycle (unknown types never do)."""

    # Identity hashing: table lookups run per message, and Enum hashes by name in Python.
    __hash__ = object.__hash__

    SETUP = "setup"
    AUDIO = "audio"
    END_OF_STREAM = "end_of_stream"
    READY = "ready"
    TEXT = "text"
    ERROR = "error"


class RequestState(enum.Enum):
    """State of one sender within one request."""

    # Identity hashing: table lookups run per message, and Enum hashes by name in Python.
    __hash__ = object.__hash__

    IDLE = "idle"
    AWAITING_READY = "awaiting_ready"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


S = RequestState
TRANSITIONS: dict[Sender, dict[RequestState, dict[Kind, RequestState]]] = {
    Sender.CLIENT: {
        S.IDLE: {Kind.SETUP: S.STREAMING},
        S.AWAITING_READY: {},
        S.STREAMING: {Kind.AUDIO: S.STREAMING, Kind.END_OF_STREAM: S.DONE},
        S.DONE: {},
        S.FAILED: {},
    },
    Sender.SERVER: {
        S.IDLE: {},
        S.AWAITING_READY: {Kind.READY: S.STREAMING, Kind.ERROR: S.FAILED},
        S.STREAMING: {
            Kind.TEXT: S.STREAMING,
            Kind.AUDIO: S.STREAMING,
            Kind.END_OF_STREAM: S.DONE,
            Kind.ERROR: S.FAILED,
        },
        S.DONE: {},
        S.FAILED: {},
    },
}
"""(sender, that sender's state, message kind) -> that sender's next state."""

SIDE_EFFECTS: dict[tuple[Sender, Kind], tuple[Sender, RequestState]] = {
    # The client's setup opens the server's side of the request.
    (Sender.CLIENT, Kind.SETUP): (Sender.SERVER, S.AWAITING_READY),
    # An error ends the request for both; so does the server's end_of_stream.
    (Sender.SERVER, Kind.ERROR): (Sender.CLIENT, S.FAILED),
    (Sender.SERVER, Kind.END_OF_STREAM): (Sender.CLIENT, S.DONE),
}
"""(sender, message kind) -> (other sender, the state it is forced into)."""

ENDED = frozenset((S.DONE, S.FAILED))


def next_state(sender: Sender, state: RequestState, kind: Kind) -> RequestState | None:
    """The state after ``sender`` sends ``kind`` in ``state``, or None if not allowed."""
    return TRANSITIONS[sender][state].get(kind)


def render_diagram() -> str:
    """A text rendering of the tables, one transition a line (used in the README)."""
    lines = []
    for sender, table in TRANSITIONS.items():
        for state, moves in table.items():
            for kind, target in moves.items():
                line = f"{sender.value:6} {state.value:15} --{kind.value}--> {target.value}"
                effect = SIDE_EFFECTS.get((sender, kind))
                if effect is not None:
                    line += f"   ({effect[0].value} -> {effect[1].value})"
                lines.append(line)
    return "\n".join(lines)
