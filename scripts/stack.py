"""The local stack, by PID files: a Prefect server, a process worker, and the fake DHIS2+CHAP server.

    python scripts/stack.py start-server | start-worker | start-fake | stop [NAME...] | status | clean

Everything lives under `.local/` in the repository (Prefect's SQLite database under
`.local/prefect`, never the user's home), so `make clean` removes it all. Starting something that is
already running and healthy reuses it; a stale PID file is replaced. Processes run in their own
process group and are stopped by PID (group), never by name.

Environment (see template.env): PREFECT_PORT (4200), PREFECT_API_URL (a remote server: nothing is
started), PREFECT_API_DATABASE_CONNECTION_URL (PostgreSQL), WORK_POOL (chap), FAKE_DHIS2_PORT (18080),
DEMO_DHIS2_USERNAME/DEMO_DHIS2_PASSWORD.
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
NAMES = ("worker", "server", "fake-dhis2")  # stop order: consumers first


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
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
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


def start_fake() -> None:
    if pid_of("fake-dhis2"):
        print(f"fake DHIS2+CHAP already running: {fake_url()} (pid {pid_of('fake-dhis2')})")
        return
    argv = [sys.executable, "-m", "tests.fake_dhis2", "--port", fake_url().rsplit(":", 1)[1],
            "--username", os.environ.get("DEMO_DHIS2_USERNAME", "chap-bot"),
            "--password", os.environ.get("DEMO_DHIS2_PASSWORD", "demo-password")]
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
    print(f"fake DHIS2+CHAP started: {fake_url()} (pid {pid})")


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
    parser.add_argument("command", choices=["start-server", "start-worker", "start-fake", "stop", "status",
                                            "clean", "api-url", "check-target"])
    parser.add_argument("names", nargs="*", help=f"with stop: some of {', '.join(NAMES)} (default all)")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown process {unknown[0]!r}; choose from {', '.join(NAMES)}")
    if args.command == "api-url":
        print(api_url())
        return
    {"start-server": start_server, "start-worker": start_worker, "start-fake": start_fake, "status": status,
     "clean": clean, "stop": lambda: stop_many(args.names), "check-target": check_target}[args.command]()


if __name__ == "__main__":
    main()
