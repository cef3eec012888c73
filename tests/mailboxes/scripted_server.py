"""A loopback TCP server that plays a script: a greeting (or silence), then one answer per command line.

It stands in for whatever a user may point touchline at: a service that is not IMAP and announces
itself, an IMAP server whose refusals carry text, or a port that accepts and never says a word.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

# In every byte the scripted servers send, so that tests can look for it in what touchline shows.
SECRET = b"S3CR3T-8c1f"

Answer = Callable[[bytes, bytes], bytes]


def imap_answers(*, login: bytes = b"OK logged in", listing: bytes = b"OK done") -> Answer:
    """Answers to imaplib's commands: CAPABILITY, then LOGIN and LIST as given (after the tag)."""

    def answer(tag: bytes, command: bytes) -> bytes:
        if command == b"CAPABILITY":
            return b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n"
        if command == b"LOGIN":
            return tag + b" " + login + b"\r\n"
        if command == b"LIST":
            return tag + b" " + listing + b"\r\n"
        if command == b"LOGOUT":
            return b"* BYE " + SECRET + b"\r\n" + tag + b" OK bye\r\n"
        return tag + b" BAD " + SECRET + b"\r\n"

    return answer


class ScriptedServer:
    def __init__(self, greeting: bytes | None, answer: Answer | None = None) -> None:
        self._greeting = greeting
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._changed = threading.Condition()
        self._connections: list[socket.socket] = []
        self.accepted = 0
        self.hung_up = 0  # silent connections the client closed or shut down
        threading.Thread(target=self._accept, daemon=True).start()

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.accepted >= count, timeout)

    def wait_for_hangups(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.hung_up >= count, timeout)

    def close(self) -> None:
        """Stop listening and drop every connection: a client waiting on one reads the end of it."""
        self._listener.close()
        with self._changed:
            connections, self._connections = self._connections, []
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._changed:
                self._connections.append(connection)
                self.accepted += 1
                self._changed.notify_all()
            if self._greeting is not None:
                threading.Thread(target=self._play, args=(connection, self._greeting), daemon=True).start()
            else:
                threading.Thread(target=self._listen_silently, args=(connection,), daemon=True).start()

    def _listen_silently(self, connection: socket.socket) -> None:
        with suppress(OSError):
            while connection.recv(4096):
                pass
            with self._changed:
                self.hung_up += 1
                self._changed.notify_all()

    def _play(self, connection: socket.socket, greeting: bytes) -> None:
        with suppress(OSError):
            connection.sendall(greeting)
            if self._answer is None:
                connection.shutdown(socket.SHUT_RDWR)
                return
            for line in connection.makefile("rb"):
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                connection.sendall(self._answer(tag, rest.split(b" ", 1)[0].upper()))


@contextmanager
def scripted_server(greeting: bytes | None, answer: Answer | None = None) -> Iterator[ScriptedServer]:
    server = ScriptedServer(greeting, answer)
    try:
        yield server
    finally:
        server.close()
