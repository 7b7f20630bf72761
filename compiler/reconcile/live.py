"""The live state: everything chapctl owns or depends on, read from the Prefect API in bulk, by the
kinds' reads (compiler/reconcile/kinds/) in the order of their places.

A fixed number of requests, independent of the number of projects (one page holds the server's
limit, 200 by default): version probe, work pools, block documents of our types (each embeds its
schema and block type; only when none uses the schema chapctl registers is that schema read by
checksum) plus one read with secrets, only of managed blocks whose environment variable is set,
immediately reduced to digests; chapctl's own Prefect Variables (the owner's applied commit, block
claims, apply locks), this owner's deployments (tag `chapctl-owner:<owner>`) or ones named like a
desired project or like a deployment whose schedule a project replaces (one `or_` filter), and
the flows involved. Only when a plan may prune: the runs
of the deployments no project declares. Before an owner's first apply, one more read finds
deployments of an owner-less chapctl. The optional kinds (automations, global concurrency limits)
only when the owner has some (`managed_kinds`).

`Live` (compiler/reconcile/context.py) is plain JSON-able data so golden planner tests can write it
by hand (`live.json`).
"""

from __future__ import annotations

from collections.abc import Mapping

from compiler.constants import STATE_VARIABLE
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds import REGISTRY, reads
from compiler.reconcile.kinds.deployment import prune_candidates

__all__ = ["Live", "read_live", "managed_kinds", "manages", "prune_candidates"]


def read_live(api: PrefectAPI, desired: Desired, env: Mapping[str, str] | None = None) -> Live:
    import os

    env = dict(os.environ) if env is None else env
    # One after the other: reading pages or objects at once was measured slower on SQLite and
    # PostgreSQL alike (the server serialises 1,000 deployments on one core either way).
    with api.reading():
        live = Live(server_version=api.server_version())  # first: it turns a wrong URL into one line
        for kind, step in reads():
            # An optional kind is read only when the owner has some (known once the variables are read).
            if kind.manages is not None and kind.manages not in managed_kinds(desired, live):
                continue
            step.read(api, desired, live, env)
    return live


def managed_kinds(desired: Desired, live: Live) -> set[str]:
    """The optional kinds of object this owner has (or will have) on the server: what the projects
    declare, plus what the last apply recorded (so that dropping the last alert still prunes it)."""
    var = live.variables.get(STATE_VARIABLE.format(owner=desired.owner)) or {}
    recorded = (var.get("value") or {}).get("manages") if isinstance(var.get("value"), dict) else None
    kinds = {k for k in recorded or [] if isinstance(k, str)}
    for kind in REGISTRY:
        if kind.manages is not None and kind.declared is not None and kind.declared(desired):
            kinds.add(kind.manages)
    return kinds


def manages(desired: Desired, live: Live) -> list[str]:
    """The optional kinds this owner has after an apply (or still has, until one converges): the
    commit record's `manages`, so that the next plan reads them even when the projects no longer
    declare any, to prune them."""
    return sorted(k.manages for k in REGISTRY if k.manages is not None and k.declared is not None
                  and k.present is not None and (k.declared(desired) or k.present(live)))
