"""A lock cheaper than the event-loop libraries' own: no yield when it is free."""

from __future__ import annotations

from .backend import Backend, Event

__all__ = ["Mutex"]


class Mutex:
    """An async lock that takes no schedule point when it is free.

    The libraries' locks yield to the loop on every acquisition (a whole loop
    round-trip per write on a busy stream); the writes this guards already
    yield whenever the transport makes them wait.
    """

    __slots__ = ("_backend", "_held", "_waiters")

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._held = False
        self._waiters: list[Event] = []

    def locked(self) -> bool:
        """Whether a task holds the lock."""
        return self._held

    async def __aenter__(self) -> None:
        while self._held:
            waiter = self._backend.event()
            self._waiters.append(waiter)
            await waiter.wait()
        self._held = True

    async def __aexit__(self, *exc_info: object) -> None:
        self._held = False
        # Every waiter re-checks (a cancelled one must not swallow the wake-up).
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()
