"""Run the fake on a loopback port in a background thread (tests) or in the foreground (demo)."""

from __future__ import annotations

import threading
import time
from datetime import date

import uvicorn

from tests.fake_dhis2.admin import FakeAdmin
from tests.fake_dhis2.app import create_app
from tests.fake_dhis2.state import DEFAULT_LIMITS, FakeState

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "district"


class FakeDhis2Server:
    """A real HTTP server for the fake; `port=0` picks a free port. Use as a context manager."""

    def __init__(self, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD,
                 today: date | None = None, host: str = "127.0.0.1", port: int = 0,
                 chap_url: str | None = None, max_records: int | None = DEFAULT_LIMITS["max_records"],
                 max_request_line: int | None = DEFAULT_LIMITS["max_request_line"],
                 max_route_body: int | None = DEFAULT_LIMITS["max_route_body"]) -> None:
        """`max_records`, `max_request_line`, `max_route_body`: DHIS2's limits (`tests.fake_dhis2.state`);
        None turns one off."""
        self.username, self.password = username, password
        self.state = FakeState(username, password, today, chap_url,
                               {"max_records": max_records, "max_request_line": max_request_line,
                                "max_route_body": max_route_body})
        # h11 refuses a request head over 16 KB by itself; the fake's own `max_request_line` decides.
        config = uvicorn.Config(create_app(self.state), host=host, port=port, log_level="warning",
                                lifespan="off", access_log=False, h11_max_incomplete_event_size=1 << 20)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-dhis2", daemon=True)
        self.url = ""

    def start(self, timeout: float = 10.0) -> FakeDhis2Server:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake DHIS2 server did not start")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    @property
    def admin(self) -> FakeAdmin:
        return FakeAdmin(self.url)

    def __enter__(self) -> FakeDhis2Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
