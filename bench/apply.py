"""Benchmark: `prefect deploy --all` vs `chapctl apply` on one freshly started Prefect server.

    uv run python bench/apply.py [--n 100] [--backend sqlite|postgres] [--json out.json]

Both tools start from the same state — block type, block documents, work pool and flow exist, no
deployments — and deploy the same compiled `prefect.yaml` of N generated projects:

  first   every deployment created
  no-op   nothing changed
  change  one project edited (model id and cron)

Wall times include interpreter start (both run as CLIs in subprocesses). HTTP requests are
counted client-side: chapctl reports its own; `prefect deploy` runs under a wrapper that counts
every httpx request it sends. Targets (docs/design.md §8): no-op ≥ 50× faster with a request count
independent of N, first apply ≥ 5× faster. Exit status 1 when a target is missed.

Server setting (applies to both tools): the server runs with `PYTHONTZPATH=` (empty), so
`zoneinfo` reads the `tzdata` package instead of walking /usr/share/zoneinfo. Prefect 3.8.8's
`CronSchedule` validator calls `zoneinfo.available_timezones()` — a directory walk, ~6 ms here —
every time it loads or returns a schedule, which makes any bulk read of 100 deployments cost
~1.3 s of server CPU. `--default-tz` benchmarks the server as installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.prefect_server import PrefectServer  # noqa: E402
from tests.server.repo import Repo, project  # noqa: E402

PASSWORD = "bench-secret-do-not-print"

COUNTING_DEPLOY = r"""
import atexit, os, sys
import httpx
count = [0]
_send = httpx.Client.send
_asend = httpx.AsyncClient.send
def send(self, *a, **k):
    count[0] += 1
    return _send(self, *a, **k)
async def asend(self, *a, **k):
    count[0] += 1
    return await _asend(self, *a, **k)
httpx.Client.send = send
httpx.AsyncClient.send = asend
atexit.register(lambda: open(os.environ["BENCH_COUNT_FILE"], "w").write(str(count[0])))
from prefect.cli import app
sys.argv = ["prefect", "--no-prompt", "deploy", "--all"]
app()
"""


def generate(n: int) -> list[dict]:
    blocks = max(1, n // 10)
    return [
        project(f"country-{i:03d}", f"dhis2-{i % blocks:02d}", model_id=1 + i % 17,
                cron=f"{i % 60} {i % 24} * * {i % 7}", timezone="UTC", password_env="BENCH_DHIS2_PASSWORD")
        for i in range(n)
    ]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd[:4])} failed with {proc.returncode}")
    return elapsed, proc


def prefect_deploy(repo: Repo, env: dict[str, str], count_file: Path) -> tuple[float, int]:
    elapsed, _ = run([sys.executable, "-c", COUNTING_DEPLOY], repo.root, {**env, "BENCH_COUNT_FILE": str(count_file)})
    return elapsed, int(count_file.read_text())


def chapctl_apply(repo: Repo, env: dict[str, str]) -> tuple[float, int, dict]:
    elapsed, proc = run([sys.executable, "-m", "compiler", "apply", "--json"], repo.root, env)
    doc = json.loads(proc.stdout)
    return elapsed, doc["requests"] + doc.get("lock_and_record_requests", 0), doc["counts"]


def delete_deployments(server: PrefectServer) -> None:
    with server.client() as c:
        while rows := c.post("/deployments/filter", json={"limit": 200}).json():
            for d in rows:
                c.delete(f"/deployments/{d['id']}")


def edit_one(repo: Repo, projects: list[dict], model_id: int, cron: str) -> None:
    doc = dict(projects[0], model_id=model_id)
    doc["schedule"] = dict(doc["schedule"], cron=cron)
    repo.write_project(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--default-tz", action="store_true",
                    help="run the server without PYTHONTZPATH= (slow bulk reads of schedules, see above)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="chapctl-bench-") as tmp_s:
        tmp = Path(tmp_s)
        projects = generate(args.n)
        repo = Repo.create(tmp / "repo", projects)
        print(f"starting a fresh Prefect server ({args.backend}) ...", flush=True)
        server_env = {} if args.default_tz else {"PYTHONTZPATH": ""}
        with PrefectServer.start(tmp / "server", args.backend, extra_env=server_env) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env.update(server.client_env(), PREFECT_HOME=str(tmp / "client-home"), CHAPCTL_FLOWS_DIR=str(repo.root),
                       BENCH_DHIS2_PASSWORD=PASSWORD)
            # Common starting point: type, blocks, pool, flow exist (prefect deploy needs the
            # blocks to exist to resolve its block references); facts cache warm; no deployments.
            chapctl_apply(repo, env)
            delete_deployments(server)
            results: dict[str, dict] = {"prefect": {}, "chapctl": {}}

            print(f"prefect deploy --all, {args.n} deployments ...", flush=True)
            count_file = tmp / "count"
            results["prefect"]["first"] = prefect_deploy(repo, env, count_file)
            results["prefect"]["noop"] = prefect_deploy(repo, env, count_file)
            edit_one(repo, projects, 99, "5 5 * * 5")
            results["prefect"]["change"] = prefect_deploy(repo, env, count_file)

            edit_one(repo, projects, projects[0]["model_id"], projects[0]["schedule"]["cron"])
            delete_deployments(server)
            print(f"chapctl apply, {args.n} projects ...", flush=True)
            t, r, c = chapctl_apply(repo, env)
            assert c["created"] == args.n, c
            results["chapctl"]["first"] = (t, r)
            t, r, c = chapctl_apply(repo, env)
            assert c["created"] == c["updated"] == c["deleted"] == 0, c
            results["chapctl"]["noop"] = (t, r)
            edit_one(repo, projects, 99, "5 5 * * 5")
            t, r, c = chapctl_apply(repo, env)
            assert c["updated"] == 2 and c["created"] == c["deleted"] == 0, c
            results["chapctl"]["change"] = (t, r)

            # O(1): the no-op request count for a tenth of the projects must be the same.
            small = Repo.create(tmp / "small", projects[: max(1, args.n // 10)])
            delete_deployments(server)
            small_env = dict(env, CHAPCTL_FLOWS_DIR=str(small.root))
            chapctl_apply(small, small_env)
            _, small_noop_requests, _ = chapctl_apply(small, small_env)

    print()
    print(f"N={args.n}, {args.backend}, server {'as installed' if args.default_tz else 'with PYTHONTZPATH='}")
    print(f"{'run':<8}{'prefect deploy --all':>26}{'chapctl apply':>22}{'speed-up':>11}{'requests':>16}")
    figures = {}
    for phase in ("first", "noop", "change"):
        (pt, pr), (ct, cr) = results["prefect"][phase], results["chapctl"][phase]
        figures[phase] = {"prefect_s": round(pt, 3), "prefect_requests": pr, "chapctl_s": round(ct, 3),
                          "chapctl_requests": cr, "speedup": round(pt / ct, 1), "request_ratio": round(pr / max(cr, 1), 1)}
        print(f"{phase:<8}{pt:>17.2f} s {pr:>5} rq{ct:>13.2f} s {cr:>4} rq{pt / ct:>10.1f}×{pr / max(cr, 1):>14.1f}×")
    figures["noop_requests_n_over_10"] = small_noop_requests
    print(f"\nno-op requests: {figures['noop']['chapctl_requests']} for N={args.n}, "
          f"{small_noop_requests} for N={max(1, args.n // 10)}")
    checks = {
        "no-op ≥ 50× faster": figures["noop"]["speedup"] >= 50,
        "no-op requests independent of N": figures["noop"]["chapctl_requests"] == small_noop_requests,
        "first apply ≥ 5× faster": figures["first"]["speedup"] >= 5,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "backend": args.backend, **figures, "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
