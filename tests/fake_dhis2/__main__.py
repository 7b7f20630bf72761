"""`python -m tests.fake_dhis2 [--host H] [--port P] [--username U] [--password X] [--today D] [--chap-url URL]`

Prints the base URL on the first line of stdout once listening, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import date

from tests.fake_dhis2.server import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeDhis2Server


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
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeDhis2Server(args.username, args.password, args.today, args.host, args.port, args.chap_url) as server:
        print(server.url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
