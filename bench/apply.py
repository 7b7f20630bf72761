"""Benchmark: `chapctl apply` side by side with `prefect deploy --all`, on one Prefect server as
users install it (no tuning), every target of issue 12 in one run.

    uv run python bench/apply.py [--n 100] [--big 1000] [--backend auto|sqlite|postgres] [--json out.json]

On one fresh server (PostgreSQL when 127.0.0.1:5432 answers, else SQLite; `--backend` to choose):

  reference  `prefect deploy --all` of N generated projects: first (creates), then no-op
  chapctl    first apply of N, its no-op (best of --repeat, median too), one project changed;
             then first apply of BIG projects and its no-op
  refused    `chapctl plan` against a port nothing listens on: time to the error line

No-ops (both tools') are timed once the server's schedulers have created the runs of the new
deployments (`settle`: the flow-run count holds still for 6 s), as a CI no-op meets a server long
after the apply that created them. Both tools start from the same state — block type, block documents, work pool and flow exist,
no deployments. Wall times include interpreter start (both run as CLIs in subprocesses). HTTP
requests are counted client-side: chapctl reports its own (the apply lock and the commit record
included); `prefect deploy` runs under a wrapper that counts every httpx request it sends.
Exit status 1 when a target is missed.
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

from tests.server.prefect_server import PrefectServer, free_port, postgres_available  # noqa: E402
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


def settle(server: PrefectServer, quiet_for: float = 6.0, limit: float = 180.0) -> float:
    """Wait until the server's schedulers have created the runs of new deployments (the count of
    flow runs holds still for `quiet_for` seconds): a no-op in CI runs long after the apply that
    created its deployments, not during the server's burst of run creation. Both tools' no-ops
    are timed on a settled server. Returns the seconds waited."""
    start = time.monotonic()
    last, still_since = None, time.monotonic()
    with server.client() as c:
        while time.monotonic() - start < limit:
            count = c.post("/flow_runs/count", json={}).json()
            if count != last:
                last, still_since = count, time.monotonic()
            elif time.monotonic() - still_since >= quiet_for:
                break
            time.sleep(1.0)
    return time.monotonic() - start


def edit_one(repo: Repo, projects: list[dict], model_id: int, cron: str) -> None:
    doc = dict(projects[0], model_id=model_id)
    doc["schedule"] = dict(doc["schedule"], cron=cron)
    repo.write_project(doc)


TARGETS = {
    "noop_vs_prefect": 100.0,  # no-op apply of N: at least this many times faster than prefect deploy --all
    "noop_big_seconds": 1.5,  # no-op of BIG projects: at most this many seconds
    "noop_big_ratio": 2.5,  # ... and at most this many times the no-op of N
    "first_vs_prefect": 10.0,  # first apply of N: at least this many times faster (PostgreSQL)
    "first_big_seconds": 30.0,  # first apply of BIG projects (PostgreSQL): at most
    "refused_seconds": 2.0,  # an unreachable server: the error within
}


def best_and_median(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return ordered[0], ordered[len(ordered) // 2]


def noop_runs(repo: Repo, env: dict[str, str], repeat: int) -> tuple[float, float, int]:
    times, requests = [], 0
    for _ in range(repeat):
        t, requests, counts = chapctl_apply(repo, env)
        assert counts["created"] == counts["updated"] == counts["deleted"] == 0, counts
        times.append(t)
    best, median = best_and_median(times)
    return best, median, requests


def server_floor(server: PrefectServer, repeat: int) -> float:
    """The server's own time to answer the reads a no-op cannot skip (every page of the owned
    deployments, as chapctl pages them), from an already-warm client in this process: no
    interpreter, no imports, nothing but JSON decoding on our side. What is left of a no-op above it is chapctl's."""
    times = []
    with server.client() as c:
        for _ in range(repeat):
            start, offset = time.perf_counter(), 0
            while True:
                rows = c.post("/deployments/filter", json={
                    "deployments": {"tags": {"all_": ["managed-by:chapctl"]}}, "sort": "NAME_ASC",
                    "limit": 200, "offset": offset}).json()
                if len(rows) < 200:
                    break
                offset += 200
            times.append(time.perf_counter() - start)
    return min(times)


def refused(repo: Repo, env: dict[str, str]) -> float:
    down = dict(env, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "compiler", "plan"], cwd=repo.root, env=down,
                              capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - start)
        assert proc.returncode == 1 and "cannot reach" in proc.stderr, proc.stderr
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--big", type=int, default=1000, help="projects of the large no-op and first apply (0: skip)")
    ap.add_argument("--backend", default="auto", choices=["auto", "sqlite", "postgres"])
    ap.add_argument("--repeat", type=int, default=5, help="no-op runs (best and median reported)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    backend = args.backend if args.backend != "auto" else ("postgres" if postgres_available() else "sqlite")
    # As `make setup` leaves a checkout: chapctl's bytecode compiled (Prefect's is, by uv).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "compiler"), str(ROOT / "flows")], check=True)

    with tempfile.TemporaryDirectory(prefix="chapctl-bench-") as tmp_s:
        tmp = Path(tmp_s)
        projects = generate(args.n)
        repo = Repo.create(tmp / "repo", projects)
        print(f"starting a fresh Prefect server ({backend}, as installed) ...", flush=True)
        with PrefectServer.start(tmp / "server", backend) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env.update(server.client_env(), PREFECT_HOME=str(tmp / "client-home"), CHAPCTL_FLOWS_DIR=str(repo.root),
                       BENCH_DHIS2_PASSWORD=PASSWORD)
            # Common starting point: type, blocks, pool, flow exist (prefect deploy needs the
            # blocks to exist to resolve its block references); facts cache warm; no deployments.
            chapctl_apply(repo, env)
            delete_deployments(server)
            f: dict[str, float | int] = {}

            print(f"prefect deploy --all, {args.n} deployments (first, no-op) ...", flush=True)
            count_file = tmp / "count"
            f["prefect_first_s"], f["prefect_first_requests"] = prefect_deploy(repo, env, count_file)
            settle(server)
            f["prefect_noop_s"], f["prefect_noop_requests"] = prefect_deploy(repo, env, count_file)
            delete_deployments(server)

            print(f"chapctl apply, {args.n} projects (first, no-op x{args.repeat}, one change) ...", flush=True)
            t, r, c = chapctl_apply(repo, env)
            assert c["created"] == args.n, c
            f["first_s"], f["first_requests"] = t, r
            settle(server)
            f["noop_s"], f["noop_median_s"], f["noop_requests"] = noop_runs(repo, env, args.repeat)
            f["floor_s"] = server_floor(server, args.repeat)
            edit_one(repo, projects, 99, "5 5 * * 5")
            t, r, c = chapctl_apply(repo, env)
            assert c["updated"] == 2 and c["created"] == c["deleted"] == 0, c
            f["change_s"], f["change_requests"] = t, r

            if args.big:
                print(f"chapctl apply, {args.big} projects (first, no-op x{args.repeat}) ...", flush=True)
                delete_deployments(server)
                big = Repo.create(tmp / "big", generate(args.big), cache_from=repo.root)
                big_env = dict(env, CHAPCTL_FLOWS_DIR=str(big.root))
                t, r, c = chapctl_apply(big, big_env)
                assert c["created"] >= args.big, c
                f["big_first_s"], f["big_first_requests"] = t, r
                f["settle_big_s"] = settle(server)
                f["big_noop_s"], f["big_noop_median_s"], f["big_noop_requests"] = noop_runs(big, big_env, args.repeat)
                f["big_floor_s"] = server_floor(server, args.repeat)
            f["refused_s"] = refused(repo, env)

    print()
    print(f"N={args.n}, BIG={args.big}, {backend}, one server as installed, 2 cores")
    rows = [
        ("no-op apply, N, vs prefect deploy --all", f"{f['noop_s']:.2f} s (median {f['noop_median_s']:.2f}), "
         f"{f['noop_requests']} rq", f"{f['prefect_noop_s']:.1f} s, {f['prefect_noop_requests']} rq",
         f['prefect_noop_s'] / f['noop_s'], f"≥ {TARGETS['noop_vs_prefect']:g}×",
         f['prefect_noop_s'] / f['noop_s'] >= TARGETS["noop_vs_prefect"]),
        ("first apply, N, vs prefect deploy --all", f"{f['first_s']:.2f} s, {f['first_requests']} rq",
         f"{f['prefect_first_s']:.1f} s, {f['prefect_first_requests']} rq", f['prefect_first_s'] / f['first_s'],
         f"≥ {TARGETS['first_vs_prefect']:g}×", f['prefect_first_s'] / f['first_s'] >= TARGETS["first_vs_prefect"]),
        ("one project changed, N", f"{f['change_s']:.2f} s, {f['change_requests']} rq", "", None, "", True),
    ]
    if args.big:
        ratio = f["big_noop_s"] / f["noop_s"]
        rows += [
            (f"no-op apply, {args.big}", f"{f['big_noop_s']:.2f} s (median {f['big_noop_median_s']:.2f}), "
             f"{f['big_noop_requests']} rq", f"no-op of N: {f['noop_s']:.2f} s", ratio,
             f"≤ {TARGETS['noop_big_seconds']:g} s and ≤ {TARGETS['noop_big_ratio']:g}×",
             f["big_noop_s"] <= TARGETS["noop_big_seconds"] and ratio <= TARGETS["noop_big_ratio"]),
            (f"  of which the server's own reads, {args.big}", f"{f['big_floor_s']:.2f} s (N: {f['floor_s']:.2f} s)",
             "", None, "", True),
            (f"first apply, {args.big}", f"{f['big_first_s']:.1f} s, {f['big_first_requests']} rq", "", None,
             f"≤ {TARGETS['first_big_seconds']:g} s", f["big_first_s"] <= TARGETS["first_big_seconds"]),
        ]
    rows.append(("error for a refused connection", f"{f['refused_s']:.2f} s", "", None,
                 f"≤ {TARGETS['refused_seconds']:g} s", f["refused_s"] <= TARGETS["refused_seconds"]))
    print(f"{'measure':<42}{'chapctl':<34}{'reference':<28}{'ratio':>8}  {'target':<24}")
    for name, mine, ref, ratio, target, ok in rows:
        shown = f"{ratio:.1f}×" if ratio is not None else ""
        print(f"{name:<42}{mine:<34}{ref:<28}{shown:>8}  {target:<24}{'' if not target else ('ok' if ok else 'MISS')}")
    checks = {name: ok for name, _m, _r, _x, target, ok in rows if target}
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "big": args.big, "backend": backend, **f, "checks": checks},
                                        indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
