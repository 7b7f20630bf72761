"""A deployment run the way a worker does it: a separate `python -m prefect.engine` process
that loads the entrypoint from the repository root and resolves the credentials block reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.blocks import Dhis2Credentials
from tests.fake_dhis2 import FakeAdmin
from tests.flows.helpers import DEFAULT_TODAY, PASSWORD, USERNAME, artifact_of

pytestmark = pytest.mark.flows

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = "flows/dhis2_chap_prediction.py:dhis2_chap_prediction"


def test_deployment_run_in_a_worker_process(fake: FakeAdmin, prefect_api: str, fake_server, tmp_path: Path) -> None:
    block_id = Dhis2Credentials(base_url=fake_server.url, username=USERNAME, password=PASSWORD).save(
        "laos-dhis2", overwrite=True)
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("dhis2-chap-prediction"),
            name="laos-malaria",
            entrypoint=ENTRYPOINT,
            # chapctl stores a reference, never the secret itself; the run resolves it.
            parameters={"credentials": {"$ref": {"block_document_id": str(block_id)}},
                        "end_mode": "offset", "end_period_offset": 1, "configured_model_id": 7},
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}],
        )
        flow_run = client.create_flow_run_from_deployment(deployment_id)

    env = {**os.environ, "PREFECT_API_URL": prefect_api, "CHAP_TODAY": DEFAULT_TODAY.isoformat(),
           "CHAP_SCHEDULER_POLL_INTERVAL_SECONDS": "0.01"}
    # Started outside the repository: the pull step must be what makes the entrypoint resolve.
    worker = subprocess.run([sys.executable, "-m", "prefect.engine", str(flow_run.id)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=180)

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state.name == "Completed", worker.stderr[-3000:]
    report = artifact_of(prefect_api, flow_run.id)
    assert report["key"] == "chap-report-laos-malaria"
    assert "- **Project:** laos-malaria" in report["data"].splitlines()
    assert [r["path"] for r in fake.requests("/api/routes/chap/run/v1/crud/prediction-setups/*/run")] == \
        ["/api/routes/chap/run/v1/crud/prediction-setups/5/run"]
