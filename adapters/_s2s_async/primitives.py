"""Two primitives the session needs, cheaper than the event-loop libraries' own.

``Inbox``: a bounded FIFO from a connection's reader to one request's
consumer. The libraries' memory channels schedule a task per item; here an
item is a deque append, and a waiter is woken only when one actually waits
(the common case of a busy stream never parks either side). ``Mutex``: a
lock that does not yield to the loop when it is free.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from .backend import Backend, Event

__all__ = ["Inbox", "Mutex"]

T = TypeVar("T")


class Inbox(Generic[T]):
    """At most ``size`` items; one producer, one consumer, closed by the producer."""

    __slots__ = ("_backend", "_items", "_readable", "_size", "_writable", "closed")

    def __init__(self, backend: Backend, size: int) -> None:
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self._backend = backend
        self._items: deque[T] = deque()
        self._size = size
        self.closed = False
        """No more items will be put (what is queued can still be taken)."""
        self._readable: Event | None = None
        self._writable: Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    # -- producer --

    def put_nowait(self, item: T) -> bool:
        """Queue ``item`` if there is room; False (nothing queued) when full."""
        items = self._items
        if len(items) >= self._size:
            return False
        items.append(item)
        if self._readable is not None:
            self._readable.set()
            self._readable = None
        return True

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting for room (backpressure on the reader)."""
        while len(self._items) >= self._size:
            waiter = self._writable = self._backend.event()
            await waiter.wait()
        self.put_nowait(item)

    def close(self) -> None:
        """Nothing more will be put; a waiting consumer wakes up."""
        self.closed = True
        self._wake_reader()

    # -- consumer --

    def pop(self) -> T:
        """Take the oldest item (call only when ``len(inbox)`` > 0)."""
        item = self._items.popleft()
        if self._writable is not None:
            self._writable.set()
            self._writable = None
        return item

    async def wait_readable(self) -> None:
        """Return once an item is queued or the inbox is closed."""
        while not self._items and not self.closed:
            waiter = self._readable = self._backend.event()
            await waiter.wait()

    def _wake_reader(self) -> None:
        if self._readable is not None:
            self._readable.set()
            self._readable = None


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
