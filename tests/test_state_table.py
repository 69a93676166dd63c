"""The lifecycle table of s2s_core._state, exercised pair by pair.

Every (sender, state, kind) of the table is either driven through a real
ClientProtocol/ServerProtocol pair (our send: allowed -> the table's next
state on both sides; refused -> LocalProtocolError, nothing changed; the
peer's message: allowed -> same; refused -> RemoteProtocolError, nothing
changed) or, when no message sequence can reach that state, checked through
``next_state`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from s2s_core._state import (
    ENDED,
    SIDE_EFFECTS,
    TRANSITIONS,
    Kind,
    RequestState,
    Sender,
    next_state,
    render_diagram,
)
from s2s_core._wire import (
    encode_audio,
    encode_end_of_stream,
    encode_error,
    encode_ready,
    encode_server_audio,
    encode_server_end_of_stream,
    encode_setup,
    encode_text,
)
from s2s_core.errors import LocalProtocolError, RemoteProtocolError
from s2s_core.protocol import ClientProtocol, ProtocolState, ServerProtocol
from s2s_core.setup import Setup

S = RequestState
CLIENT_KINDS = (Kind.SETUP, Kind.AUDIO, Kind.END_OF_STREAM)
SERVER_KINDS = (Kind.READY, Kind.TEXT, Kind.AUDIO, Kind.END_OF_STREAM, Kind.ERROR)
KINDS = {Sender.CLIENT: CLIENT_KINDS, Sender.SERVER: SERVER_KINDS}

# An independent statement of the spec (PROTOCOL.md section 5), compared with
# the table so that an accidental edit of either shows up.
EXPECTED_ALLOWED = {
    (Sender.CLIENT, S.IDLE, Kind.SETUP): S.STREAMING,
    (Sender.CLIENT, S.STREAMING, Kind.AUDIO): S.STREAMING,
    (Sender.CLIENT, S.STREAMING, Kind.END_OF_STREAM): S.DONE,
    (Sender.SERVER, S.AWAITING_READY, Kind.READY): S.STREAMING,
    (Sender.SERVER, S.AWAITING_READY, Kind.ERROR): S.FAILED,
    (Sender.SERVER, S.STREAMING, Kind.TEXT): S.STREAMING,
    (Sender.SERVER, S.STREAMING, Kind.AUDIO): S.STREAMING,
    (Sender.SERVER, S.STREAMING, Kind.END_OF_STREAM): S.DONE,
    (Sender.SERVER, S.STREAMING, Kind.ERROR): S.FAILED,
}

ALL_TRIPLES = [
    (sender, state, kind)
    for sender in Sender
    for state in RequestState
    for kind in KINDS[sender]
]


def test_table_has_every_state_for_both_senders() -> None:
    for sender in Sender:
        assert set(TRANSITIONS[sender]) == set(RequestState)


def test_table_only_uses_each_senders_kinds() -> None:
    for sender, table in TRANSITIONS.items():
        for moves in table.values():
            assert set(moves) <= set(KINDS[sender])


@pytest.mark.parametrize(("sender", "state", "kind"), ALL_TRIPLES,
                         ids=lambda v: getattr(v, "value", str(v)))
def test_next_state_matches_the_spec(sender: Sender, state: RequestState, kind: Kind) -> None:
    assert next_state(sender, state, kind) == EXPECTED_ALLOWED.get((sender, state, kind))


def test_ended_states_are_terminal() -> None:
    for sender in Sender:
        for state in ENDED:
            assert TRANSITIONS[sender][state] == {}


def test_side_effects() -> None:
    assert SIDE_EFFECTS == {
        (Sender.CLIENT, Kind.SETUP): (Sender.SERVER, S.AWAITING_READY),
        (Sender.SERVER, Kind.ERROR): (Sender.CLIENT, S.FAILED),
        (Sender.SERVER, Kind.END_OF_STREAM): (Sender.CLIENT, S.DONE),
    }


def test_render_diagram_lists_every_transition() -> None:
    lines = render_diagram().splitlines()
    assert len(lines) == len(EXPECTED_ALLOWED)
    assert any("--setup--> streaming" in line and "(server -> awaiting_ready)" in line
               for line in lines)


# --------------------------------------------------------------------------
# Driving real protocol objects into each state.

RID = "r"


@dataclass
class Pair:
    client: ClientProtocol
    server: ServerProtocol

    def c2s(self, send: Callable[[ClientProtocol], str]) -> None:
        self.server.receive_message(send(self.client))

    def s2c(self, send: Callable[[ServerProtocol], bytes]) -> None:
        self.client.receive_message(send(self.server))

    def states(self) -> tuple[RequestState, RequestState]:
        """(client side, server side) of the request; IDLE, IDLE when none exists."""
        ours = self.client.request(RID)
        theirs = self.server.request(RID)
        assert (ours is None) == (theirs is None)
        if ours is None or theirs is None:
            return S.IDLE, S.IDLE
        assert (ours.client, ours.server) == (theirs.client, theirs.server)
        return ours.client, ours.server

    def snapshot(self, side: ClientProtocol | ServerProtocol) -> object:
        request = side.request(RID)
        return side.state, None if request is None else (request.client, request.server)


def _setup(p: Pair) -> None:
    p.c2s(lambda c: c.send_setup(Setup(voice_id="v", client_req_id=RID)))


def _ready(p: Pair) -> None:
    p.s2c(lambda s: s.send_ready("req", 48000, frame_size=3840, client_req_id=RID))


def _client_eos(p: Pair) -> None:
    p.c2s(lambda c: c.send_end_of_stream(RID))


def _server_eos(p: Pair) -> None:
    p.s2c(lambda s: s.send_end_of_stream(RID))


def _error(p: Pair) -> None:
    p.s2c(lambda s: s.send_error("boom", 1011, RID))


SCENARIOS: dict[str, list[Callable[[Pair], None]]] = {
    "fresh": [],
    "setup": [_setup],
    "ready": [_setup, _ready],
    "client_eos_before_ready": [_setup, _client_eos],
    "client_eos": [_setup, _ready, _client_eos],
    "server_eos_client_streaming": [_setup, _ready, _server_eos],
    "server_eos": [_setup, _ready, _client_eos, _server_eos],
    "error_awaiting_ready": [_setup, _error],
    "error_streaming": [_setup, _ready, _error],
    "error_after_client_eos": [_setup, _ready, _client_eos, _error],
}

SCENARIO_STATES = {
    "fresh": (S.IDLE, S.IDLE),
    "setup": (S.STREAMING, S.AWAITING_READY),
    "ready": (S.STREAMING, S.STREAMING),
    "client_eos_before_ready": (S.DONE, S.AWAITING_READY),
    "client_eos": (S.DONE, S.STREAMING),
    "server_eos_client_streaming": (S.DONE, S.DONE),
    "server_eos": (S.DONE, S.DONE),
    "error_awaiting_ready": (S.FAILED, S.FAILED),
    "error_streaming": (S.FAILED, S.FAILED),
    "error_after_client_eos": (S.DONE, S.FAILED),
}


def build(scenario: str) -> Pair:
    pair = Pair(ClientProtocol(), ServerProtocol())
    for step in SCENARIOS[scenario]:
        step(pair)
    assert pair.states() == SCENARIO_STATES[scenario]
    return pair


# The client's message of each kind: (our send on ClientProtocol, raw wire form).
CLIENT_SEND: dict[Kind, Callable[[ClientProtocol], str]] = {
    Kind.SETUP: lambda c: c.send_setup(Setup(voice_id="v", client_req_id=RID)),
    Kind.AUDIO: lambda c: c.send_audio(b"\x01\x02", RID),
    Kind.END_OF_STREAM: lambda c: c.send_end_of_stream(RID),
}
CLIENT_WIRE: dict[Kind, bytes] = {
    Kind.SETUP: encode_setup(Setup(voice_id="v", client_req_id=RID)),
    Kind.AUDIO: encode_audio(b"\x01\x02", RID),
    Kind.END_OF_STREAM: encode_end_of_stream(RID),
}
SERVER_SEND: dict[Kind, Callable[[ServerProtocol], bytes]] = {
    Kind.READY: lambda s: s.send_ready("req", 48000, client_req_id=RID),
    Kind.TEXT: lambda s: s.send_text("hi", 0.0, 0.5, client_req_id=RID),
    Kind.AUDIO: lambda s: s.send_audio(b"\x01\x02", 0.0, 0.08, client_req_id=RID),
    Kind.END_OF_STREAM: lambda s: s.send_end_of_stream(RID),
    Kind.ERROR: lambda s: s.send_error("boom", 1011, RID),
}
SERVER_WIRE: dict[Kind, bytes] = {
    Kind.READY: encode_ready("req", 48000, client_req_id=RID),
    Kind.TEXT: encode_text("hi", 0.0, 0.5, client_req_id=RID),
    Kind.AUDIO: encode_server_audio(b"\x01\x02", 0.0, 0.08, client_req_id=RID),
    Kind.END_OF_STREAM: encode_server_end_of_stream(RID),
    Kind.ERROR: encode_error("boom", 1011, RID),
}

CASES = [
    (scenario, sender, kind)
    for scenario in SCENARIOS
    for sender in Sender
    for kind in KINDS[sender]
]


def _expected_after(before: tuple[RequestState, RequestState], sender: Sender,
                    kind: Kind) -> tuple[RequestState, RequestState]:
    client, server = before
    if sender is Sender.CLIENT:
        target = next_state(sender, client, kind)
        assert target is not None
        client = target
    else:
        target = next_state(sender, server, kind)
        assert target is not None
        server = target
    effect = SIDE_EFFECTS.get((sender, kind))
    if effect is not None:
        other, forced = effect
        if other is Sender.CLIENT and client not in ENDED:
            client = forced
        if other is Sender.SERVER and server not in ENDED:
            server = forced
    return client, server


@pytest.mark.parametrize(("scenario", "sender", "kind"), CASES,
                         ids=lambda v: getattr(v, "value", v))
def test_transition_through_protocols(scenario: str, sender: Sender, kind: Kind) -> None:
    pair = build(scenario)
    before = pair.states()
    state = before[0] if sender is Sender.CLIENT else before[1]
    allowed = next_state(sender, state, kind) is not None

    if sender is Sender.SERVER and kind is Kind.ERROR and state in (S.IDLE, *ENDED):
        # Documented exception: an error the table cannot scope to a live
        # request ends the socket (auth failures arrive before any setup).
        if state is S.IDLE:
            assert pair.client.receive_message(SERVER_WIRE[kind])[0].type == "error"
            assert pair.client.state is ProtocolState.FINISHED
        else:
            with pytest.raises(RemoteProtocolError):
                pair.client.receive_message(SERVER_WIRE[kind])
        # The server may always give up on the socket with an error.
        pair.server.send_error("boom", 1011, RID)
        assert pair.server.state is ProtocolState.FINISHED
        return

    if allowed:
        expected = _expected_after(before, sender, kind)
        if sender is Sender.CLIENT:
            pair.c2s(CLIENT_SEND[kind])
        else:
            pair.s2c(SERVER_SEND[kind])
        assert pair.states() == expected
        return

    # Refused: our own send raises LocalProtocolError, the peer's message
    # RemoteProtocolError; neither side changes.
    if sender is Sender.CLIENT:
        local, remote = pair.client, pair.server
        send: Callable[[], object] = lambda: CLIENT_SEND[kind](pair.client)  # noqa: E731
        wire = CLIENT_WIRE[kind]
    else:
        local, remote = pair.server, pair.client
        send = lambda: SERVER_SEND[kind](pair.server)  # noqa: E731
        wire = SERVER_WIRE[kind]
    local_before, remote_before = pair.snapshot(local), pair.snapshot(remote)

    with pytest.raises(LocalProtocolError):
        send()
    assert pair.snapshot(local) == local_before

    if sender is Sender.CLIENT and kind is not Kind.SETUP and pair.states()[1] in ENDED:
        # Documented exception: audio or end_of_stream that crossed the
        # server's end of the request on the wire is a race, ignored.
        assert pair.server.receive_message(wire) == []
    else:
        with pytest.raises(RemoteProtocolError) as info:
            remote.receive_message(wire)
        if sender is Sender.CLIENT:
            assert info.value.close_code == 1002
    assert pair.snapshot(remote) == remote_before


def _exercised() -> set[tuple[Sender, RequestState, Kind]]:
    seen = set()
    for scenario, sender, kind in CASES:
        client, server = SCENARIO_STATES[scenario]
        seen.add((sender, client if sender is Sender.CLIENT else server, kind))
    return seen


# States no message sequence can put a sender in: checked via next_state only.
UNREACHABLE = {(Sender.CLIENT, S.AWAITING_READY)}


def test_every_triple_is_exercised() -> None:
    seen = _exercised()
    missing = {t for t in ALL_TRIPLES if t not in seen and (t[0], t[1]) not in UNREACHABLE}
    assert missing == set()
    for sender, state in UNREACHABLE:
        for kind in KINDS[sender]:
            assert next_state(sender, state, kind) is None


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_both_sides_agree_on_socket_state(scenario: str) -> None:
    pair = build(scenario)
    assert pair.client.state is pair.server.state
    _, server = SCENARIO_STATES[scenario]
    if scenario == "fresh":
        assert pair.client.state is ProtocolState.IDLE
    elif server in ENDED:
        # A single-use socket (close_ws_on_eos not False) is finished.
        assert pair.client.state is ProtocolState.FINISHED
    else:
        assert pair.client.state is ProtocolState.ACTIVE

