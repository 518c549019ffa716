"""Fixtures for alerting tests: a local HTTP sink (speakers, webhooks) on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    """One request the sink got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpSink:
    """A real HTTP server on loopback that records requests and answers from a script of (status, body)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)
    default: tuple[int, bytes] = (200, b"")
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Block until `count` requests arrived."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise AssertionError(f"only {len(self.requests)} of {count} requests in {timeout_s} s")
            return list(self.requests)


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A recording HTTP server on 127.0.0.1 (a free port)."""
    sink: HttpSink

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with sink.cond:
                sink.requests.append(Received(self.path, dict(self.headers.items()), body))
                status, reply = sink.replies.pop(0) if sink.replies else sink.default
                sink.cond.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink = HttpSink(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()
