"""Who owns what on a shared Prefect server: pure functions over live objects, no I/O.

Every deployment chapctl writes carries two tags, `managed-by:chapctl` (a marker for people) and
`chapctl-owner:<owner>` (what plan/apply read, change and prune), and a fingerprint
`chapctl:<owner>:<hash>` in its `version`. Block documents have no tags: the owner that manages
one is recorded in a Prefect Variable `chapctl-block--<slug>--<name>` ({"owner": ...}).
"""

from __future__ import annotations

import re
from typing import Any

from compiler.constants import CLAIM_VARIABLE, MANAGED_TAG, OWNER_TAG_PREFIX

LEGACY = ""  # applied by a chapctl from before owners (global tag or fingerprint only)
_FINGERPRINT = re.compile(r"^chapctl:(?:([a-z0-9][a-z0-9-]*):)?[0-9a-f]{16}$")


def deployment_owner(live: dict[str, Any]) -> str | None:
    """The owner of a live deployment: its owner tag; else the owner in its fingerprint (tags
    edited away in the UI); LEGACY when an owner-less chapctl applied it; None when chapctl never did."""
    tags = live.get("tags") or []
    for tag in tags:
        if tag.startswith(OWNER_TAG_PREFIX) and len(tag) > len(OWNER_TAG_PREFIX):
            return tag[len(OWNER_TAG_PREFIX):]
    m = _FINGERPRINT.match(str(live.get("version") or ""))
    if m and m.group(1):
        return m.group(1)
    if m or MANAGED_TAG in tags:
        return LEGACY
    return None


def claim_name(slug: str, name: str) -> str:
    return CLAIM_VARIABLE.format(slug=slug, name=name)

