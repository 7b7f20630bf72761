"""Execute a Plan against the Prefect API, in its order, one write at a time.

Writes are sequential (SQLite serialises them anyway and answers 503 when locked; the client
retries). Only actions whose op is not `noop` send anything, so a run with nothing to do makes
no write. Every action is a single request, or — for none today — several requests that are each
idempotent, so a run killed at any point leaves the server in a state from which the next
`plan` computes exactly the remaining work (tested by killing after k writes for several k).

`prepare()` is the read half shared by `plan` and `apply`: freshness check, desired state, live
state, pure diff.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.desired import Desired, load_desired
from compiler.errors import ApplyRefused
from compiler.plan import CREATE, DELETE, NOOP, UPDATE, Action, Plan, plan
from compiler.prefect_api import PrefectAPI
from compiler.state import Live, read_live

PLACEHOLDER = re.compile(r"^<<chapctl:([a-z_]+):(.+)>>$")


@dataclass
class Prepared:
    root: Path
    desired: Desired
    live: Live
    plan: Plan


FRESH_INPUTS = ("projects", "templates", "schema", "blocks", "prefect.yaml")


_RENDERING_PACKAGES = ("ruamel.yaml", "jinja2", "pydantic", "cron-descriptor", "tzdata", "prefect")


def check_fresh(root: Path) -> None:
    """Refuse stale artifacts (DESIGN §6.1); the compiler raises StaleArtifacts/ValidationFailed.

    Compiling is a pure function of the project files, the templates and the compiler's own code,
    so a successful check is remembered under .chapctl/cache/ keyed by the sha256 of all of them
    plus the committed artifacts: an unchanged repository skips the ~0.3 s recompile."""
    import hashlib
    import sys

    from importlib.metadata import version

    import compiler

    h = hashlib.sha256(repr(sys.version_info[:3]).encode())
    for package in _RENDERING_PACKAGES:  # their upgrades can change the output too
        h.update(f"{package}={version(package)}".encode())
    sources = [Path(compiler.__file__).parent]
    files = []
    for base in [root / name for name in FRESH_INPUTS] + sources:
        files += sorted(base.rglob("*")) if base.is_dir() else [base]
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    marker = root / ".chapctl" / "cache" / f"fresh-{h.hexdigest()[:32]}"
    if marker.exists():
        return
    from compiler.build import check_fresh as _check  # the full compiler only on a cache miss

    _check(root)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only checkout still works, just without the shortcut


def prepare(root: Path, api: PrefectAPI, *, env: Mapping[str, str] | None = None, adopt: bool = False,
            fresh_check: bool = True) -> Prepared:
    env = os.environ if env is None else env
    if fresh_check:
        check_fresh(root)
    desired = load_desired(root, env)
    live = read_live(api, desired)
    return Prepared(root, desired, live, plan(desired, live, adopt=adopt))


@dataclass
class ApplyResult:
    plan: Plan
    applied: list[Action] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        names = {CREATE: "created", UPDATE: "updated", DELETE: "deleted"}
        c = {"created": 0, "updated": 0, "deleted": 0}
        for a in self.applied:
            c[names[a.op]] += 1
        c["unchanged"] = sum(1 for a in self.plan.actions if a.op == NOOP)
        return c

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "applied": [a.to_json() for a in self.applied],
            "notes": list(self.plan.notes),
        }


def apply(p: Plan, api: PrefectAPI, *, env: Mapping[str, str] | None = None,
          progress: Callable[[Action], None] | None = None) -> ApplyResult:
    """Send the plan's writes in order. Raises ApplyRefused before any write if the plan has blockers."""
    env = os.environ if env is None else env
    refusals = p.blockers + p.missing_env
    if refusals:
        more = f" (and {len(refusals) - 1} more; see `chapctl plan`)" if len(refusals) > 1 else ""
        raise ApplyRefused(refusals[0] + more + "; nothing was written")
    _check_env(p, env, api)
    ids: dict[str, str] = {}
    result = ApplyResult(p)
    for action in p.actions:
        if not action.writes:
            continue
        for req in action.requests:
            response = api.request(req.method, _resolve(req.path, ids, env), json=_resolve(req.body, ids, env))
            if action.provides and isinstance(response, dict) and "id" in response:
                ids[action.provides] = response["id"]
        result.applied.append(action)
        if progress is not None:
            progress(action)
    return result


def _check_env(p: Plan, env: Mapping[str, str], api: PrefectAPI) -> None:
    """Every secret the plan will send must be set now — checked before the first write."""
    missing = set()
    for action in p.actions:
        if action.writes:
            for req in action.requests:
                for var in _env_refs(req.body):
                    if not env.get(var):
                        missing.add(var)
                    else:
                        api.register_secret(env[var])
    if missing:
        raise ApplyRefused(f"environment variable(s) {', '.join(sorted(missing))} not set; nothing was written")


def _env_refs(value: Any) -> list[str]:
    if isinstance(value, str):
        m = PLACEHOLDER.match(value)
        return [m.group(2)] if m and m.group(1) == "env" else []
    if isinstance(value, dict):
        return [v for x in value.values() for v in _env_refs(x)]
    if isinstance(value, list):
        return [v for x in value for v in _env_refs(x)]
    return []


def _resolve(value: Any, ids: Mapping[str, str], env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if "<<chapctl:" not in value:
            return value
        m = PLACEHOLDER.match(value)
        if m and m.group(1) == "env":
            return env[m.group(2)]
        if m:
            if value not in ids:
                raise RuntimeError(f"plan order bug: {value} used before it was created")
            return ids[value]
        # a placeholder inside a path
        return re.sub(r"<<chapctl:[a-z_]+:[^>]+>>", lambda mm: ids[mm.group(0)], value)
    if isinstance(value, dict):
        return {k: _resolve(v, ids, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids, env) for v in value]
    return value
