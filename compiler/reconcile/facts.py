"""What only an imported Prefect can tell: the flow's parameter schema, the block type/schema
registration payload, the process work pool's default job template.

`import prefect` costs seconds, so these facts are computed in a subprocess on a cache miss and
kept under `<root>/.chapctl/cache/`, keyed by the sha256 of every `flows/**/*.py` source, the
entrypoints and block slugs asked for, and the installed Prefect and Python versions. A warm
cache means plan/apply never import prefect (tested with `python -X importtime`).

The flow code is the repository's own `flows/` when it has one (this checkout, a fork), else the
installed chapctl's (a repository that holds only projects/, `source: {package: chapctl}`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.cachedir import cache_dir, store
from compiler.errors import ApplyRefused

FORMAT = 1  # bump when the shape of the cached document changes
PACKAGE_HOME = Path(__file__).resolve().parents[2]  # the folder holding this chapctl's `compiler/` and `flows/`


def flows_home(root: Path) -> Path:
    """The folder whose `flows/` plan and apply read the flow from: the repository's own, else the
    installed chapctl's."""
    return root if (root / "flows").is_dir() else PACKAGE_HOME


@dataclass(frozen=True)
class FlowFacts:
    entrypoint: str
    flow_name: str
    parameter_openapi_schema: dict[str, Any]


@dataclass(frozen=True)
class BlockTypeFacts:
    slug: str
    block_type: dict[str, Any]  # name, slug, logo_url, documentation_url, description, code_example
    block_schema: dict[str, Any]  # fields, checksum, capabilities, version
    secret_fields: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    prefect_version: str
    flows: dict[str, FlowFacts]  # by entrypoint
    block_types: dict[str, BlockTypeFacts]  # by slug
    process_base_job_template: dict[str, Any]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Facts:
        return cls(
            prefect_version=doc["prefect_version"],
            flows={k: FlowFacts(**v) for k, v in doc["flows"].items()},
            block_types={
                k: BlockTypeFacts(
                    slug=v["slug"],
                    block_type=v["block_type"],
                    block_schema=v["block_schema"],
                    secret_fields=tuple(v["secret_fields"]),
                )
                for k, v in doc["block_types"].items()
            },
            process_base_job_template=doc["process_base_job_template"],
        )


def load_facts(root: Path, entrypoints: list[str], block_slugs: list[str]) -> Facts:
    """Facts for these entrypoints and block types, from the cache or a fresh subprocess."""
    entrypoints = sorted(set(entrypoints))
    block_slugs = sorted(set(block_slugs))
    key = cache_key(root, entrypoints, block_slugs)
    path = cache_dir(root) / f"prefect-facts-{key[:32]}.json"
    try:
        return Facts.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    doc = _compute(root, entrypoints, block_slugs)
    store(path, json.dumps(doc, sort_keys=True, indent=1))
    return Facts.from_json(doc)


def cache_key(root: Path, entrypoints: list[str], block_slugs: list[str]) -> str:
    from compiler.installed import version

    prefect_version = version("prefect") or "none"
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, prefect_version, sys.version_info[:2], entrypoints, block_slugs]).encode())
    home = flows_home(root)
    flows = home / "flows"
    for source in sorted(flows.rglob("*.py")) if flows.is_dir() else []:
        h.update(source.relative_to(home).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(source.read_bytes()).digest())
    return h.hexdigest()


def _compute(root: Path, entrypoints: list[str], block_slugs: list[str]) -> dict[str, Any]:
    home = flows_home(root)
    for ep in entrypoints:
        file = ep.split(":", 1)[0]
        if ":" in ep and not (home / file).is_file():  # a module path (`flows.x.f`) is imported, not read
            raise ApplyRefused(f"flow entrypoint {ep}: {file} does not exist in {home}")
    # chapctl's own package first (the probe is a module of it), then the flows' folder.
    here = str(PACKAGE_HOME)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, str(home), os.environ.get("PYTHONPATH")]))}
    env.pop("PREFECT_API_URL", None)  # computing schemas must never talk to a server
    proc = subprocess.run(
        [sys.executable, "-m", "compiler.reconcile.facts_probe", str(home), json.dumps(entrypoints),
         json.dumps(block_slugs)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        if lines and "error" in (err := json.loads(lines[-1])):
            raise ApplyRefused(err["error"])
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ApplyRefused(f"could not import the flows in {home / 'flows'} to read their schemas: {tail}")
    return json.loads(lines[-1])
