"""`python -m tests.fake_dhis2 [--host H] [--port P] [--username U] [--password X] [--today D] [--chap-url URL]
[--max-records N] [--max-request-line BYTES] [--max-route-body BYTES]`

Prints the base URL on the first line of stdout once listening, then serves until interrupted.
DHIS2's limits are on by default; `0` turns one off. Their defaults can also come from the
environment: `FAKE_DHIS2_MAX_RECORDS`, `FAKE_DHIS2_MAX_REQUEST_LINE`, `FAKE_DHIS2_MAX_ROUTE_BODY`.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from datetime import date

from tests.fake_dhis2.server import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeDhis2Server
from tests.fake_dhis2.state import DEFAULT_LIMITS


def _limit(env: str, default: int) -> int:
    text = os.environ.get(env, "").strip()
    try:
        return int(text) if text else default
    except ValueError:
        raise SystemExit(f"{env} must be a whole number (0 = no limit), got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_dhis2", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--today", type=date.fromisoformat, default=None,
                        help="date the fake treats as today (default: the real date)")
    parser.add_argument("--chap-url", default=None,
                        help="forward the chap route to this chap-core (default: the built-in fake chap)")
    parser.add_argument("--max-records", type=int,
                        default=_limit("FAKE_DHIS2_MAX_RECORDS", DEFAULT_LIMITS["max_records"]),
                        help="analytics record cap, answered with 409 E7128 past it (default 50000; 0 = none)")
    parser.add_argument("--max-request-line", type=int,
                        default=_limit("FAKE_DHIS2_MAX_REQUEST_LINE", DEFAULT_LIMITS["max_request_line"]),
                        help="request line bytes a proxy accepts, 414 past it (default 8192; 0 = none)")
    parser.add_argument("--max-route-body", type=int,
                        default=_limit("FAKE_DHIS2_MAX_ROUTE_BODY", DEFAULT_LIMITS["max_route_body"]),
                        help="bytes of chap's answer the route passes on, 502 past it (default 262144; 0 = none)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeDhis2Server(args.username, args.password, args.today, args.host, args.port, args.chap_url,
                         args.max_records or None, args.max_request_line or None,
                         args.max_route_body or None) as server:
        print(server.url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
