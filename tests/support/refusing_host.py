"""A host that fails every connection: a TCP server on 127.0.0.1 that accepts each connection and closes it
at once, counting them (the fetcher sees a connection error on every attempt)."""
import socket
import threading


class RefusingHost:
    """`url(path)` names a path on it; `connections` counts the connections it accepted; `close()` stops it."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/{path}"

    def close(self) -> None:
        self.socket.close()
