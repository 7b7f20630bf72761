"""A notification target on loopback for alert tests: records every request it receives.

    with WebhookReceiver() as hook:          # hook.url: http://127.0.0.1:<port>/hook/<token>
        ...
        hook.wait_for(lambda r: "laos-malaria" in r["text"], timeout=60)

The token in the path plays the secret part of a real webhook URL (Slack's, say): a request to
another path is answered 404 and recorded as such, so a test can tell the secret reached Prefect.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class WebhookReceiver:
    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                ok = self.path == f"/hook/{receiver.token}"
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "ok": ok, "text": raw, "json": body,
                                              "at": time.time()})
                self.send_response(200 if ok else 404)
                self.end_headers()

            do_PUT = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook/{self.token}"

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["ok"]]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in self.received():
                if predicate(request):
                    return request
            time.sleep(0.2)
        raise AssertionError(f"no matching notification within {timeout:.0f}s; received: {self.requests}")

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
