"""`python -m tests.chap_real serve --home DIR --state-file FILE`: a real chap-core for `make run CHAP=real`.

Builds (or reuses) the cached chap-core 2.5.1 environment, starts Redis, the API and a solo
Celery worker in DIR (a fresh SQLite database each start), seeds the monthly and weekly setups
through chap-core's API (tests/chap_real/seed.py), then writes FILE — JSON with the API's `url`
and each seeded setup's `id` and `configured_model_id` — and serves until SIGTERM or SIGINT, when
it stops the three processes by PID and removes FILE. A start that fails prints the reason and the
logs' tails, stops what it started, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import httpx

from tests.chap_real.chap import ChapCore
from tests.chap_real.seed import seed_setups


def describe(chap: ChapCore) -> dict:
    """What a caller needs to aim the flow at the seeded setups (the configured model id is the
    flow's `configured_model_id`, chap-core's own number, known only once it is seeded)."""
    listed = {item["id"]: item for item in httpx.get(f"{chap.url}/v1/crud/prediction-setups", timeout=30).json()}
    return {"url": chap.url, "setups": {
        kind: {"id": setup.id, "name": setup.name, "period_type": setup.period_type,
               "configured_model_id": listed[setup.id]["configuredModel"]["id"]}
        for kind, setup in sorted(chap.setups.items())}}


def serve(home: Path, state_file: Path) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    home.mkdir(parents=True, exist_ok=True)
    (home / "chap.db").unlink(missing_ok=True)  # seeded afresh: the setup ids are always the same
    state_file.unlink(missing_ok=True)
    try:
        chap = ChapCore.start(home)
    except Exception as exc:  # noqa: BLE001 (the reason, with the logs' tails, is the output)
        print(f"error: chap-core did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        chap.setups = seed_setups(chap)
        state = describe(chap)
        state_file.write_text(json.dumps(state, indent=2) + "\n")
        print(f"chap-core 2.5.1 serving at {chap.url}; setups: "
              + ", ".join(f"{k} {v['id']} (model {v['configured_model_id']})" for k, v in state["setups"].items()),
              flush=True)
        stop.wait()
        return 0
    except Exception as exc:  # noqa: BLE001
        print(f"error: seeding chap-core failed: {exc}\n{chap.log_tails()}", file=sys.stderr, flush=True)
        return 1
    finally:
        state_file.unlink(missing_ok=True)
        chap.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chap_real", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="start, seed and serve a chap-core until SIGTERM")
    run.add_argument("--home", type=Path, required=True, help="folder for its database, logs and Redis")
    run.add_argument("--state-file", type=Path, required=True, help="where to write the URL and setups once ready")
    args = parser.parse_args(argv)
    sys.exit(serve(args.home.resolve(), args.state_file.resolve()))


if __name__ == "__main__":
    main()
