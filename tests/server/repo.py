"""Build small chapctl repositories in temp dirs: flows/ from this checkout,
projects written from dicts, artifacts compiled with the real compiler."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[2]
DEFAULTS = {"timezone": "UTC", "work_pool": "chap-test", "tags": ["chap"], "source": {"directory_env": "CHAPCTL_FLOWS_DIR"}}


def project(name: str, block: str = "laos-dhis2", *, managed: bool = True, model_id: int = 12,
            cron: str | None = "0 6 * * 1", timezone: str = "Asia/Vientiane", active: bool = True,
            password_env: str | None = None, base_url: str | None = None, **extra: Any) -> dict[str, Any]:
    creds: dict[str, Any] = {"block": block}
    if managed:
        creds.update(
            base_url=base_url or f"https://{block}.example.org",
            username="chap-bot",
            password_env=password_env or block.upper().replace("-", "_") + "_PASSWORD",
        )
    doc: dict[str, Any] = {"name": name, "description": f"Forecast {name}", "credentials": creds, "model_id": model_id,
                           "end_mode": "offset", "end_period_offset": 1}
    if cron:
        doc["schedule"] = {"cron": cron, "timezone": timezone, "active": active}
    doc.update(extra)
    return doc


class Repo:
    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def create(cls, root: Path, projects: list[dict[str, Any]], defaults: dict[str, Any] | None = None,
               cache_from: Path | None = None) -> Repo:
        root.mkdir(parents=True, exist_ok=True)
        for folder in ("flows", "schema"):
            if (SOURCE / folder).is_dir():
                shutil.copytree(SOURCE / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"),
                                dirs_exist_ok=True)
        (root / "projects").mkdir(exist_ok=True)
        if cache_from is not None and (cache_from / ".chapctl").is_dir():
            shutil.copytree(cache_from / ".chapctl", root / ".chapctl", dirs_exist_ok=True)
        repo = cls(root)
        repo.write_defaults(defaults if defaults is not None else DEFAULTS)
        for p in projects:
            repo.write_project(p, compile=False)
        repo.compile()
        return repo

    def write_defaults(self, defaults: dict[str, Any]) -> None:
        (self.root / "projects" / "_defaults.yaml").write_text(json.dumps(defaults, indent=2) + "\n")

    def write_project(self, doc: dict[str, Any], compile: bool = True) -> None:
        (self.root / "projects" / f"{doc['name']}.yaml").write_text(json.dumps(doc, indent=2) + "\n")
        if compile:
            self.compile()

    def remove_project(self, name: str) -> None:
        (self.root / "projects" / f"{name}.yaml").unlink()
        self.compile()

    def compile(self) -> None:
        from compiler.compile import build

        compiled = build.compile_repo(self.root)
        build.write(self.root, compiled.artifacts)
