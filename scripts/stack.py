"""The local stack, by PID files: a Prefect server, a process worker, the fake DHIS2+CHAP server, and
optionally a real chap-core behind the fake's `chap` route (CHAP=real).

    python scripts/stack.py start-server | start-worker | start-chap | start-fake | stop [NAME...] | status | clean

Everything lives under `.local/` in the repository (Prefect's SQLite database under
`.local/prefect`, never the user's home), so `make clean` removes it all. Starting something that is
already running and healthy reuses it; a stale PID file is replaced. Processes run in their own
process group and are stopped by PID (group), never by name.

Environment (see template.env): PREFECT_PORT (4200), PREFECT_API_URL (a remote server: nothing is
started), PREFECT_API_DATABASE_CONNECTION_URL (PostgreSQL), WORK_POOL (chap), FAKE_DHIS2_PORT (18080),
DEMO_DHIS2_USERNAME/DEMO_DHIS2_PASSWORD, CHAP (`fake`, the default: the fake's built-in chap-core;
`real`: chap-core 2.5.1 from the package registry, run by `start-chap` in its own environment, needs a
Python >= 3.13 on the machine; the fake's route forwards to it as DHIS2's route does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PIDS, LOGS = LOCAL / "pids", LOCAL / "logs"
BIN = Path(sys.executable).parent
NAMES = ("worker", "server", "fake-dhis2", "chap-core")  # stop order: consumers first
CHAP_STATE = LOCAL / "chap-core.json"  # written by `python -m tests.chap_real serve` once seeded
GRACE = {"chap-core": 45.0}  # it stops its worker, API and Redis itself on SIGTERM


def port() -> int:
    return int(os.environ.get("PREFECT_PORT", "4200"))


def local_api_url() -> str:
    return f"http://127.0.0.1:{port()}/api"


def api_url() -> str:
    return os.environ.get("PREFECT_API_URL") or local_api_url()


def is_remote() -> bool:
    return bool(os.environ.get("PREFECT_API_URL")) and os.environ["PREFECT_API_URL"].rstrip("/") != local_api_url()


def prefect_env() -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(LOCAL / "prefect"), "PREFECT_API_URL": api_url(),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": api_url()}
    return env


def chap_mode() -> str:
    mode = os.environ.get("CHAP", "") or "fake"
    if mode not in ("fake", "real"):
        raise SystemExit(f"error: CHAP={mode!r}: choose CHAP=fake (the fake's built-in chap-core, the default) "
                         "or CHAP=real (a real chap-core 2.5.1)")
    return mode


def chap_state() -> dict | None:
    """The running real chap-core's URL and seeded setups, or None."""
    if not pid_of("chap-core") or not CHAP_STATE.is_file():
        return None
    import json

    return json.loads(CHAP_STATE.read_text())


def fake_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('FAKE_DHIS2_PORT', '18080')}"


# --- process bookkeeping ---------------------------------------------------------------------


def pid_of(name: str) -> int | None:
    try:
        pid = int((PIDS / f"{name}.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def spawn(name: str, argv: list[str], env: dict[str, str]) -> int:
    PIDS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    (PIDS / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def stop(name: str) -> bool:
    pid = pid_of(name)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, GRACE.get(name, 15.0)), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            try:  # reap it if it is our child (it is not, across make invocations)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
    return True


def wait_healthy(url: str, name: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if name and pid_of(name) is None:
            break
        time.sleep(0.3)
    tail = (LOGS / f"{name}.log").read_text(errors="replace")[-3000:] if (LOGS / f"{name}.log").exists() else ""
    raise SystemExit(f"error: {name} did not become healthy at {url}; last log lines:\n{tail}")


def refuse_held_port(number: int, what: str, variable: str, alternative: str = "") -> None:
    """Before starting `what` on 127.0.0.1:`number`: refuse, saying who holds the port and which
    variable moves it, when anything already listens there (a Prefect server this stack did not
    start would otherwise get the demo applied to it; another program would hang the start)."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", number), timeout=1):
            pass
    except OSError:
        return  # free
    try:
        prefect = httpx.get(f"http://127.0.0.1:{number}/api/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        prefect = False
    holder = ("a Prefect server that `make run` did not start" if prefect
              else "another program (not a Prefect server)")
    hint = f"; {alternative}" if alternative and prefect else ""
    raise SystemExit(f"error: {holder} already listens on 127.0.0.1:{number}, where {what} would start: stop it, "
                     f"or set {variable} to a free port (in .env){hint}")


# --- commands --------------------------------------------------------------------------------


def start_server() -> None:
    if is_remote():
        print(f"using the Prefect server at {api_url()} (PREFECT_API_URL); nothing started")
        return
    health = local_api_url() + "/health"
    if pid_of("server"):
        wait_healthy(health, "server")
        print(f"Prefect server already running: {local_api_url()} (pid {pid_of('server')})")
        return
    refuse_held_port(port(), "the local Prefect server", "PREFECT_PORT",
                     f"or PREFECT_API_URL=http://127.0.0.1:{port()}/api to use that server instead")
    (LOCAL / "prefect").mkdir(parents=True, exist_ok=True)
    env = prefect_env()
    pid = spawn("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port())],
                env)
    wait_healthy(health, "server")
    backend = "PostgreSQL" if os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") else "SQLite in .local/prefect"
    print(f"Prefect server started: {local_api_url()} ({backend}, pid {pid}, log .local/logs/server.log)")


def start_worker() -> None:
    pool = os.environ.get("WORK_POOL", "chap")
    if pid_of("worker"):
        print(f"worker already running for pool {pool!r} (pid {pid_of('worker')})")
        return
    pid = spawn("worker", [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
                prefect_env())
    time.sleep(1.0)
    if pid_of("worker") is None:
        raise SystemExit("error: the worker exited at once; see .local/logs/worker.log")
    print(f"process worker started for pool {pool!r} (pid {pid}, log .local/logs/worker.log)")


def start_chap() -> None:
    """A real chap-core (CHAP=real): its environment built once (about a minute, cached in
    <test cache>/chap-env/), started and seeded in .local/chap-core/ (about 30 s)."""
    if chap_state():
        print(f"chap-core already running: {chap_state()['url']} (pid {pid_of('chap-core')})")
        return
    stop("chap-core")  # a stale one that never got ready
    print("starting a real chap-core 2.5.1 (the first time builds its environment: about a minute)...", flush=True)
    pid = spawn("chap-core", [sys.executable, "-m", "tests.chap_real", "serve", "--home", str(LOCAL / "chap-core"),
                              "--state-file", str(CHAP_STATE)], {**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + float(os.environ.get("CHAP_START_TIMEOUT", "900"))
    while not CHAP_STATE.is_file():
        if pid_of("chap-core") is None or time.monotonic() > deadline:
            stop("chap-core")
            tail = (LOGS / "chap-core.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"error: chap-core did not start; last lines of .local/logs/chap-core.log:\n{tail}")
        time.sleep(0.5)
    state = chap_state() or {}
    print(f"chap-core started: {state.get('url')} (pid {pid}, log .local/logs/chap-core.log, "
          f"its processes' logs in .local/chap-core/)")


def start_fake(keep: bool = False) -> None:
    """Start the fake DHIS2+CHAP (CHAP=real: its route forwards to start-chap's chap-core). A running
    fake that forwards elsewhere is restarted, unless `keep` (`make demo-plan`: it looks, it does
    not change the stack)."""
    if keep and pid_of("fake-dhis2"):
        mode_file = PIDS / "fake-dhis2.chap"
        forwards = mode_file.read_text() if mode_file.is_file() else ""
        print(f"fake DHIS2+CHAP already running: {fake_url()} (pid {pid_of('fake-dhis2')}, "
              f"{'its chap route forwards to ' + forwards if forwards else 'its own CHAP'}); left as it is")
        return
    chap_url = None
    if chap_mode() == "real":
        state = chap_state()
        if state is None:
            raise SystemExit("error: CHAP=real but no chap-core is running: `python scripts/stack.py start-chap` first")
        chap_url = state["url"]
    mode_file = PIDS / "fake-dhis2.chap"
    if pid_of("fake-dhis2"):
        running = mode_file.read_text() if mode_file.is_file() else ""
        if running == (chap_url or ""):
            print(f"fake DHIS2+CHAP already running: {fake_url()} (pid {pid_of('fake-dhis2')})")
            return
        stop("fake-dhis2")  # it forwards elsewhere (CHAP changed): start it again
    refuse_held_port(int(fake_url().rsplit(":", 1)[1]), "the fake DHIS2+CHAP", "FAKE_DHIS2_PORT")
    argv = [sys.executable, "-m", "tests.fake_dhis2", "--port", fake_url().rsplit(":", 1)[1],
            "--username", os.environ.get("DEMO_DHIS2_USERNAME", "chap-bot"),
            "--password", os.environ.get("DEMO_DHIS2_PASSWORD", "demo-password")]
    if chap_url:
        argv += ["--chap-url", chap_url]
    PIDS.mkdir(parents=True, exist_ok=True)
    mode_file.write_text(chap_url or "")
    pid = spawn("fake-dhis2", argv, {**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(fake_url() + "/api/system/info", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        raise SystemExit("error: the fake DHIS2 server did not start; see .local/logs/fake-dhis2.log")
    print(f"fake DHIS2+CHAP started: {fake_url()} (pid {pid})"
          + (f"; its chap route forwards to the real chap-core at {chap_url}" if chap_url else ""))


def check_target() -> None:
    """`make plan`/`make apply` act on the real projects/: refuse to aim them at the demo server."""
    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if url != local_api_url() or os.environ.get("ALLOW_LOCAL_SERVER") == "1" or not pid_of("server"):
        return
    raise SystemExit(
        f"error: PREFECT_API_URL is {url}, the local demo server that `make run` started; `make plan` and "
        "`make apply` act on the real projects/ (real DHIS2 hosts) and would point them at it. For the demo "
        "use `make demo-plan` or `DEMO_PROJECT=<name> make run`; for a real server set PREFECT_API_URL to it "
        "(in .env); to apply the real projects to the local server anyway, set ALLOW_LOCAL_SERVER=1."
    )


def status() -> None:
    for name in reversed(NAMES):
        pid = pid_of(name)
        print(f"{name:<11} {'running, pid ' + str(pid) if pid else 'stopped'}")
    print(f"API         {api_url()}")


def stop_many(names: list[str]) -> None:
    for name in names or list(NAMES):
        print(f"{name:<11} {'stopped' if stop(name) else 'was not running'}")


def clean() -> None:
    stop_many([])
    shutil.rmtree(LOCAL, ignore_errors=True)
    print("removed .local/ (server database, logs, PID files)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start-server", "start-worker", "start-chap", "start-fake", "stop", "status",
                                            "clean", "api-url", "check-target"])
    parser.add_argument("names", nargs="*", help=f"with stop: some of {', '.join(NAMES)} (default all)")
    parser.add_argument("--keep", action="store_true", help="with start-fake: leave a running fake as it is")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown process {unknown[0]!r}; choose from {', '.join(NAMES)}")
    if args.command == "api-url":
        print(api_url())
        return
    {"start-server": start_server, "start-worker": start_worker, "start-chap": start_chap,
     "start-fake": lambda: start_fake(keep=args.keep),
     "status": status,
     "clean": clean, "stop": lambda: stop_many(args.names), "check-target": check_target}[args.command]()


if __name__ == "__main__":
    main()
