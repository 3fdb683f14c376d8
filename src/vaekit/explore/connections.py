"""The explorer's open connections: a cap on them (one handler thread each) and who gets evicted.

A thread per connection is simple, but a connection that sends nothing holds its thread: 2000 idle
sockets once held 2000 threads and starved the page. So the server admits at most ``cap``
connections; each is *idle* while it waits for (or trickles in) a request and *busy* while its
request is answered. When a new connection finds the table full, the connection idle the longest is
closed to make room: a client that sends nothing loses its place to one that asks, and a browser
whose kept-alive connection was closed simply opens another. Only when every connection is busy
does a newcomer wait, briefly, and then get 503.

Nothing here reads or writes a socket's data; it only shuts sockets down, which wakes the handler
thread blocked on it (its read returns end-of-file and the thread ends).
"""

from __future__ import annotations

import socket
import threading
import time


class Connections:
    """A table of admitted sockets, each idle (since a time) or busy, holding at most ``cap``."""

    def __init__(self, cap: int):
        self.cap = cap
        self._changed = threading.Condition()
        self._idle: dict[socket.socket, float] = {}  # socket -> when it became idle
        self._busy: set[socket.socket] = set()
        self._closing: set[socket.socket] = set()  # shut down; their threads are ending

    def __len__(self) -> int:
        with self._changed:
            return self._count()

    def _count(self) -> int:
        # Evicted sockets still count until their thread ends, so threads never exceed the cap.
        return len(self._idle) + len(self._busy) + len(self._closing)

    def admit(self, sock: socket.socket, wait: float) -> bool:
        """Take ``sock`` in as idle, evicting the longest-idle connection if the table is full.

        Waits up to ``wait`` seconds for a place; False when none freed (every connection busy).
        """
        deadline = time.monotonic() + wait
        with self._changed:
            while self._count() >= self.cap:
                if not self._closing:  # one eviction at a time: its thread frees the place within milliseconds
                    self._evict_oldest()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._idle[sock] = time.monotonic()
            return True

    def busy(self, sock: socket.socket) -> bool:
        """Mark ``sock`` as answering a request; False if it was evicted meanwhile (drop the request)."""
        with self._changed:
            if self._idle.pop(sock, None) is None:
                return False
            self._busy.add(sock)
            return True

    def idle(self, sock: socket.socket) -> None:
        """Mark ``sock`` as waiting for its next request (a kept-alive connection)."""
        with self._changed:
            if sock in self._busy:
                self._busy.discard(sock)
                self._idle[sock] = time.monotonic()

    def forget(self, sock: socket.socket) -> None:
        """The handler thread of ``sock`` has ended: its place is free."""
        with self._changed:
            self._idle.pop(sock, None)
            self._busy.discard(sock)
            self._closing.discard(sock)
            self._changed.notify_all()

    def evict_oldest(self) -> bool:
        """Close the connection idle the longest (to free a file descriptor); False if none is idle."""
        with self._changed:
            return self._evict_oldest()

    def close_all(self) -> None:
        """Shut every connection down (the server is stopping)."""
        with self._changed:
            for sock in [*self._idle, *self._busy]:
                self._shut(sock)

    def _evict_oldest(self) -> bool:
        if not self._idle:
            return False
        self._shut(min(self._idle, key=self._idle.__getitem__))
        return True

    def _shut(self, sock: socket.socket) -> None:
        self._idle.pop(sock, None)
        self._busy.discard(sock)
        self._closing.add(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed by the client: its thread is ending anyway
            pass
