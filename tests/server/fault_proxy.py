"""A loopback HTTP proxy in front of a real Prefect server that injects the faults a reverse proxy
causes: the request reaches the server (which commits it) but the client gets a 502 or 504, or
a 500, instead of the answer.

    with FaultProxy(server.api_url) as proxy:
        proxy.fail("POST", r"^/api/work_pools/$", status=502, after_forwarding=True, times=1)
        env = {"PREFECT_API_URL": proxy.api_url}
"""

from __future__ import annotations

import re
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
    hits: int = 0
    hold: bool = False  # never forwarded: held until the proxy stops (the client is killed meanwhile)
    arrived: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    def __init__(self, upstream_api_url: str):
        self.upstream = upstream_api_url.rsplit("/api", 1)[0]
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, int]] = []  # (method, path, status the client got)
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
                if rule is not None and rule.hold:
                    rule.arrived.set()
                    proxy._stopping.wait(120)
                    return self._answer(502, b'{"detail":"held"}', {})
                if rule is not None and not rule.after_forwarding:
                    return self._answer(rule.status, b'{"detail":"injected fault"}', {})
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                with httpx.Client(timeout=60) as client:
                    upstream = client.request(self.command, proxy.upstream + self.path, content=body, headers=headers)
                if rule is not None:  # the server did it; the client hears a failure
                    return self._answer(rule.status, b'<html>Bad Gateway</html>', {})
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

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def fail(self, method: str, path: str, *, status: int = 502, after_forwarding: bool = True, times: int = 1,
             body: bytes = b"") -> Rule:
        rule = Rule(method, re.compile(path), status, after_forwarding, times, body)
        with self._lock:
            self.rules.append(rule)
        return rule

    def hold(self, method: str, path: str) -> Rule:
        """Hold the next matching request (never forwarded) until the proxy stops; `rule.arrived`
        is set when it comes: kill the client then, and the server never sees it."""
        rule = Rule(method, re.compile(path), 502, False, 1, hold=True)
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

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
