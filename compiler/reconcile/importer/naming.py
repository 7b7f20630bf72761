"""Import's names: project names derived from the credentials and model (`laos-model-12`), the cadence
word that tells projects of one base apart (`mon-0600`), managed block names for inline credentials,
all unique against the repository and the server and stable for the same server state (pure)."""

from __future__ import annotations

import re
from typing import Any, Protocol, TypeVar

_HOST_NOISE = {"www", "dhis", "dhis2", "hmis", "play", "api"}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")[:63].strip("-")


def instance_of_block(name: str) -> str:
    """`laos-dhis2` -> `laos`: the DHIS2 instance a credentials block names, for project names."""
    text = name
    for suffix in ("-dhis2-credentials", "-dhis2-creds", "-credentials", "-creds", "-dhis2", "-dhis"):
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    for prefix in ("dhis2-", "dhis-"):
        if text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix):]
    return slug(text) or slug(name) or "dhis2"


def instance_of_url(url: str) -> str:
    """`https://dhis2.la.example.org/dhis` -> `la`: the distinctive part of a DHIS2 host name."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if re.fullmatch(r"[\d.]+|localhost", host):
        return slug(host) or "dhis2"
    labels = [label for label in host.split(".") if label and label not in _HOST_NOISE]
    if len(labels) > 2:
        labels = labels[:-2]  # drop the registered domain (example.org)
    return slug("-".join(labels)) or "dhis2"


def base_name(fields: dict[str, Any]) -> str:
    """A project's readable name before it is made unique: instance, model, setup."""
    creds = fields.get("credentials") or {}
    instance = instance_of_url(creds["base_url"]) if creds.get("base_url") else instance_of_block(creds.get("block", ""))
    name = f"{instance}-model-{fields.get('model_id')}"
    if fields.get("prediction_setup_id") is not None:
        name += f"-setup-{fields['prediction_setup_id']}"
    return slug(name)


def cadence(cron: str) -> str:
    """A short, name-safe word for when a cron runs: `0 6 * * 1` -> `mon-0600`, `30 5 2 * *` ->
    `day2-0530`, `0 6 * * *` -> `daily-0600`, `@weekly` -> `weekly`."""
    text = cron.strip().lower()
    if text.startswith("@"):
        return slug(text[1:])
    fields = text.split()
    if len(fields) != 5:
        return ""
    minute, hour, dom, _month, dow = fields
    time = f"{int(hour):02d}{int(minute):02d}" if minute.isdigit() and hour.isdigit() else ""
    if dow != "*" and dom == "*":
        day = _days(dow)
    elif dom != "*" and dow == "*":
        day = "day" + dom.replace(",", "-") if re.fullmatch(r"[\d,]+", dom) else "monthly"
    elif dom == "*" and dow == "*":
        day = "daily" if hour.isdigit() else "hourly"
    else:
        day = "custom"
    return slug("-".join(part for part in (day, time) if part))


def _days(dow: str) -> str:
    if re.fullmatch(r"\d(-\d)?(,\d(-\d)?)*", dow):
        return "-".join("to".join(_DAYS[int(x) % 8] for x in part.split("-")) for part in dow.split(","))
    return "weekly"


def unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name[:59]}-{n}" in taken:
        n += 1
    return f"{name[:59]}-{n}"


class BlockNames:
    """Managed blocks for inline credentials: one per (base_url, username), names unique."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)
        self.by_login: dict[tuple[str, str], str] = {}

    def name_for(self, base_url: str, username: str) -> tuple[str, bool]:
        """The block's name, and whether it is new (first seen)."""
        key = (base_url, username)
        if key in self.by_login:
            return self.by_login[key], False
        instance = instance_of_url(base_url)
        candidates = [f"{instance}-dhis2", slug(f"{instance}-{username}-dhis2")]
        name = next((c for c in candidates if c and c not in self.taken), None) or unique(candidates[0], self.taken)
        self.taken.add(name)
        self.by_login[key] = name
        return name, True


class Nameable(Protocol):
    base: str  # the readable name before it is made unique
    in_place: bool  # keeps the deployment's own name
    order: tuple  # stable order among those with the same base
    cron: str | None


N = TypeVar("N", bound=Nameable)


def choose_names(drafts: list[N], taken: set[str]) -> list[tuple[N, str]]:
    """Readable, unique, stable names: the base name; when several share it, the cadence of their
    cron; then a number, in the order of (cron, time zone, schedule id)."""
    taken = set(taken)
    out: list[tuple[N, str]] = []
    in_place = [d for d in drafts if d.in_place]
    for d in in_place:  # the deployment's own name: already unique on the server
        taken.add(d.base)
        out.append((d, d.base))
    groups: dict[str, list[N]] = {}
    for d in drafts:
        if not d.in_place:
            groups.setdefault(d.base, []).append(d)
    for base in sorted(groups):
        members = sorted(groups[base], key=lambda d: d.order)
        for d in members:
            wanted = base
            if len(members) > 1 or base in taken:
                wanted = slug(f"{base}-{cadence(d.cron or '')}") if d.cron and cadence(d.cron) else base
            name = unique(wanted, taken)
            taken.add(name)
            out.append((d, name))
    return sorted(out, key=lambda pair: pair[1])
