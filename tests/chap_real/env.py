"""chap-core 2.5.1 in its own environment, built once with uv and cached.

    python = chap_python()            # <test cache>/chap-env/chap-core-<hash>/bin/python
    redis = redis_server_binary(python)

* chap-core needs Python >= 3.13 (the suite runs on 3.11): `find_python313()` looks for one with
  `uv python find` on a PATH without pyenv's shims (a shim for a version pyenv has installed but
  not selected fails instead of being skipped), then under `pyenv root`/versions.
* The environment is pinned by `envs/chap-core.txt` (compiled with hashes from `chap-core.in`;
  `make lock-test-envs` regenerates it) and keyed by the sha256 of that file plus the
  interpreter's version: a warm run reuses it, a changed pin or interpreter builds a new one.
  `.complete` marks a finished build. uv is the one tests/server/server_envs.py finds.
* The chap-core wheel lacks the `config/configured_models/default.yaml` its startup seeding reads
  (the git repository's lists models fetched from GitHub); the build writes an empty list, so the
  seed is chap-core's built-in models and the naive model, which run in-process in seconds.
* Redis: `redis-server` from PATH, else the PyPI package `redis-server` (a prebuilt binary; its
  newest Linux wheels are tagged cp36..cp39, so it goes into `<env>/redis` with `--target`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from tests.cachedir import CACHE_ROOT
from tests.server.server_envs import REPO, _uv, cached_env

PINS = Path(__file__).resolve().parent / "envs" / "chap-core.txt"
CACHE = CACHE_ROOT / "chap-env"
MIN_PYTHON = (3, 13)
REDIS_FALLBACK = "redis-server==6.0.9"


def _run(command: list[str], what: str, **kwargs) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{what} failed: {' '.join(command[:4])}: {last}")
    return proc.stdout.strip()


def find_python313() -> str:
    """A Python >= 3.13 interpreter, or a RuntimeError saying where none was found."""
    wanted = ">=" + ".".join(map(str, MIN_PYTHON))
    no_shims = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p).name != "shims")
    proc = subprocess.run([_uv(), "python", "find", "--system", wanted], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PATH": no_shims})
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    pyenv = shutil.which("pyenv")
    root = Path(_run([pyenv, "root"], "pyenv root") if pyenv else os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    found = []
    for version in (root / "versions").glob("3.*"):
        match = re.fullmatch(r"3\.(\d+)\.(\d+)", version.name)
        binary = version / "bin" / f"python3.{match[1]}" if match else None
        if match and (3, int(match[1])) >= MIN_PYTHON and binary.is_file():
            found.append(((int(match[1]), int(match[2])), str(binary)))
    if found:
        return max(found)[1]
    raise RuntimeError(f"chap-core 2.5.1 needs Python {wanted} and none was found: not by `uv python find {wanted}` "
                       f"(PATH without pyenv shims, uv-managed interpreters) nor under {root / 'versions'}. "
                       "Install one, e.g. `uv python install 3.13`.")


def chap_python() -> Path:
    """The python of the cached chap-core environment, built first when missing or unfinished."""
    interpreter = find_python313()
    version = _run([interpreter, "-c", "import sys; print(sys.version)"], "asking the interpreter its version")
    key = hashlib.sha256(PINS.read_bytes() + version.encode()).hexdigest()[:16]
    return cached_env(CACHE / f"chap-core-{key}", interpreter, PINS, "the chap-core environment", _no_model_downloads)


def _no_model_downloads(python: Path) -> None:
    (site_packages,) = python.parents[1].glob("lib/python3.*/site-packages")
    seed_list = site_packages / "config" / "configured_models" / "default.yaml"
    seed_list.parent.mkdir(parents=True, exist_ok=True)
    seed_list.write_text("# written by tests/chap_real/env.py: no models fetched from GitHub\n[]\n")


def redis_server_binary(python: Path) -> str:
    """`redis-server` from PATH, else the PyPI build installed next to the chap-core environment."""
    if found := shutil.which("redis-server"):
        return found
    target = python.parents[1] / "redis"
    binary = target / "redis_server" / "bin" / "redis-server"
    if not binary.is_file():
        _run([_uv(), "pip", "install", "--quiet", "--target", str(target), "--python-version", "3.9",
              "--python-platform", f"{platform.machine()}-manylinux2014", REDIS_FALLBACK],
             f"installing {REDIS_FALLBACK} (no redis-server on PATH)")
    return str(binary)
