"""The apply lock: one apply per owner at a time, held on the Prefect server itself.

Laptops and CI runners share nothing but the server, so the lock lives there: a Prefect Variable
`chapctl-lock--<owner>` created with POST (the server refuses a second one with 409, atomically,
on SQLite and PostgreSQL alike). Its value says who holds it and for how long a silence counts
as death (`ttl_seconds`); the holder renews it from a background thread every third of that
(PATCH bumps the variable's server-side `updated`). A waiter watches `updated`: when it has not
moved for `ttl_seconds` of the waiter's own monotonic clock, the holder is dead, and the waiter
deletes the lock by id and tries again. No two clocks are ever compared (a server's Date header
lags when its event loop is busy, and a database clock may differ from the API's); deleting by id
means two waiters can never delete a fresh lock. A holder whose renewal finds the lock gone has
lost it and stops before its next write.

Release: on exit, exception, Ctrl-C or SIGTERM (the CLI turns SIGTERM into an exception). After a
SIGKILL or a power cut the lock expires after `ttl_seconds` (default 60); a release the server kept
refusing is said in the apply's notes, with what the next apply will do.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from compiler.constants import LOCK_VARIABLE, MANAGED_TAG, owner_tag
from compiler.errors import ApplyRefused, Conflict, NotFound, ServerError
from compiler.reconcile.client import PrefectAPI

DEFAULT_TTL = 60.0
POLL_SECONDS = 1.0
# A refused release (each already retried by the client where it may) is sent again, for at most a
# third of the ttl: past that, waiting for it would cost the next apply more than the note does.
RELEASE_ATTEMPTS = 4


def _refused(error: BaseException | None) -> bool:
    """A server's refusal worth sending a delete again for (a 404 is done, not refused)."""
    return isinstance(error, ServerError) and not isinstance(error, (NotFound, Conflict))


class LockLost(ApplyRefused):
    """Another apply broke our lock (we were silent longer than its ttl); stop writing."""


def holder_description() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "?"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


class ApplyLock:
    """`with ApplyLock(api, owner, ...) as lock:` … `lock.check()` before every write."""

    def __init__(self, api: PrefectAPI, owner: str, *, commit: str | None = None, timeout: float = 300.0,
                 ttl: float | None = None, on_wait: Callable[[str], None] | None = None,
                 renew_api: Callable[[], PrefectAPI] | None = None):
        self.api = api
        self.owner = owner
        self.name = LOCK_VARIABLE.format(owner=owner)
        self.timeout = timeout
        self.ttl = float(os.environ.get("CHAPCTL_LOCK_TTL", DEFAULT_TTL)) if ttl is None else ttl
        self.on_wait = on_wait
        self.renew_api = renew_api
        self.token = secrets.token_hex(8)
        self.value: dict[str, Any] = {
            "holder": holder_description(), "commit": commit, "ttl_seconds": self.ttl, "token": self.token,
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.id: str | None = None
        self.waited = 0.0  # seconds spent waiting for another holder
        self.broke: str | None = None  # the holder of an expired lock this one replaced
        self.broke_since: str | None = None  # when that holder took it (the server's `created`)
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- acquire / release ---------------------------------------------------------------------
    def __enter__(self) -> ApplyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        started = time.monotonic()
        told = warned = False
        seen: dict[tuple[str, str], float] = {}  # (lock id, its `updated`) -> when we first saw it
        while True:
            try:
                created = self.api.post("/variables/", {
                    "name": self.name, "value": self.value, "tags": [MANAGED_TAG, owner_tag(self.owner)]})
                self.id = created["id"]
                break
            except Conflict:
                current = self._read()
                if current is None:
                    continue  # released between our POST and our read
                value = current.get("value") if isinstance(current.get("value"), dict) else {}
                if value.get("token") == self.token:  # our own POST, committed before a lost answer
                    self.id = current["id"]
                    break
                silent, ttl = self._silence(current, value, seen)
                if silent > ttl:
                    self._break(current, value)
                    if self.on_wait is not None:
                        self.on_wait(f"took over the apply lock of {_who(value)}: it was not renewed for {ttl:g}s, "
                                     "so its holder is gone")
                    continue
                if silent > ttl * 2 / 3 and not warned and self.on_wait is not None:
                    # a live holder renews every ttl/3: two missed renewals mean it is most likely dead
                    self.on_wait(f"the holder of the apply lock ({_who(value)}) has not renewed it for {silent:.0f}s "
                                 f"(a live holder renews every {ttl / 3:g}s): it looks dead; taking the lock over "
                                 f"in {max(0.0, ttl - silent):.0f}s")
                    warned = True
                waited = time.monotonic() - started
                if waited >= self.timeout:
                    raise ApplyRefused(
                        f"another apply of owner {self.owner!r} holds the apply lock ({_who(value)}); waited "
                        f"{waited:.0f}s (--lock-timeout {self.timeout:g}s). Try again when it is done; the lock of "
                        f"a holder that died is taken over after {value.get('ttl_seconds', DEFAULT_TTL):g}s without "
                        "renewal, so a --lock-timeout longer than that always gets it"
                    ) from None
                if not told and self.on_wait is not None:
                    self.on_wait(f"waiting for the apply lock of owner {self.owner!r}: held by {_who(value)}; "
                                 f"waiting up to {self.timeout:g}s (--lock-timeout)")
                    told = True
                time.sleep(min(POLL_SECONDS, max(0.05, self.timeout - waited)))
        self.waited = time.monotonic() - started
        self._thread = threading.Thread(target=self._renew_loop, name="chapctl-lock", daemon=True)
        self._thread.start()

    def release(self) -> str | None:
        """Delete the lock. None once it is gone; else a sentence for the apply's notes saying that
        it is still there and what the next apply of the owner will do (the apply's own result
        stands either way). The delete is by id, so sending it again is safe: a refusal (a 5xx,
        SQLite's lock) is retried a few times with the repository's retry policy."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.id is None:
            return None
        lock_id, self.id = self.id, None
        if self._lost:
            return None  # another apply holds it now: never delete theirs (ids differ anyway)
        from flows.retrying import policy

        try:
            for attempt in policy(attempts=RELEASE_ATTEMPTS, backoff=self.api.backoff, seconds=self.ttl / 3,
                                  retry_if=lambda state: _refused(state.outcome.exception())):
                with attempt:
                    self.api.delete(f"/variables/{lock_id}")
        except NotFound:
            pass  # broken by a waiter after we went silent, or our earlier delete went through
        except ServerError as exc:
            return (f"could not release the apply lock of owner {self.owner!r} ({exc}); the next apply of this "
                    f"owner waits until it expires, {self.ttl:g}s after this one ended, or delete the Prefect "
                    f"variable {self.name!r}")
        return None

    def check(self) -> None:
        """Raise LockLost when the lock was taken from us; call before every write."""
        if self._lost:
            raise LockLost(self._lost)

    # -- internals -----------------------------------------------------------------------------
    def _read(self) -> dict[str, Any] | None:
        try:
            return self.api.get(f"/variables/name/{self.name}")
        except NotFound:
            return None

    @staticmethod
    def _silence(current: dict[str, Any], value: dict[str, Any],
                 seen: dict[tuple[str, str], float]) -> tuple[float, float]:
        """(seconds the lock has gone unrenewed, by our own monotonic clock since we first saw this
        version of it; its ttl): past the ttl, it has expired."""
        try:
            ttl = float(value.get("ttl_seconds", DEFAULT_TTL))
        except (TypeError, ValueError):
            ttl = DEFAULT_TTL
        first = seen.setdefault((str(current.get("id")), str(current.get("updated"))), time.monotonic())
        return time.monotonic() - first, ttl

    def _break(self, current: dict[str, Any], value: dict[str, Any]) -> None:
        try:
            self.api.delete(f"/variables/{current['id']}")
        except NotFound:
            pass  # another waiter broke it first
        self.broke = _who(value)
        self.broke_since = current.get("created")

    def _renew_loop(self) -> None:
        api = self.renew_api() if self.renew_api is not None else None
        last_ok = time.monotonic()
        try:
            while not self._stop.wait(self.ttl / 3):
                try:
                    (api or self.api).patch(f"/variables/{self.id}", {"value": self.value})
                    last_ok = time.monotonic()
                except NotFound:
                    self._lost = (f"the apply lock of owner {self.owner!r} was taken over by another apply "
                                  "(this one was silent longer than the lock's ttl); stopped before the next write")
                    return
                except ServerError:
                    if time.monotonic() - last_ok > self.ttl:
                        self._lost = (f"could not renew the apply lock of owner {self.owner!r} for "
                                      f"{self.ttl:g}s; stopped before the next write")
                        return
        finally:
            if api is not None:
                api.close()


def _who(value: dict[str, Any]) -> str:
    text = str(value.get("holder") or "an unknown holder")
    if value.get("commit"):
        text += f", commit {str(value['commit'])[:12]}"
    if value.get("since"):
        text += f", since {value['since']}"
    return text
