"""Saved plans: apply exactly what was reviewed.

`chapctl plan --out FILE` writes the plan with what it was made from: the environment, the owner,
the server (its URL, never a user:password), the commit and tree of the checkout, a digest of
each compiled file apply reads (prefect.yaml, blocks/*.yaml), the plan's options, a digest of the
live state the planner read (per object, so that a refusal can name what moved), and the plan
itself: every action with its exact requests (a secret is the name of its variable, never a value
— `SecretFromEnv` — and a live secret is never even digested here).

`chapctl apply FILE` re-reads the server and refuses (before any write, and again under the apply
lock) when the environment, the server, the compiled files, the live state or the plan made now
differ from the saved ones, naming what differs. Otherwise it carries out the plan it just made,
which equals the saved one in every action and request: what was reviewed, without turning typed
values (placeholders, secrets) back from JSON. The only parts of a request left out of the
comparison are the `updated` stamps a RUNS step carries (they move when a worker polls; apply uses
them to tell its own writes from others').

The live digest leaves out what changes on a quiet server: time stamps, the runs the scheduler
makes, the apply locks (each kind's `facts`, compiler/reconcile/kinds/). Two reads of an unchanged
server give the same digest; an edit in the UI changes it. The file is deterministic: the same
inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import UserError
from compiler.reconcile import gitinfo
from compiler.reconcile.actions import RUNS, Plan, PlanOptions
from compiler.reconcile.context import Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds import REGISTRY

FORMAT = 1
FORMAT_KEY = "chapctl_saved_plan"
MAX_NAMED = 6  # objects named in a refusal; the rest counted


def file_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """The digest of a JSON value (keys sorted: the same value, the same digest)."""
    return file_digest(json.dumps(value, sort_keys=True, default=str).encode())


# -- what a plan was made from ---------------------------------------------------------------------
def live_objects(desired: Desired, live: Live, options: PlanOptions) -> dict[str, str]:
    """Object name -> digest of the facts the planner decides by (every registered kind's `facts`)."""
    objects: dict[str, Any] = {"server version": live.server_version}
    for kind in REGISTRY:
        objects.update(kind.live_facts(desired, live, options))
    return {name: digest(value) for name, value in sorted(objects.items())}


def compiled_files(root: Path) -> dict[str, str]:
    """Digest of each compiled file apply reads, by its path in the repository."""
    paths = [root / "prefect.yaml", *sorted((root / "blocks").glob("*.yaml"))]
    return {p.relative_to(root).as_posix(): file_digest(p.read_bytes()) for p in paths if p.is_file()}


def _request(req: Any) -> dict[str, Any]:
    doc = req.to_json()
    if req.method == RUNS:  # the `updated` stamps as read: they move without an edit
        doc["body"] = None
    return doc


def writes(plan: Plan) -> dict[str, str]:
    """Each writing action ("<kind> <name>") -> digest of its operation and exact requests."""
    out: dict[str, str] = {}
    for a in plan.actions:
        if not a.writes:
            continue
        key, n = f"{a.kind} {a.name}", 2
        while key in out:
            key, n = f"{a.kind} {a.name} #{n}", n + 1
        out[key] = digest({"op": a.op, "requests": [_request(r) for r in a.requests]})
    return out


@dataclass(frozen=True)
class SavedPlan:
    environment: str | None
    owner: str
    server: str  # the API URL, never with a user:password
    server_version: str
    commit: str | None
    tree: str | None
    files: dict[str, str]
    options: PlanOptions
    live: dict[str, str]
    writes: dict[str, str]
    plan: dict[str, Any] = field(default_factory=dict)  # the plan as reviewed (actions, changes, requests)
    chapctl: str | None = None

    @property
    def live_digest(self) -> str:
        return digest(self.live)

    @property
    def writes_digest(self) -> str:
        return digest(self.writes)

    def to_json(self) -> dict[str, Any]:
        return {
            FORMAT_KEY: FORMAT,
            "chapctl": self.chapctl,
            "environment": self.environment,
            "owner": self.owner,
            "server": {"url": self.server, "version": self.server_version},
            "commit": self.commit,
            "tree": self.tree,
            "compiled_files": self.files,
            "options": {"adopt": self.options.adopt, "allow_delete_all": self.options.allow_delete_all,
                        "cancel_in_flight": self.options.cancel_in_flight},
            "live": {"digest": self.live_digest, "objects": self.live},
            "writes": {"digest": self.writes_digest, "actions": self.writes},
            "plan": self.plan,
        }

    def text(self) -> str:
        """The file's text: sorted keys, so that the same inputs give the same bytes."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, doc: Any, where: str) -> SavedPlan:
        if not isinstance(doc, dict) or FORMAT_KEY not in doc:
            raise UserError(f"{where} is not a plan saved by `chapctl plan --out`")
        if doc[FORMAT_KEY] != FORMAT:
            raise UserError(f"{where} was saved by another chapctl (saved-plan format {doc[FORMAT_KEY]!r}, this one "
                            f"reads {FORMAT}); make a new plan with this chapctl")
        try:
            options = doc["options"]
            return cls(environment=doc["environment"], owner=str(doc["owner"]), server=str(doc["server"]["url"]),
                       server_version=str(doc["server"]["version"]), commit=doc["commit"], tree=doc["tree"],
                       files=dict(doc["compiled_files"]),
                       options=PlanOptions(bool(options["adopt"]), bool(options["allow_delete_all"]),
                                           bool(options["cancel_in_flight"])),
                       live=dict(doc["live"]["objects"]), writes=dict(doc["writes"]["actions"]),
                       plan=dict(doc.get("plan") or {}), chapctl=doc.get("chapctl"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{where} is not a complete saved plan (missing or malformed {exc}); make a new plan "
                            "with `chapctl plan --out FILE`") from None


def made_from(prepared: Any, api_url: str, options: PlanOptions, chapctl: str | None = None) -> SavedPlan:
    """The saved plan of `prepared` (a `prepare.Prepared`), made against the server at `api_url`."""
    desired, live, plan = prepared.desired, prepared.live, prepared.plan
    return SavedPlan(
        environment=desired.environment.name if desired.environment is not None else None,
        owner=desired.owner,
        server=api_url,
        server_version=live.server_version,
        commit=prepared.guard.head,
        tree=gitinfo.tree(prepared.root) if prepared.guard.head else None,
        files=compiled_files(prepared.root),
        options=options,
        live=live_objects(desired, live, options),
        writes=writes(plan),
        plan=plan.to_json(include_requests=True),
        chapctl=chapctl,
    )


@dataclass(frozen=True)
class SavedFile:
    """Where a plan was saved, and the digest of the file's bytes (for the pull-request comment)."""

    path: str
    digest: str


def write(path: Path, saved: SavedPlan) -> SavedFile:
    """Write the plan to `path` (atomically: a reader never sees half a plan)."""
    text = saved.text()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write the plan to {path}: {exc.strerror or exc}") from None
    return SavedFile(str(path), file_digest(text.encode("utf-8")))


def load(path: Path) -> tuple[SavedPlan, SavedFile]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the saved plan {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(data)
    except ValueError:
        raise UserError(f"{path} is not a plan saved by `chapctl plan --out` (not JSON)") from None
    return SavedPlan.from_json(doc, str(path)), SavedFile(str(path), file_digest(data))


# -- does it still hold? ---------------------------------------------------------------------------
def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _differences(saved: dict[str, str], now: dict[str, str], verbs: tuple[str, str, str]) -> list[str]:
    changed, added, gone = verbs
    out = [f"{k} {changed}" for k in sorted(saved.keys() & now.keys()) if saved[k] != now[k]]
    out += [f"{k} {added}" for k in sorted(now.keys() - saved.keys())]
    return out + [f"{k} {gone}" for k in sorted(saved.keys() - now.keys())]


def _where(commit: str | None, tree: str | None) -> str:
    if commit is None:
        return "outside git"
    return f"commit {commit[:12]}, tree {tree[:12]}" if tree else f"commit {commit[:12]}"


def mismatch(saved: SavedPlan, now: SavedPlan) -> str | None:
    """Why the saved plan may not be applied to what `now` was made from (environment, server,
    compiled files, live state, the plan made now), or None when it may. One sentence, naming what
    differs; the first difference in that order (each one explains those after it)."""
    if saved.environment != now.environment:
        def name(e: str | None) -> str:
            return f"environment {e!r}" if e else "no environment (the projects as declared)"

        return (f"the plan was made for {name(saved.environment)}; this apply is for {name(now.environment)} "
                "(--env or CHAPCTL_ENV)")
    if saved.server != now.server:
        return f"the plan was made against the Prefect server at {saved.server}; this apply talks to {now.server}"
    if saved.files != now.files:
        moved = _differences(saved.files, now.files, ("changed", "added", "removed"))
        return (f"the compiled files differ from those the plan was made from ({_where(saved.commit, saved.tree)}; "
                f"this checkout: {_where(now.commit, now.tree)}): {_named(moved)}")
    if saved.options != now.options:
        return "the plan's options differ"  # apply takes the saved plan's own: a bug if ever seen
    if saved.live != now.live:
        moved = _differences(saved.live, now.live, ("changed", "appeared", "is gone"))
        return f"the server changed since the plan was made: {_named(moved)}"
    if saved.writes != now.writes:
        moved = _differences(saved.writes, now.writes, ("would now be written differently", "would now be written",
                                                        "would no longer be written"))
        return f"the plan made now differs from the saved one: {_named(moved)}"
    return None


def refusal(path: str, reason: str) -> str:
    return (f"the saved plan {path} no longer matches: {reason}. Nothing was written; make a new plan "
            "(`chapctl plan --out FILE`), review it, and apply that")


def moved_commit(saved: SavedPlan, commit: str | None, tree: str | None) -> str | None:
    """A note when the plan was made at another commit whose compiled files are the same (the merge
    commit of the reviewed pull request, a rebase): apply goes ahead, and says so."""
    if (saved.commit, saved.tree) == (commit, tree) or saved.commit is None:
        return None
    return (f"the plan was made at {_where(saved.commit, saved.tree)}; this checkout is {_where(commit, tree)}, "
            "with the same compiled files")


def check(saved: SavedPlan, path: str, prepared: Any, api_url: str) -> str | None:
    """`refusal` text when `saved` may not be applied to what `prepared` read, else None."""
    now = made_from(prepared, api_url, saved.options)
    reason = mismatch(saved, now)
    return refusal(path, reason) if reason is not None else None

