"""A small, fast client for the parts of the Prefect REST API that plan/apply use.

Why not Prefect's own client: `import prefect` costs seconds, which alone would break the
no-op budget of docs/design.md §8, and its client reads and writes one object per call. This module
speaks HTTP with httpx directly, reads in bulk through the `/filter` endpoints, and counts every
request so the benchmark can report them.

Settings are read the way Prefect reads them, minus the import: environment variables first
(`PREFECT_API_URL`, `PREFECT_API_AUTH_STRING` for HTTP basic auth against a self-hosted server,
`PREFECT_API_KEY` for a bearer token as Prefect Cloud wants), then the active profile of
`$PREFECT_HOME/profiles.toml` (profile from `PREFECT_PROFILE`, else the file's `active`).

Errors the user can fix come out as one-line `ServerError`s naming the URL and the setting to
change. 503 (SQLite locked), 429 and connection failures are retried with exponential backoff.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if "httpx" not in sys.modules:
    # Two optional parts of httpx cost ~35 ms of every plan and apply and are never used here:
    # its own command line (rich, click's help machinery) and HTTP/2 (h2, installed because
    # Prefect asks for httpx[http2]). Both are imported inside try/except ImportError; making
    # those imports fail gives what httpx and httpcore do when the extras are not installed.
    # Only this process, only before anything else imported httpx (Prefect itself, where
    # imported, keeps both).
    sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
    _no_h2 = "httpcore._sync.http2" not in sys.modules
    if _no_h2:
        sys.modules["httpcore._sync.http2"] = None  # type: ignore[assignment]
    import httpx

    if _no_h2:
        del sys.modules["httpcore._sync.http2"]
import httpx  # noqa: E402

from compiler.errors import ChapctlError, Conflict, NotFound, ServerError  # noqa: E402
from flows.api import error_detail, error_text  # noqa: E402

PAGE_SIZE = 200  # Prefect's default PREFECT_SERVER_API_DEFAULT_LIMIT (also the page maximum)
CONNECT_RETRIES = 2  # a refused or timed-out connection: 2 quick retries (~0.6 s), not the full budget
CONNECT_TIMEOUT = 3.0  # seconds to open a connection (a black-holed host must not hang for 30 s)
PROBE_TIMEOUT = 10.0  # seconds for the first request (the version) to be answered: longer is a hung server
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures after which a write may have been committed although no answer came back.
_MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_LIMIT_RULE = re.compile(r"less than or equal to (\d+)")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# POST endpoints that only read; they do not count as writes.
READ_ONLY_POSTS = ("/filter", "/count", "/paginate")


@dataclass(frozen=True)
class ApiSettings:
    url: str  # never holds a user:password; safe to print
    auth_string: str | None = None
    api_key: str | None = None
    url_source: str = "PREFECT_API_URL"  # where the URL came from, for error messages
    auth_source: str | None = None  # where the auth string or key came from, for a refused login
    auth_hint: str | None = None  # where credentials would come from when none were given (an environment's variables)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        profile = _active_profile(env)
        url = env.get("PREFECT_API_URL") or profile.get("PREFECT_API_URL")
        if not url:
            raise ServerError(
                "PREFECT_API_URL is not set: point it at your Prefect server's API, "
                "e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api"
            )
        source = "PREFECT_API_URL" if env.get("PREFECT_API_URL") else "PREFECT_API_URL in the active Prefect profile"
        url = str(url).strip().rstrip("/")
        problem = _url_problem(url)
        if problem:
            raise ServerError(f"{source} is not a usable URL ({redacted_url(url)}): {problem}; give the server's API "
                              "address, e.g. http://127.0.0.1:4200/api")
        url, userinfo = split_userinfo(url)

        def first(*given: tuple[str | None, str]) -> tuple[str | None, str | None]:
            return next(((value, where) for value, where in given if value), (None, None))

        in_profile = " in the active Prefect profile"
        api_key, key_source = first((env.get("PREFECT_API_KEY"), "PREFECT_API_KEY"),
                                    (profile.get("PREFECT_API_KEY"), "PREFECT_API_KEY" + in_profile))
        auth_string, auth_source = first((env.get("PREFECT_API_AUTH_STRING"), "PREFECT_API_AUTH_STRING"),
                                         (profile.get("PREFECT_API_AUTH_STRING"), "PREFECT_API_AUTH_STRING" + in_profile),
                                         (userinfo, source))
        return cls(url=url, auth_string=auth_string, api_key=api_key, url_source=source,
                   auth_source=key_source or auth_source)  # the key wins when both are given (the headers)

    @classmethod
    def for_environment(cls, spec: Any, env: Mapping[str, str]) -> ApiSettings:
        """The server of an environment (`environments:` in _defaults.yaml, compiled to
        `compile.artifact.EnvironmentSpec`): the URL, and the auth string or API key, from the
        variables it names and only those — never PREFECT_API_URL or a profile (unless named), so
        that staging's settings can never reach production's server. The URL's variable must be set;
        a credentials variable is used when set (CI passes an empty one for the kind of auth it does
        not use), and a 401 then names it."""
        where = f"environment {spec.name!r}"
        url = (env.get(spec.api_url_env) or "").strip().rstrip("/")
        if not url:
            raise ServerError(f"{spec.api_url_env} is not set: {where} reads its Prefect server's API URL from it "
                              f"(`api_url_env` in projects/_defaults.yaml); e.g. export "
                              f"{spec.api_url_env}=https://prefect.example.org/api")
        source = f"{spec.api_url_env} ({where})"
        problem = _url_problem(url)
        if problem:
            raise ServerError(f"{source} is not a usable URL ({redacted_url(url)}): {problem}; give the server's API "
                              "address, e.g. http://127.0.0.1:4200/api")
        url, userinfo = split_userinfo(url)
        auth_string = (env.get(spec.auth_string_env) if spec.auth_string_env else None) or userinfo
        api_key = (env.get(spec.api_key_env) if spec.api_key_env else None) or None
        auth_source = (f"{spec.api_key_env} ({where})" if api_key else
                       f"{spec.auth_string_env} ({where})" if auth_string and auth_string != userinfo
                       else source if userinfo else None)
        named = [v for v in (spec.auth_string_env, spec.api_key_env) if v]
        hint = f"{' or '.join(named)} (named by {where} in projects/_defaults.yaml)" if named else None
        return cls(url=url, auth_string=auth_string, api_key=api_key, url_source=source, auth_source=auth_source,
                   auth_hint=hint)


def secret_forms(value: str) -> set[str]:
    """`value` as it may come back in an answer: raw, JSON-escaped (a `"` or `\\` in it, non-ASCII),
    URL-encoded (as a path or a form), and base64 (alone, and as HTTP basic auth carries a
    `user:password`). Forms shorter than 4 characters are left out: they would scrub ordinary text."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], quote(value, safe=""),
             quote_plus(value), base64.b64encode(value.encode()).decode()}
    if ":" in value:  # a user:password: the password alone too
        forms |= secret_forms(value.partition(":")[2])
    return {form for form in forms if len(form) >= 4}


def redacted_url(url: str) -> str:
    """`url` with whatever stands before an `@` after the scheme (a user:password) replaced by `***`:
    printable even when the URL is too malformed to parse."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*:/{1,2})?[^@]*@", lambda m: (m.group(1) or "") + "***@", url)


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be the API's address (never quoting it), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return "it does not parse (a bracket, a port or a character out of place)"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    return None


def split_userinfo(url: str) -> tuple[str, str | None]:
    """`http://user:pass@host/api` -> (`http://host/api`, "user:pass"): the credentials are used for
    basic auth (as httpx would) and the URL that is printed never carries them."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), f"{unquote(user)}:{unquote(password)}"


def _active_profile(env: Mapping[str, str]) -> dict[str, str]:
    """The settings of the active profile in $PREFECT_HOME/profiles.toml, or {} (cheap: tomllib)."""
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        import tomllib

        data = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    name = env.get("PREFECT_PROFILE") or data.get("active")
    profile = (data.get("profiles") or {}).get(name) or {}
    return {k: str(v) for k, v in profile.items()}


@dataclass
class RequestStats:
    requests: int = 0
    writes: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    retries: int = 0


class PrefectAPI:
    """Synchronous JSON client with retries, request counting and one-line errors."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        retries: int | None = None,
        backoff: float = 0.2,
        timeout: float = 30.0,
        probe_timeout: float = PROBE_TIMEOUT,
        on_write: Callable[[str, str], None] | None = None,
    ):
        self.settings = settings
        self.stats = RequestStats()
        self.retries = int(os.environ.get("CHAPCTL_HTTP_RETRIES", "5")) if retries is None else retries
        self.backoff = backoff
        self.probe_timeout = probe_timeout
        self.on_write = on_write  # test seam: called after each write the server answered
        self._secrets: set[str] = set()  # values to scrub from any error message
        if settings.auth_string:
            self.register_secret(settings.auth_string)  # with the password alone, and as basic auth carries it
        if settings.api_key:
            self.register_secret(settings.api_key)
        self.page_size = PAGE_SIZE  # lowered to the server's limit when it refuses a page (422)
        self._local = threading.local()  # per thread: requests may run concurrently (reads, writes)
        self._counting = threading.Lock()
        self._pool: Any = None  # a small thread pool, made on first use
        self.busy = False  # the server answered 503 (SQLite's one writer): callers stop writing at once

        headers = {"Accept": "application/json"}
        auth = None
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        elif settings.auth_string:
            user, _, password = settings.auth_string.partition(":")
            auth = httpx.BasicAuth(user, password)
        # TLS verification matters only for https; for a plain-http server skip loading the CA
        # bundle, which costs ~0.1 s of the no-op budget.
        verify = settings.url.lower().startswith("https")
        self._transport, self._timeout = transport, timeout
        self._client = httpx.Client(
            base_url=settings.url, headers=headers, auth=auth, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            transport=transport, verify=verify
        )

    @property
    def last_resent(self) -> bool:
        """True when this thread's last request was a write sent again after a failure that may
        have hidden its success (502/504, a timeout, a dropped connection): a 409 or 5xx then may
        be our own earlier write."""
        return getattr(self._local, "resent", False)

    @last_resent.setter
    def last_resent(self, value: bool) -> None:
        self._local.resent = value

    @property
    def last_found(self) -> bool:
        """True when this thread's last request was a create whose lost answer its `find_created`
        found on the server: what it returned is that object, not the server's answer."""
        return getattr(self._local, "found", False)

    @last_found.setter
    def last_found(self, value: bool) -> None:
        self._local.found = value

    def concurrently(self, *calls: Callable[[], Any], workers: int = 4) -> list[Any]:
        """Run independent calls at once (reads that do not depend on each other; writes to
        unrelated objects); results in order; the first error is raised after all have finished."""
        if len(calls) < 2 or workers < 2:
            return [call() for call in calls]
        from concurrent.futures import ThreadPoolExecutor, wait

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="chapctl-http")
        results: list[Any] = []
        for start in range(0, len(calls), workers):
            futures = [self._pool.submit(call) for call in calls[start:start + workers]]
            wait(futures)
            for future in futures:
                if future.exception() is not None:
                    raise future.exception()
            results += [future.result() for future in futures]
        return results

    # -- lifecycle -----------------------------------------------------------------------------
    def sibling(self) -> PrefectAPI:
        """A client of the same server with its own connection and counters (the lock's)."""
        other = PrefectAPI(self.settings, transport=self._transport, retries=self.retries, backoff=self.backoff,
                           timeout=self._timeout)
        other._secrets = set(self._secrets)
        return other

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._client.close()

    def __enter__(self) -> PrefectAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_secret(self, value: str) -> None:
        """Never let `value` appear in an error message (servers and proxies echo request bodies and
        headers), in any of the encodings it travels in (`secret_forms`)."""
        if value:
            self._secrets.update(secret_forms(value))

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):  # the longest form first
            text = text.replace(secret, "********")
        return text

    # -- core ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                probe: bool = False, find_created: Callable[[], Any] | None = None) -> Any:
        """Send one request; return decoded JSON (None for an empty body).

        Raises NotFound on 404, Conflict on 409, ServerError otherwise; never an httpx error.
        503/429/502/504, connection failures and timeouts are retried with the repository's one
        retry policy (`flows.retrying`, loaded only once a request has failed). A `probe` waits
        `probe_timeout` seconds for its answer and is not sent again when none came: a server that
        accepts connections and never answers is said so within that time.

        `find_created` is for a create the server does not deduplicate (an automation: sending it
        again makes a second one): it reads the server and returns the object this create meant to
        make, or None. It is asked before the create is sent again after a failure that may have
        hidden its success (502/504, a timeout, a dropped connection), and once more when
        the request ends in such a failure or fails after being sent again; what it finds is the
        answer (`last_found` is then True)."""
        write = method in WRITE_METHODS and not path.endswith(READ_ONLY_POSTS)
        self.last_resent = self.last_found = False
        outcome = self._attempt(method, path, json, params, self.probe_timeout if probe else None)
        if probe and isinstance(outcome, httpx.ReadTimeout):
            raise ServerError(f"the Prefect API at {self.settings.url} accepted the connection but did not answer "
                              f"{method} {path} within {self.probe_timeout:.0f} s; is the server hung, or is "
                              f"{self.settings.url_source} the address of another service?")
        if self._retryable(outcome) and self.retries > 0:
            outcome = self._retry(method, path, json, params, outcome, write, find_created)
        if find_created is not None and not isinstance(outcome, _Found) and (
                _maybe_committed(outcome) or (self.last_resent and _failed(outcome))):
            outcome = self._find(find_created) or outcome
        if isinstance(outcome, _Found):
            self.last_found = True
            with self._counting:
                self.stats.writes += 1
            return outcome.value
        if isinstance(outcome, BaseException):
            raise self._unreachable(method, path, outcome) from None
        response = outcome
        if write:
            with self._counting:
                self.stats.writes += 1
        self._raise_for_status(method, path, response)
        if write and self.on_write is not None:
            self.on_write(method, path)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"{self.settings.url} answered {method} {path} with something that is not JSON; "
                f"{self.settings.url_source} must be the API URL of a Prefect server (it usually ends in /api)"
            ) from None

    def _attempt(self, method: str, path: str, json: Any, params: dict[str, Any] | None,
                 timeout: float | None = None) -> Any:
        """One try: the response, or the httpx error (returned, not raised)."""
        with self._counting:
            self.stats.requests += 1
            self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1
        chosen = httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        try:
            return self._client.request(method, path, json=json, params=params, timeout=chosen)
        except httpx.HTTPError as exc:
            return exc

    def _retryable(self, outcome: Any) -> bool:
        if isinstance(outcome, BaseException):
            return isinstance(outcome, (httpx.ConnectError, httpx.ConnectTimeout, *_MAYBE_SENT))
        if outcome.status_code == 503:
            self.busy = True
        return outcome.status_code in RETRY_STATUSES

    def _retry(self, method: str, path: str, json: Any, params: dict[str, Any] | None, first: Any,
               write: bool, find_created: Callable[[], Any] | None = None) -> Any:
        from flows.retrying import policy

        made = [first]  # the policy's first attempt is the try already made
        last = [first]

        def attempt() -> Any:
            if made:
                return made.pop()
            if find_created is not None and _maybe_committed(last[0]):
                found = self._find(find_created)  # the lost answer may hide the object: never make a second
                if found is not None:
                    return found
            with self._counting:
                self.stats.retries += 1
            if write:
                self.last_resent = True  # a 409 or 5xx now may be our own earlier write
            last[0] = self._attempt(method, path, json, params)
            return last[0]

        def again(state) -> bool:
            if state.outcome.failed:
                return False  # `find_created` failed (its own reads were retried): raised as it is
            outcome = state.outcome.result()
            if isinstance(outcome, _Found):
                return False
            if isinstance(outcome, (httpx.ConnectError, httpx.ConnectTimeout)):
                # Nothing listens (or answers) there: a restarting server is back within a second;
                # anything longer is a wrong URL or a server that is down. Say so within ~2 s.
                return state.attempt_number <= CONNECT_RETRIES
            return self._retryable(outcome)

        retrying = policy(attempts=self.retries + 1, backoff=self.backoff, cap=5.0, retry_if=again)
        return retrying(attempt)

    def _find(self, find_created: Callable[[], Any]) -> _Found | None:
        """`find_created()` (its reads are requests of their own) without losing `last_resent`."""
        resent = self.last_resent
        try:
            found = find_created()
        finally:
            self.last_resent = resent
        return None if found is None else _Found(found)

    def _unreachable(self, method: str, path: str, exc: BaseException) -> ServerError:
        reason = self._scrub(_reason(exc))
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return ServerError(f"cannot reach the Prefect API at {self.settings.url} ({reason}); "
                               f"start the server or fix {self.settings.url_source}")
        if isinstance(exc, _MAYBE_SENT):
            return ServerError(f"the Prefect API at {self.settings.url} did not answer {method} {path} ({reason}) "
                               f"after {self.retries} retries; is the server overloaded?")
        return ServerError(f"HTTP error talking to {self.settings.url}{path}: {reason}")

    def _raise_for_status(self, method: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            given = self.settings.auth_source
            if given is None:
                raise ServerError(f"401 Unauthorized from {self.settings.url}: authentication is required; set "
                                  + (self.settings.auth_hint or "PREFECT_API_AUTH_STRING (user:password) or PREFECT_API_KEY"))
            what, check = (("key", "check that it is valid for this server") if self.settings.api_key is not None
                           else ("user:password", "check it against the server's PREFECT_SERVER_API_AUTH_STRING"))
            raise ServerError(f"401 Unauthorized from {self.settings.url}: the server refused the {what} in {given}; "
                              f"{check}")
        if status == 403:
            raise ServerError(f"403 Forbidden from {self.settings.url} for {method} {path}; check the API key's permissions")
        detail = self._scrub(error_text(error_detail(response), limit=500))
        if status == 404:
            raise NotFound(f"the Prefect API at {self.settings.url} answered 404 to {method} {path}: {detail}", path)
        if status == 409:
            raise Conflict(f"the Prefect API at {self.settings.url} answered 409 to {method} {path}: {detail}")
        if status in RETRY_STATUSES:
            raise ServerError(
                f"the Prefect API at {self.settings.url} kept answering {status} to {method} {path} "
                f"after {self.retries} retries{': ' + detail if detail else ''}", status
            )
        raise ServerError(f"the Prefect API at {self.settings.url} rejected {method} {path} with {status}: {detail}",
                          status)

    # -- conveniences --------------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except NotFound:
            return None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around code that interprets what the server answered: data that is not the shape of
        Prefect's API (a wrong URL that answers 200 with other JSON) is one clear ServerError, never
        a KeyError or a TypeError from deep inside."""
        try:
            yield
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise self.not_prefect(f"({type(exc).__name__} reading its answers)") from None

    def not_prefect(self, detail: str) -> ServerError:
        return ServerError(f"{self.settings.url} answered with JSON that is not the API of a Prefect server {detail}; "
                           f"{self.settings.url_source} must be the API URL of a Prefect server "
                           "(it usually ends in /api)")

    def filter_all(self, path: str, body: dict[str, Any]) -> list[Any]:
        """Every row of a `/filter` endpoint, paged by offset at the server's page size."""
        return list(self._pages(path, body))

    def _pages(self, path: str, body: dict[str, Any], offset: int = 0) -> Iterator[Any]:
        while True:
            size = self.page_size
            try:
                page = self.post(path, {**body, "limit": size, "offset": offset})
            except ServerError as exc:
                smaller = self._smaller_page(exc, size)
                if smaller is None:
                    raise
                self.page_size = smaller  # the server's PREFECT_SERVER_API_DEFAULT_LIMIT is lower
                continue
            if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
                raise self.not_prefect(f"(POST {path} gave no list of objects)")
            yield from page
            if len(page) < size:
                return
            offset += size

    @staticmethod
    def _smaller_page(exc: ServerError, size: int) -> int | None:
        """The page size a 422 "Invalid limit: must be less than or equal to N" asks for."""
        if exc.status != 422 or "limit" not in str(exc):
            return None
        m = _LIMIT_RULE.search(str(exc))
        smaller = int(m.group(1)) if m else size // 2
        return smaller if 0 < smaller < size else None

    def server_version(self) -> str:
        """`GET /admin/version`: also the probe that turns a wrong URL into a clear error."""
        try:
            version = self.request("GET", "/admin/version", probe=True)
        except NotFound:
            raise ServerError(
                f"{self.settings.url} has no Prefect API (404 on /admin/version); "
                f"{self.settings.url_source} must be the API URL, usually ending in /api, "
                "e.g. http://127.0.0.1:4200/api"
            ) from None
        return str(version)


def probe_server_version(timeout: float = 2.0, settings: Callable[[], ApiSettings] | None = None) -> str | None:
    """The configured server's Prefect version (`settings`: where it is, e.g. an environment's;
    default Prefect's own settings), or None when none is configured or it does not answer within
    `timeout`: for output that works offline and says nothing then."""
    try:
        with PrefectAPI(settings() if settings is not None else ApiSettings.from_env(), retries=0,
                        timeout=timeout) as api:
            return api.server_version()
    except ChapctlError:
        return None


@dataclass(frozen=True)
class _Found:
    """What a create's `find_created` found on the server: the create's answer."""

    value: Any


def _maybe_committed(outcome: Any) -> bool:
    """A failure after which the server may hold the write although no answer said so: a proxy's
    502/504, a timeout, a dropped connection (not a connection never opened, nor a 503 or 429,
    which refuse the request)."""
    if isinstance(outcome, BaseException):
        return isinstance(outcome, _MAYBE_SENT)
    return outcome.status_code in (502, 504)


def _failed(outcome: Any) -> bool:
    return isinstance(outcome, BaseException) or outcome.status_code >= 400


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
