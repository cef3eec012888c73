"""A loopback TCP proxy that can cut its connections in the middle of a server response.

Tests put it between a provider and a real server to see what happens when the network fails at
the worst moment, rather than mocking the failure inside the client library.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_CHUNK = 65536


class CuttingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker = b""
        self._cut_at_occurrence = 0
        self._seen = 0
        self._tail = b""
        self._open: list[socket.socket] = []
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_at(self, marker: bytes, occurrence: int) -> None:
        """Cut every connection once the server has sent ``marker`` for the ``occurrence``-th time
        from now, forwarding that occurrence but nothing after it. Works once, then forwards again."""
        with self._lock:
            self._marker, self._cut_at_occurrence, self._seen, self._tail = marker, occurrence, 0, b""

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            _close(connection)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, from_server: bool) -> None:
        try:
            while data := source.recv(_CHUNK):
                cut_after = self._cut_position(data) if from_server else None
                destination.sendall(data if cut_after is None else data[:cut_after])
                if cut_after is not None:
                    self._cut_all()
                    return
        except OSError:
            pass
        _close(source)
        _close(destination)

    def _cut_position(self, data: bytes) -> int | None:
        """Where in ``data`` the awaited occurrence of the marker ends, if it is in there."""
        with self._lock:
            if not self._cut_at_occurrence:
                return None
            # The tail of the previous chunk catches a marker split between two chunks.
            window = self._tail + data
            start = 0
            while (found := window.find(self._marker, start)) != -1:
                self._seen += 1
                start = found + len(self._marker)
                if self._seen == self._cut_at_occurrence:
                    self._cut_at_occurrence = 0
                    return max(0, start - len(self._tail))
            self._tail = window[-(len(self._marker) - 1) :] if len(self._marker) > 1 else b""
            return None

    def _cut_all(self) -> None:
        with self._lock:
            connections, self._open = self._open, []
            self.cuts += 1
        for connection in connections:
            _close(connection)


def _close(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


@contextmanager
def cutting_proxy(target_host: str, target_port: int) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
