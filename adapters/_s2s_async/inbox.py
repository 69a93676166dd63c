"""A bounded FIFO from a connection's reader to one request's consumer.

The event-loop libraries' memory channels schedule a task per item; here an
item is a deque append, and a waiter is woken only when one actually waits
(the common case of a busy stream never parks either side).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from .backend import Backend, Event

__all__ = ["Inbox"]

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
