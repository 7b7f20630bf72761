"""National-scale seeding: one prediction setup over N generated org units (each with a geometry),
C covariates and P periods, weekly or monthly, cheaply.

Org units and data elements are small generated records; their values are never stored: analytics
computes each one from a hash when asked (`seed.DataElement.raw`), so 700 × 4 × 114 weeks or
2,000 × 3 × 60 months costs nothing until it is read. Covariate values other than the target carry
three decimals, so a DHIS2 that rounds them (no `skipRounding=true`) changes them.

`POST /__fake__/scale {"id": 20, "periodType": "week", "orgUnits": 700, "covariates": 4, "periods": 114}`
(`FakeAdmin.seed_scale(...)`) adds setup 20; `reset` removes it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.fake_dhis2 import periods, seed

COVARIATES = ["disease_cases", "rainfall", "mean_temperature", "population", "humidity", "ndvi"]
FIRST_PERIOD = {"week": "2024W1", "month": "202101"}


def org_unit_id(setup_id: int, index: int) -> str:
    """An 11-character DHIS2-style uid, like `S0200000001`: a letter, the setup, the index."""
    return f"S{setup_id:03d}{index:07d}"


def data_element_id(setup_id: int, index: int) -> str:
    return f"D{setup_id:03d}{index:07d}"


def _square(index: int) -> dict[str, Any]:
    x, y = 100 + (index % 100) * 0.1, -10 - (index // 100) * 0.1
    return {"type": "Polygon", "coordinates": [[[x, y], [x + 0.1, y], [x + 0.1, y - 0.1], [x, y - 0.1], [x, y]]]}


def scaled_setup(spec: dict[str, Any], today: date) -> tuple[dict[str, Any], dict[str, dict[str, Any]],
                                                              dict[str, seed.DataElement]]:
    """The setup, its org units and its data elements for a `/__fake__/scale` request.

    `spec`: `id` (int), `periodType` (`week` or `month`), `orgUnits`, `covariates` (1..6, the first
    is the target `disease_cases`), `periods` (the setup starts that many periods before the
    current one, but not before the data's first period), optional `name`."""
    setup_id, period_type = int(spec["id"]), spec["periodType"]
    count, n_covariates, n_periods = int(spec["orgUnits"]), int(spec["covariates"]), int(spec["periods"])
    if period_type not in FIRST_PERIOD or not 1 <= n_covariates <= len(COVARIATES) or count < 1 or n_periods < 1:
        raise ValueError("periodType week|month, orgUnits >= 1, covariates 1..6 and periods >= 1 are needed")
    units = {}
    for index in range(1, count + 1):
        uid = org_unit_id(setup_id, index)
        units[uid] = {"id": uid, "displayName": f"District {index}", "code": f"D{index:05d}", "level": 2,
                      "parent": {"id": "ouProv0001"}, "geometry": _square(index)}
    elements = {}
    for index in range(1, n_covariates + 1):
        de = data_element_id(setup_id, index)
        target = index == 1
        elements[de] = seed.DataElement(de, period_type, FIRST_PERIOD[period_type], 500 if target else 100,
                                        0 if target else 3)
    first = periods.parse(FIRST_PERIOD[period_type])
    start = max(first, periods.step(periods.current(period_type, today), -n_periods), key=lambda p: p[1])
    template = seed._WEEKLY if period_type == "week" else seed._EWARS
    setup = seed._setup(setup_id, spec.get("name") or f"National {period_type}ly ({count} org units)", 30 + setup_id,
                        template["name"], template, period_type, periods.chap_id(start), list(units),
                        [(COVARIATES[i - 1], data_element_id(setup_id, i)) for i in range(1, n_covariates + 1)], True)
    return setup, units, elements
