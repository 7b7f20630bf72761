"""Time zone names: the pinned tzdata's IANA list, and suggestions for a name that is not in it.

A suggestion must never move runs by hours: "EAT" is not "WET", "GMT+1" is not "GMT+0". So a
suggestion keeps the UTC offset the user meant when the text implies one (an abbreviation such
as EAT or CET, a `UTC+3`/`GMT-05:00` offset), and otherwise only corrects the spelling of an
Area/City name (or completes a bare city); anything else gets no suggestion at all.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib.resources
import re
from functools import lru_cache
from zoneinfo import ZoneInfo

REFERENCE_YEAR = 2027
_OFFSET = re.compile(r"^(?:UTC|GMT|Z)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.I)
# Areas of the backward-compatible links (US/Eastern, Etc/...): never offered as suggestions.
_LEGACY_AREAS = ("Etc/", "US/", "Canada/", "Mexico/", "Brazil/", "Chile/", "SystemV/")


@lru_cache(maxsize=1)
def timezones() -> frozenset[str]:
    """The IANA zones of the pinned `tzdata` package: the same list on every machine."""
    return frozenset((importlib.resources.files("tzdata") / "zones").read_text().split())


@lru_cache(maxsize=1)
def _canonical() -> list[str]:
    """Current names only (zone.tab: Asia/Kolkata, not the Asia/Calcutta link) for suggestions."""
    table = (importlib.resources.files("tzdata") / "zoneinfo" / "zone.tab").read_text()
    names = {line.split("\t")[2] for line in table.splitlines() if line and not line.startswith("#")}
    return sorted(z for z in names if z in timezones() and not z.startswith(_LEGACY_AREAS))


@lru_cache(maxsize=1)
def _abbreviations() -> dict[str, dict[int, list[str]]]:
    """Abbreviation (EAT, CET, CEST, …) -> UTC offset in minutes -> the zones that use it."""
    table: dict[str, dict[int, list[str]]] = {}
    for zone in _canonical():
        info = ZoneInfo(zone)
        for month in (1, 7):
            moment = dt.datetime(REFERENCE_YEAR, month, 15, 12, tzinfo=info)
            name = moment.tzname() or ""
            if name[:1].isalpha():  # "+07" style names are offsets, not abbreviations
                offset = int(moment.utcoffset().total_seconds() // 60)
                zones = table.setdefault(name.upper(), {}).setdefault(offset, [])
                if zone not in zones:
                    zones.append(zone)
    return table


@lru_cache(maxsize=1)
def _countries() -> dict[str, tuple[str, list[str]]]:
    """Country name, lower case with spaces ("malawi", "united states") -> (its name, its zones in
    zone.tab's order): "Africa/Malawi" names a country, whose zone is Africa/Blantyre."""
    folder = importlib.resources.files("tzdata") / "zoneinfo"
    names = {}
    for line in (folder / "iso3166.tab").read_text().splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t")[:2]
            names[code] = name
    zones: dict[str, list[str]] = {}
    for line in (folder / "zone.tab").read_text().splitlines():
        if line and not line.startswith("#"):
            code, _, zone = line.split("\t")[:3]
            if zone in timezones():
                zones.setdefault(code, []).append(zone)
    return {name.lower(): (name, zones[code]) for code, name in names.items() if code in zones}


def _country_hint(text: str) -> str | None:
    country = _countries().get(text.rsplit("/", 1)[-1].replace("_", " ").strip().lower())
    if country is None:
        return None
    name, zones = country
    if len(zones) == 1:
        return f"{name} is a country, not a zone name: did you mean {zones[0]!r}?"
    return (f"{name} is a country with {len(zones)} zones: use the one of the DHIS2 instance's city, e.g. "
            + ", ".join(repr(z) for z in zones[:3]))


def _clock(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def suggestion(name: str) -> str:
    """A hint for an unknown time zone name, never one that changes the UTC offset meant."""
    default = "use an IANA name such as 'Africa/Kigali' or 'UTC' (list: `python -c \"import zoneinfo; " \
              "print(sorted(zoneinfo.available_timezones()))\"`)"
    text = name.strip()
    m = _OFFSET.match(text)
    if m:
        minutes = (int(m.group(2)) * 60 + int(m.group(3) or 0)) * (1 if m.group(1) == "+" else -1)
        if minutes == 0:
            return "did you mean 'UTC'?"
        if minutes % 60 == 0 and f"Etc/GMT{'-' if minutes > 0 else '+'}{abs(minutes) // 60}" in timezones():
            fixed = f"Etc/GMT{'-' if minutes > 0 else '+'}{abs(minutes) // 60}"
            return (f"for a fixed {_clock(minutes)} with no daylight saving use {fixed!r} (POSIX inverts the sign), "
                    "or better the city zone of the DHIS2 instance, which follows its daylight saving")
        return f"{_clock(minutes)} has no fixed-offset zone; use the city zone of the DHIS2 instance"
    by_offset = _abbreviations().get(text.upper())
    if by_offset:
        options = [f"{zones[0]!r} ({_clock(offset)})" for offset, zones in sorted(by_offset.items())]
        if len(options) == 1:
            return f"{text} is an abbreviation, not a zone name: did you mean {options[0]}?"
        return f"{text} is an ambiguous abbreviation: " + " or ".join(options) + "?"
    by_country = _country_hint(text)  # before spelling: 'Africa/Malawi' is not a misspelt 'Africa/Malabo'
    if by_country:
        return by_country
    if "/" in text:
        close = difflib.get_close_matches(text, _canonical(), n=1, cutoff=0.8)
        if close:
            return f"did you mean {close[0]!r}?"
        return default
    cities = [z for z in _canonical() if z.rsplit("/", 1)[-1].lower() == text.replace(" ", "_").lower()]
    if len(cities) == 1:
        return f"did you mean {cities[0]!r}?"
    return default
