"""A loopback HTTP proxy in front of a real Prefect server that injects the faults a reverse proxy
causes: the request reaches the server (which commits it) but the client gets a 502 or 504, or
a 500, instead of the answer; or the connection is reset (`reset=True`) with no answer at all.
`held=True` resets the connection at once and forwards the request later, just before the next
request of the same method and path: a write the server commits after the client looked for it.
`stall()` keeps a request (never forwarded) until the proxy stops: a client killed at that request.

    with FaultProxy(server.api_url) as proxy:
        proxy.fail("POST", r"^/api/work_pools/$", status=502, after_forwarding=True, times=1)
        env = {"PREFECT_API_URL": proxy.api_url}
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    status: int
    after_forwarding: bool
    times: int
    body: bytes = b""  # only requests whose body contains this
    reset: bool = False  # no answer: the connection is reset
    held: bool = False  # reset at once, forwarded just before the next request of the same method and path
    hits: int = 0
    stall: bool = False  # never forwarded nor answered until the proxy stops (the client is killed meanwhile)
    arrived: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    def __init__(self, upstream_api_url: str):
        self.upstream = upstream_api_url.rsplit("/api", 1)[0]
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, int]] = []  # (method, path, status the client got; 0: reset)
        self._held: list[tuple[str, str, bytes, dict[str, str]]] = []  # (method, path, body, headers)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy._match(self.command, self.path, body)
                if rule is not None and rule.stall:
                    rule.arrived.set()
                    proxy._stopping.wait(120)
                    return self._answer(502, b'{"detail":"stalled"}', {})
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                if rule is not None and rule.held:
                    with proxy._lock:
                        proxy._held.append((self.command, self.path, body, headers))
                    return self._reset()
                if rule is not None and not rule.after_forwarding:
                    if rule.reset:
                        return self._reset()
                    return self._answer(rule.status, b'{"detail":"injected fault"}', {})
                for method, path, held_body, held_headers in proxy._release(self.command, self.path):
                    proxy._forward(method, path, held_body, held_headers)
                upstream = proxy._forward(self.command, self.path, body, headers)
                if rule is not None and upstream.status_code >= 400:
                    # The server did not do it (SQLite's 503 while its one writer is busy, seen in CI):
                    # a fault "after forwarding" means a write the server committed, so this answer goes
                    # through and the fault waits for the client's next try.
                    with proxy._lock:
                        rule.hits -= 1
                    rule = None
                if rule is not None:  # the server did it; the client hears a failure
                    return self._reset() if rule.reset else self._answer(rule.status, b'<html>Bad Gateway</html>', {})
                passthrough = {k: v for k, v in upstream.headers.items()
                               if k.lower() in ("content-type", "date")}
                return self._answer(upstream.status_code, upstream.content, passthrough)

            def _answer(self, status: int, content: bytes, headers: dict[str, str]):
                proxy.log.append((self.command, self.path, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _reset(self):
                proxy.log.append((self.command, self.path, 0))
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()  # linger 0: a TCP reset, no answer
                self.close_connection = True

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def fail(self, method: str, path: str, *, status: int = 502, after_forwarding: bool = True, times: int = 1,
             body: bytes = b"", reset: bool = False, held: bool = False) -> Rule:
        rule = Rule(method, re.compile(path), status, after_forwarding, times, body, reset, held)
        with self._lock:
            self.rules.append(rule)
        return rule

    def stall(self, method: str, path: str) -> Rule:
        """Stall the next matching request (never forwarded) until the proxy stops; `rule.arrived`
        is set when it comes: kill the client then, and the server never sees it."""
        rule = Rule(method, re.compile(path), 502, False, 1, stall=True)
        with self._lock:
            self.rules.append(rule)
        return rule

    def _match(self, method: str, path: str, body: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if (rule.method == method and rule.path.search(path.split("?")[0]) and rule.hits < rule.times
                        and rule.body in body):
                    rule.hits += 1
                    return rule
        return None

    def _release(self, method: str, path: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
        with self._lock:
            released = [h for h in self._held if h[:2] == (method, path)]
            self._held = [h for h in self._held if h[:2] != (method, path)]
        return released

    def _forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            return client.request(method, self.upstream + path, content=body, headers=headers)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
