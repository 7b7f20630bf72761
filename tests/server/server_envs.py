"""Other Prefect releases to run a server from, each in its own environment built once and cached.

    bin = prefect_binary("3.8.8")   # <test cache>/server-envs/prefect-3.8.8-<hash>/bin/prefect

The environment is pinned by `tests/server/envs/prefect-<version>.txt` (compiled with hashes from
`prefect-<version>.in`; `make lock-test-envs` regenerates it) and built with uv into
`<test cache>/server-envs/`, keyed by the sha256 of that file: a warm run reuses it, a changed pin
builds a new one. uv is the one `make` bootstrapped (`$UV`), else the one on PATH.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from tests.cachedir import CACHE_ROOT

REPO = Path(__file__).resolve().parents[2]
ENVS = Path(__file__).resolve().parent / "envs"
CACHE = CACHE_ROOT / "server-envs"
OTHER_VERSIONS = ("3.8.8",)  # besides the locked one (uv.lock)


def _uv() -> str:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(REPO / ".tools" / "bin" / "uv")):
        if candidate and (Path(candidate).is_file() or shutil.which(candidate)):
            return candidate
    raise RuntimeError("uv is needed to build the Prefect test environments: run `make setup` first")


def cached_env(home: Path, interpreter: str, pins: Path, what: str,
               finish: Callable[[Path], None] | None = None) -> Path:
    """The python of the environment at `home`, built first (then `finish(python)`, then marked
    complete) when it is missing or unfinished; under an exclusive lock, so that concurrent callers
    wait for one build instead of deleting each other's half-built environment."""
    python = home / "bin" / "python"
    if (home / ".complete").is_file() and python.is_file():
        return python
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ((home / ".complete").is_file() and python.is_file()):  # another process built it meanwhile
            build_env(home, interpreter, pins, what)
            if finish:
                finish(python)
            (home / ".complete").write_text(what)
    return python


def build_env(home: Path, interpreter: str, pins: Path, what: str) -> Path:
    """A fresh virtual environment at `home` from `interpreter` with exactly `pins` installed
    (bytecode compiled); its python. The caller writes `home/.complete` once its own steps are done."""
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIRTUAL_ENV": str(home)}
    python = home / "bin" / "python"
    for command in ([_uv(), "venv", "--quiet", "--python", interpreter, str(home)],
                    [_uv(), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python), "-r", str(pins)]):
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"building {what} failed: {' '.join(command[:3])}: "
                               + (proc.stderr.strip().splitlines() or ["(no output)"])[-1])
    return python


def prefect_binary(version: str) -> Path:
    pins = ENVS / f"prefect-{version}.txt"
    if not pins.is_file():
        raise RuntimeError(f"no pinned environment for Prefect {version}: {pins} is missing")
    key = hashlib.sha256(pins.read_bytes() + sys.version.encode()).hexdigest()[:16]
    python = cached_env(CACHE / f"prefect-{version}-{key}", sys.executable, pins, f"the Prefect {version} environment")
    return python.parent / "prefect"
