"""The one helper for every process the suite starts: Prefect servers, workers, nginx, git daemon,
chap-core's Redis/API/worker, the standalone fake, `python -m tests.chap_real serve`.

    proc = start("nginx", [nginx, "-c", conf], log_path=tmp / "nginx.log", ready=port_open(port))
    ...
    proc.stop()

* Each process runs in a session of its own (`start_new_session=True`): its process group is its
  own, so `stop()` reaches its children and nothing else. Nothing is ever stopped by name.
* `start` waits until `ready()` is true, polling; a process that exits meanwhile, or a timeout,
  raises with the tail of its log, after stopping it.
* `stop()`: `stop_signal` (SIGTERM by default) to the group — or to the leader only when
  `leader_first` (a daemon that shuts its children down itself: nginx, git daemon) — then SIGKILL
  to the group after `grace` seconds. With `reap_descendants` the processes below it that moved to
  sessions of their own (Prefect's process worker starts every flow run so) are recorded from
  /proc first and stopped by PID afterwards.
* A test of the `pure` lane cannot start one (tests/lanes.py): the lane would be lying.

`wait_until` is the suite's polling loop: tests wait for a condition, never for a fixed time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from tests import lanes

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.1,
               on_timeout: Callable[[], str] | None = None) -> T:
    """Poll `condition` until it returns something truthy (returned); fail naming `what` after
    `timeout` seconds, with `on_timeout()` (a log tail, the last answer) appended."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"waited {timeout:.0f}s for {what}" + (f"\n{detail}" if detail else ""))
        time.sleep(every)


def port_open(port: int, host: str = "127.0.0.1") -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def http_ok(url: str, **kwargs: Any) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2, **kwargs).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, whatever its session or process group (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name (2nd field) is in parentheses and may hold spaces: split after it
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_pids(pids: Sequence[int], grace: float = 15.0) -> None:
    """SIGTERM each still-running pid, then SIGKILL the ones that outlive `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        running = [pid for pid in pids if alive(pid)]
        for pid in running:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while running and time.monotonic() < deadline:
            running = [pid for pid in running if alive(pid)]
            time.sleep(0.05)
        if not running:
            return


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM
    leader_first: bool = False
    reap_descendants: bool = False
    grace: float = 15.0
    stopped: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def stdout(self) -> IO[Any] | None:
        return self.popen.stdout

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None:
            return "(no log)"
        text = self.log_text()
        return "\n".join(text.splitlines()[-lines:]) if text else f"(nothing in {self.log_path})"

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def wait_ready(self, ready: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
        def check() -> bool:
            self.check_alive()
            return ready()

        try:
            wait_until(check, f"{self.name} to be ready", timeout, every)
        except AssertionError:
            raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}") from None

    def stop(self, grace: float | None = None) -> None:
        """Idempotent. See the module's docstring for the order of signals."""
        if self.stopped:
            return
        self.stopped = True
        grace = self.grace if grace is None else grace
        below = descendants(self.pid) if self.reap_descendants and self.running else []
        if self.running:
            if self.leader_first:
                try:
                    os.kill(self.pid, self.stop_signal)
                except ProcessLookupError:
                    pass
            else:
                _signal_group(self.pid, self.stop_signal)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)  # whatever of the group lingers (the leader gone or not)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if below:
            stop_pids(below, grace)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(name: str, command: Sequence[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None,
          log_path: Path | None = None, stdout: int | None = None, text: bool = False,
          stop_signal: int = signal.SIGTERM, leader_first: bool = False, reap_descendants: bool = False,
          grace: float = 15.0) -> Process:
    """Start `command` in a session of its own; its output goes to `log_path` (appended), or to
    a pipe when `stdout=subprocess.PIPE`, else nowhere."""
    lanes.require_process_lane(name)
    kwargs: dict[str, Any] = dict(env=env, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True, text=text)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            popen = subprocess.Popen([str(c) for c in command], stdout=log, stderr=subprocess.STDOUT, **kwargs)
    else:
        popen = subprocess.Popen([str(c) for c in command], stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL if stdout is None else subprocess.PIPE, **kwargs)
    return Process(name, popen, log_path, stop_signal, leader_first, reap_descendants, grace)


def start(name: str, command: Sequence[str | Path], *, ready: Callable[[], bool], timeout: float = 120.0,
          every: float = 0.1, **spawn_kwargs: Any) -> Process:
    """`spawn`, then wait until `ready()`; on any failure the process is stopped and the error
    carries its log's tail."""
    process = spawn(name, command, **spawn_kwargs)
    try:
        process.wait_ready(ready, timeout, every)
    except BaseException:
        process.stop(grace=5)
        raise
    return process
