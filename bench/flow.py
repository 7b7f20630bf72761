"""Benchmark: the prediction flow's data phase at national scale, against the fake DHIS2 with
DHIS2's limits on, side by side with the floor: the fake serving the same records in one read.

    uv run python bench/flow.py [--repeat 3] [--strict] [--json out.json]

One fake DHIS2 (`python -m tests.fake_dhis2`, limits on: 50,000 records with 409 E7128, 414 past
an 8 KB request line) holds two national setups (issue 22):

  700      700 districts, weekly, 4 covariates, 114 weeks
  2000     2,000 facilities, monthly, 3 covariates, 60 months

flow   A fresh process runs the flow's own data phase (`_prepare_request`, each step's function
       without Prefect's task engine): the end-period probe, the analytics reads, the org-unit read
       and the request body, under the flow's default read budget. Timed inside the process from
       the first read to the finished body (interpreter start and imports excluded). Then the body
       is encoded as the POST would send it (its size is printed; not timed, but in the peak
       memory, ru_maxrss, of the process).
floor  A fresh process (httpx alone) with the fake's limits off: one GET of the same analytics
       (every covariate, input period and org unit of the setup in one read, `skipMeta`,
       `skipRounding`) and one org-unit read, each answer parsed as JSON.

Best of --repeat runs each, interleaved. Targets (2 cores): the 700 case's data phase within 2×
its floor and its peak memory under 400 MB; the 2000 case's time per analytics record read no
worse than 1.5× the 700 case's. Prints ok/MISS per target; exit status 1 on a miss only with --strict.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

USER, PASSWORD = "admin", "district"
# name: (setup id, period type, org units, covariates, periods)
CASES = {"700": (20, "week", 700, 4, 114), "2000": (21, "month", 2000, 3, 60)}
TARGETS = {"floor_ratio": 2.0, "peak_mb": 400.0, "per_record_ratio": 1.5}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- the measured processes


def child_flow(url: str, setup_id: int) -> dict[str, Any]:
    """The flow's data phase, as `_predict` runs it, in this fresh process."""
    from dataclasses import replace
    from datetime import date

    from prefect.utilities.annotations import BaseAnnotation

    from flows.api import ChapApi, Dhis2Api
    from flows.blocks import Dhis2Credentials
    from flows.dhis2_chap_prediction import _prepare_request
    from flows.report import SetupOutcome
    from flows.run_config import check_end, read_settings
    from flows.setups import parse_setup

    credentials = Dhis2Credentials(base_url=url, username=USER, password=PASSWORD)
    settings = replace(read_settings(os.environ, date.today()), run_token="bench000")

    def step(task: Any, *args: Any, **kwargs: Any) -> Any:  # the task's own function, as its engine calls it
        return task.fn(*(a.unwrap() if isinstance(a, BaseAnnotation) else a for a in args), **kwargs)

    with credentials.dhis2_client() as dhis2_http, credentials.chap_client() as chap_http:
        item = next(item for item in map(parse_setup, ChapApi(chap_http).prediction_setups())
                    if item.setup is not None and item.setup.id == setup_id)
        outcome = SetupOutcome.for_item(item)
        before = _peak_mb()
        start = time.perf_counter()
        body = _prepare_request(item.setup, outcome, step, check_end("calculated", None, None), settings,
                                Dhis2Api(dhis2_http))
        seconds = time.perf_counter() - start
    sent = len(httpx.Request("POST", url, json=body).content)  # as `ChapApi.run_setup` encodes it
    reads = outcome.reads
    return {"seconds": seconds, "peak_mb": _peak_mb(), "imports_mb": before, "reads": reads.reads,
            "refused": reads.refused, "records": reads.records, "bytes": reads.bytes, "body_bytes": sent,
            "observations": outcome.observations, "periods": outcome.input_periods, "org_units": item.setup.org_units,
            "data_elements": item.setup.data_elements}


def child_floor(url: str, spec_file: str) -> dict[str, Any]:
    """One unlimited analytics read of the same records and one org-unit read, parsed."""
    spec = json.loads(Path(spec_file).read_text())
    analytics = [("dimension", "dx:" + ";".join(spec["data_elements"])), ("dimension", "pe:" + ";".join(spec["periods"])),
                 ("dimension", "ou:" + ";".join(spec["org_units"])), ("skipMeta", "true"), ("skipRounding", "true")]
    units = [("filter", "id:in:[" + ",".join(spec["org_units"]) + "]"),
             ("fields", "id,geometry,parent[id],level,displayName,code"), ("paging", "false")]
    with httpx.Client(base_url=url, auth=(USER, PASSWORD), timeout=600) as client:
        client.get("/api/system/info").raise_for_status()  # the connection is open before timing, as in the flow
        start = time.perf_counter()
        answer = client.get("/api/analytics", params=analytics)
        answer.raise_for_status()
        rows = answer.json()["rows"]
        geometry = client.get("/api/organisationUnits", params=units)
        geometry.raise_for_status()
        found = geometry.json()["organisationUnits"]
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": _peak_mb(), "records": len(rows), "org_units": len(found),
            "bytes": len(answer.content) + len(geometry.content)}


# ---------------------------------------------------------------- the bench


def _measure(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"bench/flow.py {argv[0]} failed with {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _start_fake(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_dhis2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            text=True)
    url = fake.stdout.readline().strip() if fake.stdout else ""
    if not url.startswith("http"):
        fake.kill()
        raise SystemExit("the fake DHIS2 did not start")
    return fake, url


def _admin(url: str, method: str, action: str, body: Any = None) -> Any:
    answer = httpx.request(method, f"{url}/__fake__{action}", json=body, timeout=60)
    answer.raise_for_status()
    return answer.json()


def run(repeat: int, cases: list[str]) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="chapctl-bench-flow-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHAP_", "FAKE_DHIS2_"))}
        env.update(PREFECT_HOME=str(Path(tmp) / "prefect-home"), PYTHONPATH=str(ROOT))
        fake, url = _start_fake(env)
        try:
            limits = _admin(url, "GET", "/limits")
            for name in cases:
                setup_id, period_type, units, covariates, n_periods = CASES[name]
                _admin(url, "POST", "/scale", {"id": setup_id, "periodType": period_type, "orgUnits": units,
                                               "covariates": covariates, "periods": n_periods})
            results: dict[str, dict[str, Any]] = {name: {"flow": [], "floor": []} for name in cases}
            for rep in range(repeat):  # interleaved: flow and floor see the same machine load
                for name in cases:
                    print(f"run {rep + 1}/{repeat}, {name}: flow ...", end="", flush=True)
                    _admin(url, "DELETE", "/requests")
                    flow = _measure(["--child-flow", url, str(CASES[name][0])], env)
                    spec = Path(tmp) / f"spec-{name}.json"
                    spec.write_text(json.dumps({k: flow.pop(k) for k in ("periods", "org_units", "data_elements")}))
                    print(f" {flow['seconds']:.2f} s; floor ...", end="", flush=True)
                    _admin(url, "POST", "/limits", {"max_records": None, "max_request_line": None})
                    try:
                        floor = _measure(["--child-floor", url, str(spec)], env)
                    finally:
                        _admin(url, "POST", "/limits", limits)
                    print(f" {floor['seconds']:.2f} s", flush=True)
                    results[name]["flow"].append(flow)
                    results[name]["floor"].append(floor)
        finally:
            fake.terminate()
            fake.wait(timeout=30)
    return results


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the highest peak memory of all runs (and the median time)."""
    fastest = min(runs, key=lambda r: r["seconds"])
    return {**fastest, "peak_mb": max(r["peak_mb"] for r in runs),
            "median_s": sorted(r["seconds"] for r in runs)[len(runs) // 2]}


def report(results: dict[str, dict[str, Any]], repeat: int) -> tuple[list[tuple[str, str, bool]], dict[str, Any]]:
    figures = {name: {"flow": best(r["flow"]), "floor": best(r["floor"])} for name, r in results.items()}
    print()
    print(f"data phase against the fake DHIS2 (limits on; floor: limits off, one read), best of {repeat}, "
          f"{os.cpu_count()} cores")
    header = (f"{'case':<34}{'data phase':>12}{'median':>9}{'floor':>9}{'ratio':>7}{'peak MB':>9}{'reads':>7}"
              f"{'records':>10}{'MB read':>9}{'µs/rec':>8}{'body MB':>9}")
    print(header)
    for name, f in figures.items():
        flow, floor = f["flow"], f["floor"]
        _, period_type, units, covariates, n_periods = CASES[name]
        label = f"{units:,} org units, {period_type}ly, {covariates}×{n_periods}"
        f["ratio"] = flow["seconds"] / floor["seconds"]
        f["us_per_record"] = flow["seconds"] / flow["records"] * 1e6
        print(f"{label:<34}{flow['seconds']:>10.2f} s{flow['median_s']:>7.2f} s{floor['seconds']:>7.2f} s"
              f"{f['ratio']:>6.2f}×{flow['peak_mb']:>9.0f}{flow['reads']:>7}{flow['records']:>10,}"
              f"{flow['bytes'] / 1e6:>9.1f}{f['us_per_record']:>8.1f}{flow['body_bytes'] / 1e6:>9.1f}")
        print(f"{'  floor: one read, limits off':<34}{'':>12}{'':>9}{floor['seconds']:>7.2f} s{'':>7}"
              f"{floor['peak_mb']:>9.0f}{2:>7}{floor['records']:>10,}{floor['bytes'] / 1e6:>9.1f}")
        if flow["refused"]:
            print(f"  ({flow['refused']} reads refused by the fake's limits and halved)")
    print(f"(peak MB: the process's ru_maxrss; the flow's is {figures[next(iter(figures))]['flow']['imports_mb']:.0f} MB "
          "after its imports, before any read. records: analytics records read, the end-period probe's included)")
    checks: list[tuple[str, str, bool]] = []
    if "700" in figures:
        f = figures["700"]
        checks.append((f"700: data phase ≤ {TARGETS['floor_ratio']:g}× its floor", f"{f['ratio']:.2f}×",
                       f["ratio"] <= TARGETS["floor_ratio"]))
        checks.append((f"700: peak memory < {TARGETS['peak_mb']:g} MB", f"{f['flow']['peak_mb']:.0f} MB",
                       f["flow"]["peak_mb"] < TARGETS["peak_mb"]))
    if "700" in figures and "2000" in figures:
        ratio = figures["2000"]["us_per_record"] / figures["700"]["us_per_record"]
        checks.append((f"2000: time per record ≤ {TARGETS['per_record_ratio']:g}× the 700 case's", f"{ratio:.2f}×",
                       ratio <= TARGETS["per_record_ratio"]))
    print()
    for name, shown, ok in checks:
        print(f"{name:<48}{shown:>10}  {'ok' if ok else 'MISS'}")
    return checks, figures


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-flow":
        print(json.dumps(child_flow(sys.argv[2], int(sys.argv[3]))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-floor":
        print(json.dumps(child_floor(sys.argv[2], sys.argv[3])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measure (best and median reported)")
    ap.add_argument("--cases", default="700,2000", help="which cases, comma-separated (700, 2000)")
    ap.add_argument("--strict", action="store_true", help="exit status 1 when a target is missed")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := set(cases) - set(CASES):
        ap.error(f"unknown case(s) {sorted(unknown)}; choose from {sorted(CASES)}")
    # As `make setup` leaves a checkout: chapctl's bytecode compiled (Prefect's is, by uv).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "flows")], check=True)
    checks, figures = report(run(max(1, args.repeat), cases), args.repeat)
    if args.json:
        args.json.write_text(json.dumps({"repeat": args.repeat, **figures,
                                         "checks": {name: ok for name, _, ok in checks}}, indent=2))
    return 1 if args.strict and not all(ok for _, _, ok in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
