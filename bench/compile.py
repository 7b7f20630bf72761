"""Benchmark: `chapctl compile` on 1,000 generated projects vs parsing the same files with ruamel.yaml.

Both are timed as fresh interpreter processes (interpreter start included), side by side in one
run, best of several repetitions. Targets (docs/design.md §8, issue 2): compile under 2 s, ratio under 2.5.

    uv run python bench/compile.py [--projects 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZONES = ["UTC", "Asia/Vientiane", "Africa/Kigali", "Europe/Oslo", "America/Bogota", "Africa/Freetown"]

RUAMEL_ONLY = """
import sys
from pathlib import Path
from ruamel.yaml import YAML
yaml = YAML(typ="safe", pure=False)
for path in sorted(Path(sys.argv[1], "projects").glob("*.yaml")):
    yaml.compose(path.read_bytes().decode("utf-8"))
"""


def project_text(i: int) -> str:
    """A varied, valid project: every end mode, managed and external blocks, with and without schedule."""
    block = f"instance-{i % 40:02d}"
    lines = [
        "# yaml-language-server: $schema=../schema/project.schema.json",
        f"name: project-{i:04d}",
        f"description: Forecast number {i} for instance {i % 40}",
        "credentials:",
        f"  block: {block}",
    ]
    if i % 10 != 0:  # every tenth project references a block managed elsewhere
        lines += [f"  base_url: https://dhis2-{i % 40:02d}.example.org", "  username: chap-bot",
                  f"  password_env: INSTANCE_{i % 40:02d}_PASSWORD"]
    lines.append(f"model_id: {i % 17 + 1}")
    mode = ("calculated", "fixed", "offset")[i % 3]
    lines.append(f"end_mode: {mode}")
    if mode == "fixed":
        lines.append(f"end_date: 2026-{i % 12 + 1:02d}-15")
    if mode == "offset":
        lines.append(f"end_period_offset: {i % 4}")
    if i % 7 != 0:
        lines += ["schedule:", f'  cron: "{i % 60} {i % 24} * * {i % 7}"', f"  timezone: {ZONES[i % len(ZONES)]}"]
        if i % 11 == 0:
            lines.append("  active: false")
    lines.append(f"tags: [bench, group-{i % 5}]")
    return "\n".join(lines) + "\n"


def make_repo(where: Path, count: int) -> Path:
    (where / "projects").mkdir(parents=True)
    (where / "projects" / "_defaults.yaml").write_text("timezone: UTC\nwork_pool: bench\n")
    for i in range(count):
        (where / "projects" / f"project-{i:04d}.yaml").write_text(project_text(i))
    return where


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # (load warnings)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chapctl-bench-") as tmp:
        repo = make_repo(Path(tmp), args.projects)
        compile_cmd = [sys.executable, "-m", "compiler", "compile", "--root", str(repo)]
        subprocess.run(compile_cmd, check=True, stdout=subprocess.DEVNULL,  # first write + warm caches
                       stderr=subprocess.DEVNULL)
        ruamel_cmd = [sys.executable, "-c", RUAMEL_ONLY, str(repo)]
        compile_times, ruamel_times = [], []
        for _ in range(args.repeat):  # interleaved so both see the same machine load
            compile_times.append(timed(compile_cmd))
            ruamel_times.append(timed(ruamel_cmd))
        best_compile, best_ruamel = min(compile_times), min(ruamel_times)
        ratio = best_compile / best_ruamel
        print(f"projects:                 {args.projects}")
        print(f"chapctl compile (wall):   {best_compile:.3f} s  (best of {args.repeat}; "
              f"median {sorted(compile_times)[len(compile_times) // 2]:.3f} s)")
        print(f"ruamel.yaml parse only:   {best_ruamel:.3f} s  (best of {args.repeat})")
        print(f"ratio compile / parse:    {ratio:.2f}  (target < 2.5)")
        print(f"target compile < 2 s:     {'met' if best_compile < 2 else 'MISSED'}")
        print(f"target ratio < 2.5:       {'met' if ratio < 2.5 else 'MISSED'}")
        return 0 if best_compile < 2 and ratio < 2.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
