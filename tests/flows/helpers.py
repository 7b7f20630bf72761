"""Helpers shared by the flow tests (imported as `tests.flows.helpers`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from prefect.states import State

USERNAME = "chap-bot"
PASSWORD = "s3cret-pw"
DEFAULT_TODAY = date(2026, 3, 10)  # a Tuesday in 2026W11


@dataclass
class FlowRun:
    state: State
    report: str
    key: str

    @property
    def lines(self) -> list[str]:
        return self.report.splitlines()

    def section(self, setup_name: str) -> list[str]:
        """The report lines of one setup's block, without its title and blank lines."""
        title = f"### `{setup_name}` -- "
        start = next(i for i, line in enumerate(self.lines) if line.startswith(title))
        block = []
        for line in self.lines[start + 1:]:
            if line.startswith("#"):
                break
            if line:
                block.append(line)
        return block

    def field(self, setup_name: str, label: str) -> str:
        prefix = f"- **{label}:** "
        return next(line[len(prefix):] for line in self.section(setup_name) if line.startswith(prefix))


def read_artifacts(api_url: str, flow_run_id: Any) -> list[dict[str, Any]]:
    response = httpx.post(f"{api_url}/artifacts/filter",
                          json={"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}}, timeout=30)
    response.raise_for_status()
    return response.json()


def artifact_of(api_url: str, flow_run_id: Any) -> dict[str, Any]:
    reports = [a for a in read_artifacts(api_url, flow_run_id) if a["type"] == "markdown"]
    assert len(reports) == 1, f"expected exactly one report artifact, got {reports}"
    return reports[0]


def dimension(request: dict[str, Any], name: str) -> list[str]:
    """The items of one analytics `dimension=<name>:a;b` query parameter."""
    values = [v for k, v in request["query"] if k == "dimension" and v.startswith(name + ":")]
    assert len(values) == 1, request["query"]
    return values[0].split(":", 1)[1].split(";")


def dimension_names(request: dict[str, Any]) -> list[str]:
    return [v.split(":", 1)[0] for k, v in request["query"] if k == "dimension"]


def months(first: str, last: str) -> list[str]:
    """Hand-rolled month ids for expectations, independent of flows.periods."""
    year, month = int(first[:4]), int(first[4:])
    out = []
    while True:
        out.append(f"{year}{month:02d}")
        if out[-1] == last:
            return out
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def weeks(first: str, last: str, weeks_in: dict[int, int]) -> list[str]:
    """Week ids `YYYYWnn` from first to last; `weeks_in` gives each year's ISO week count."""
    match = re.fullmatch(r"(\d{4})W(\d{2})", first)
    year, week = int(match[1]), int(match[2])
    out = []
    while True:
        out.append(f"{year}W{week:02d}")
        if out[-1] == last:
            return out
        year, week = (year + 1, 1) if week == weeks_in[year] else (year, week + 1)
