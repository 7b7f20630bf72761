"""The pull step of a deployment whose flow comes from the installed chapctl package
(`source: {package: chapctl}` in projects/_defaults.yaml; its entrypoint is the module
`flows.dhis2_chap_prediction`). Prefect runs it on the worker, in the flow run's process, before
it imports the flow:

    pull:
    - flows.installed.require_chapctl:
        version: 0.1.0

It fails the run, with the fix, when the worker's chapctl is not the release the repository was
compiled with, or when the `flows` package it would import is not that installed chapctl's (a
`flows/` folder in the worker's working directory shadows it). Imports nothing heavy."""

from __future__ import annotations

import logging
import os
from pathlib import Path


class WrongChapctl(RuntimeError):
    """The worker cannot run this deployment's flow as the repository pinned it."""


def require_chapctl(version: str) -> dict[str, str]:
    """Check that this process imports the flow of chapctl `version`; return what it runs."""
    import compiler
    import flows

    installed = getattr(compiler, "__version__", None)
    package = Path(compiler.__file__).resolve().parent.parent
    flows_home = Path(flows.__file__).resolve().parent.parent
    if installed != str(version):
        raise _refused(
            f"this deployment runs the flow of chapctl {version} (prefect.yaml's pull step, compiled by chapctl "
            f"{version}); this worker has chapctl {installed or 'of unknown version'} ({package}): install "
            f"`chapctl=={version}` into the worker's environment (pip install 'chapctl=={version}') and restart the "
            "worker, or compile and apply the repository with the chapctl the workers have")
    if flows_home != package:
        raise _refused(
            f"the flow would be imported from {flows_home / 'flows'}, not from the installed chapctl {installed} "
            f"({package / 'flows'}): start the worker from a directory without a `flows/` folder")
    return {"chapctl_version": installed, "flows_package": str(package / "flows")}


def _refused(message: str) -> WrongChapctl:
    """The refusal, also written to the flow run's own logs: Prefect 3.9 runs pull steps in a
    supervisor process that prints a failed step's exception on the worker's output only, so the
    run would show "Crashed" in the UI without the reason."""
    run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if run_id:
        logging.getLogger("prefect.flow_runs").error(message, extra={"flow_run_id": run_id})
    return WrongChapctl(message)
