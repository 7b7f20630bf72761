"""Repositories of projects for `chapctl preflight` tests: project files written as an operator writes
them, compiled by chapctl itself, pointed at a fake (or real-chap-backed) DHIS2.

    root = write_repo(tmp_path, {"good": project(fake.url, model_id=12, setup_id=3, cron="0 6 2 * *")})
    report = preflight(root, PreflightOptions(today=TODAY), env)
"""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import yaml as pyyaml

from compiler.compile.build import compile_repo, write

REPO = Path(__file__).resolve().parents[2]
TODAY = date(2026, 3, 10)  # the fake's today and the flow's (CHAP_TODAY) in every preflight test
USERNAME = "chap-bot"
PASSWORD = "Pf-3xq!d1st1nct1ve"  # distinctive: no output may ever hold it (or its encodings)
PASSWORD_ENV = "PREFLIGHT_DHIS2_PASSWORD"


def project(base_url: str | None, *, block: str = "test-dhis2", model_id: int = 12, setup_id: int | None = None,
            end_mode: str = "offset", offset: int | None = 1, end_date: str | None = None,
            cron: str | None = "0 6 2 * *", timezone: str = "UTC", password_env: str = PASSWORD_ENV,
            username: str = USERNAME, schedules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A project file's data (its `name` is added by `write_repo`). `base_url=None`: only a block
    reference (a block managed outside chapctl)."""
    data: dict[str, Any] = {"credentials": {"block": block}}
    if base_url is not None:
        data["credentials"].update(base_url=base_url, username=username, password_env=password_env)
    data["model_id"] = model_id
    if setup_id is not None:
        data["prediction_setup_id"] = setup_id
    data["end_mode"] = end_mode
    if end_mode == "offset":
        data["end_period_offset"] = offset
    if end_mode == "fixed":
        data["end_date"] = end_date
    if schedules is not None:
        data["schedules"] = schedules
    elif cron is not None:
        data["schedule"] = {"cron": cron, "timezone": timezone}
    return data


def write_repo(root: Path, projects: dict[str, dict[str, Any]], defaults: dict[str, Any] | None = None) -> Path:
    """The projects as files under `root/projects/`, compiled (prefect.yaml, blocks/) as `chapctl compile`
    writes them."""
    (root / "projects").mkdir(parents=True, exist_ok=True)
    (root / "projects" / "_defaults.yaml").write_text(pyyaml.safe_dump(defaults or {"owner": "preflight"}))
    for name, data in projects.items():
        (root / "projects" / f"{name}.yaml").write_text(pyyaml.safe_dump({"name": name, **data}, sort_keys=False))
    write(root, compile_repo(root).artifacts)
    return root


def copy_setup(fake_admin, source: int, new_id: int, **changes: Any) -> dict[str, Any]:
    """Another prediction setup on the fake, like `source` but with `changes` (a new configured model
    id is `configuredModel_id`)."""
    setup = next(s for s in fake_admin.state()["setups"] if s["id"] == source)
    model = dict(setup["configuredModel"])
    if "configuredModel_id" in changes:
        model["id"] = changes.pop("configuredModel_id")
    made = {**setup, "id": new_id, "configuredModel": model, "backtestId": 100 + new_id, **changes}
    return fake_admin.put_setup(made)


# -- the mixed set: one project per class of issue 24 ----------------------------------------------
ROUTE = "/api/routes/chap/run"
TOO_LONG_ID = "ou" + "x" * 1100  # one org unit whose id alone makes a read's request line longer than 1,024 bytes


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chap_patch(fake, setup_id: int, **fields) -> None:
    """Edit a setup's schedule fields as the DHIS2 Modeling App does: chap-core's PATCH, through the route."""
    with httpx.Client(base_url=fake.url, auth=(fake.username, fake.password)) as client:
        client.patch(f"{ROUTE}/v1/crud/prediction-setups/{setup_id}", json=fields).raise_for_status()


def seed_mixed(fakes) -> None:
    """The fake main DHIS2's setups beyond its seed (3 monthly model 12, 5 weekly model 7, 8 disabled):
    one per class that needs its own, so that no class leaks into another project."""
    for server in fakes.values():
        server.admin.reset(TODAY)
    main = fakes["main"]
    main.admin.route(responseTimeoutSeconds=60)
    fakes["no_route"].admin.route(code="chap-core", id="Zy0ChapCore")
    admin = main.admin
    copy_setup(admin, 3, 9, configuredModel_id=13, scheduleEnabled=False, scheduleCronExpression=None)
    copy_setup(admin, 3, 11, configuredModel_id=15, startPeriod="201501")
    copy_setup(admin, 3, 12, configuredModel_id=16, orgUnits=["ouDist001", TOO_LONG_ID])
    for setup_id in (20, 21, 23, 24, 25):
        admin.seed_scale(setup_id, "month", org_units=3, covariates=3, periods=40)  # model 30 + id
    admin.faults(data_gaps=[{"dataElement": "D0200000003"}])  # setup 20's third covariate: no data at all
    admin.org_unit("S0210000002", geometry=None)  # setup 21: a district nobody drew
    chap_patch(main, 23, scheduleCronExpression="0 6 * * 1")  # a monthly setup scheduled weekly in chap-core
    copy_setup(admin, 25, 26)  # model 55 has two enabled setups; the project runs only 25


def mixed_projects(fakes) -> dict[str, dict]:
    main, no_route, slow = (fakes[n].url for n in ("main", "no_route", "slow_route"))
    return {
        "good-monthly": project(main, model_id=12, setup_id=3, cron="0 6 2 * *"),
        "good-weekly": project(main, model_id=7, end_mode="calculated", offset=None, cron="0 6 * * 1"),
        "wrong-password": project(main, block="wrong-dhis2", password_env="WRONG_PASSWORD", model_id=12, setup_id=3),
        "missing-password": project(main, block="missing-dhis2", password_env="UNSET_PASSWORD", model_id=12,
                                    setup_id=3),
        "dhis2-down": project(f"http://127.0.0.1:{closed_port()}", block="down-dhis2", model_id=12, setup_id=3),
        "no-route": project(no_route, block="no-route-dhis2", model_id=12, setup_id=3),
        "slow-route": project(slow, block="slow-dhis2", model_id=12, setup_id=3),
        "unknown-model": project(main, model_id=99),
        "runs-none": project(main, model_id=13),
        "no-data": project(main, model_id=50, end_mode="calculated", offset=None),
        "short-history": project(main, model_id=12, setup_id=3, end_mode="fixed", offset=None, end_date="2024-06-30"),
        "no-geometry": project(main, model_id=51),
        "too-long": project(main, model_id=15),
        "too-big": project(main, model_id=16),
        "cadence": project(main, model_id=53, cron="0 6 * * 1"),
        "chap-cron": project(main, model_id=54, cron="0 7 2 * *"),
        "disabled-there": project(main, model_id=12, setup_id=8),
        "enabled-unrun": project(main, model_id=55, setup_id=25),
        "external-block": project(None, block="managed-elsewhere"),
    }


def mixed_env() -> dict[str, str]:
    return {"CHAP_TODAY": TODAY.isoformat(), PASSWORD_ENV: PASSWORD, "WRONG_PASSWORD": "not-the-password",
            "CHAP_DHIS2_MAX_REQUEST_LINE": "1024"}  # the workers' budget, read here as they read it


def secret_forms_of(password: str, username: str) -> set[str]:
    """Every encoding a password travels in (as chapctl's Prefect client scrubs them), alone and as
    HTTP basic auth carries it with the username."""
    from compiler.reconcile.client import secret_forms

    return secret_forms(f"{username}:{password}")
