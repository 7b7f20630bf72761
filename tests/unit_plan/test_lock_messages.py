"""The apply lock's words while it waits, without a server: a lock whose holder stopped renewing it
is said to look dead before it is taken over, and the takeover says why (issue 21 #13: the wait
ended silently after the lock's ttl)."""

from __future__ import annotations

import json

import httpx

from compiler.reconcile.client import ApiSettings, PrefectAPI
from compiler.reconcile.lock import ApplyLock

HELD = {"id": "lock-1", "name": "chapctl-lock--default", "updated": "2026-12-01T02:00:00Z",
        "value": {"holder": "ci@runner-7 (pid 4242)", "ttl_seconds": 1.5, "token": "theirs"}}


def variables_server():
    store = {"chapctl-lock--default": dict(HELD)}

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        if request.method == "POST" and path == "/variables/":
            body = json.loads(request.content)
            if body["name"] in store:
                return httpx.Response(409, json={"detail": "exists"})
            store[body["name"]] = {"id": "lock-2", "updated": "now", **body}
            return httpx.Response(201, json=store[body["name"]])
        if request.method == "GET" and path.startswith("/variables/name/"):
            row = store.get(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=row) if row else httpx.Response(404, json={"detail": "gone"})
        if request.method == "DELETE":
            store.pop(next((k for k, v in store.items() if v["id"] == path.rsplit("/", 1)[1]), ""), None)
            return httpx.Response(204)
        return httpx.Response(200, json={})

    return handle


def test_a_dead_holders_lock_is_said_to_look_dead_then_taken_over_saying_why():
    said: list[str] = []
    api = PrefectAPI(ApiSettings(url="http://prefect.test/api"), transport=httpx.MockTransport(variables_server()))
    lock = ApplyLock(api, "default", timeout=30, ttl=30, on_wait=said.append)
    lock.acquire()
    lock.release()
    assert lock.broke == "ci@runner-7 (pid 4242)"
    assert said[0].startswith("waiting for the apply lock of owner 'default': held by ci@runner-7 (pid 4242)")
    looks_dead = [line for line in said if "looks dead" in line]
    assert looks_dead and "has not renewed it for" in looks_dead[0] and "renews every 0.5s" in looks_dead[0]
    assert said[-1] == ("took over the apply lock of ci@runner-7 (pid 4242): it was not renewed for 1.5s, "
                        "so its holder is gone")


def lock_server(delete_answers: list[int]):
    """Variables for one lock of this apply; DELETE answers the given statuses in turn, then 204."""
    store: dict[str, dict] = {}
    deletes: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        if request.method == "POST" and path == "/variables/":
            body = json.loads(request.content)
            store[body["name"]] = {"id": "lock-3", "updated": "now", **body}
            return httpx.Response(201, json=store[body["name"]])
        if request.method == "DELETE":
            deletes.append(path)
            status = delete_answers.pop(0) if delete_answers else 204
            if status == 204:
                store.clear()
            return httpx.Response(status, json={"detail": "database is locked"} if status >= 500 else None)
        return httpx.Response(200, json={})

    return handle, store, deletes


def test_a_release_the_server_refused_once_is_sent_again():
    handle, store, deletes = lock_server([500])
    api = PrefectAPI(ApiSettings(url="http://prefect.test/api"), transport=httpx.MockTransport(handle), backoff=0.01)
    lock = ApplyLock(api, "default", timeout=30, ttl=30)
    lock.acquire()
    assert lock.release() is None
    assert deletes == ["/variables/lock-3", "/variables/lock-3"] and not store


def test_a_lock_the_server_would_not_release_is_said_with_what_the_next_apply_will_do():
    """Before: a release that failed was silent, and the next apply of the owner waited a whole ttl
    (60 s) for a lock nobody held, then took it over (seen once in the suite, under load)."""
    handle, store, _ = lock_server([500] * 10)
    api = PrefectAPI(ApiSettings(url="http://prefect.test/api"), transport=httpx.MockTransport(handle), backoff=0.01)
    lock = ApplyLock(api, "default", timeout=30, ttl=30)
    lock.acquire()
    said = lock.release()
    assert store  # still there
    assert said is not None and said.startswith("could not release the apply lock of owner 'default' (")
    assert "the next apply of this owner waits until it expires, 30s after this one ended" in said
    assert "delete the Prefect variable 'chapctl-lock--default'" in said


def test_a_lock_already_gone_is_released_with_one_request():
    handle, _, deletes = lock_server([404])
    api = PrefectAPI(ApiSettings(url="http://prefect.test/api"), transport=httpx.MockTransport(handle), backoff=0.01)
    lock = ApplyLock(api, "default", timeout=30, ttl=30)
    lock.acquire()
    assert lock.release() is None and len(deletes) == 1
