"""The program `compiler.reconcile.facts` runs in a subprocess: import Prefect and the repository's
`flows/` once, and print the facts only they can tell as one JSON line on stdout.

    python -m compiler.reconcile.facts_probe ROOT '["flows/x.py:flow"]' '["chap-dhis2-credentials"]'

Kept apart so that chapctl itself never imports prefect (seconds of start-up) on its fast paths;
its output is cached by `facts.load_facts`. An unknown block slug prints {"error": ...}, exit 3.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from typing import Any


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out += _subclasses(sub)
    return out


def probe(root: str, entrypoints: list[str], slugs: list[str]) -> dict[str, Any]:
    sys.path.insert(0, root)
    from importlib.metadata import version

    from prefect.blocks.core import Block
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema
    from prefect.workers.process import ProcessWorker

    out: dict[str, Any] = {"prefect_version": version("prefect"), "flows": {}, "block_types": {}}
    for ep in entrypoints:
        flow = load_flow_from_entrypoint(ep)
        out["flows"][ep] = {
            "entrypoint": ep,
            "flow_name": flow.name,
            "parameter_openapi_schema": parameter_schema(flow).model_dump(mode="json", exclude_unset=True),
        }
    # Import every module of the flows package so every Block subclass it defines is known.
    import flows

    for info in pkgutil.walk_packages(flows.__path__, "flows."):
        importlib.import_module(info.name)
    import prefect.blocks.notifications  # noqa: F401 (Prefect's own notification blocks, for `alerts`)
    found: dict[str, type] = {}
    for cls in _subclasses(Block):
        try:
            found.setdefault(cls.get_block_type_slug(), cls)
        except Exception:  # an abstract or broken Block subclass: not one of ours
            pass
    for slug in slugs:
        cls = found.get(slug)
        if cls is None:
            return {"error": f"no Block class with slug {slug!r} in flows/ or Prefect's notification blocks"}
        block_type = cls._to_block_type()
        schema = cls._to_block_schema(block_type_id=block_type.id)
        out["block_types"][slug] = {
            "slug": slug,
            "block_type": block_type.model_dump(mode="json", include={
                "name", "slug", "logo_url", "documentation_url", "description", "code_example"}),
            "block_schema": schema.model_dump(mode="json", include={"fields", "checksum", "capabilities", "version"}),
            "secret_fields": list(schema.fields.get("secret_fields", [])),
        }
    out["process_base_job_template"] = ProcessWorker.get_default_base_job_template()
    return out


def main(argv: list[str]) -> int:
    root, entrypoints, slugs = argv[0], json.loads(argv[1]), json.loads(argv[2])
    facts = probe(root, entrypoints, slugs)
    print(json.dumps(facts))
    return 3 if "error" in facts else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
