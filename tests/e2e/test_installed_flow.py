"""Issue 25 #3, end to end: with `source: {package: chapctl}` (what `chapctl init` writes) a real
process worker runs the flow of the chapctl *installed* in its environment — here the wheel built
from this tree, in an environment of its own with no checkout on its path — at the release the
repository was compiled with; a deployment naming another release fails its run before the flow
starts, saying which release to install and where the worker's chapctl is."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from compiler import __version__
from tests.e2e.scenario import PASSWORD, SERVER_SETTINGS, TODAY, USERNAME, WORKER_SETTINGS
from tests.e2e.stack import Api, Worker, backend, wait_worker_online
from tests.fake_dhis2 import FakeDhis2Server
from tests.lanes import lane
from tests.server.adopting import clean_environment, installed_chapctl
from tests.server.prefect_server import PrefectServer

pytestmark = pytest.mark.e2e

POOL = "chap"  # the work pool `chapctl init` writes
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
@lane("e2e", group="e2e-installed")
def installed_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("installed")
    bin_dir = installed_chapctl(tmp)
    with ExitStack() as cleanup:
        fake = FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY).start()
        cleanup.callback(fake.stop)
        server = PrefectServer.start(tmp / "server", backend(),
                                     extra_env=SERVER_SETTINGS)
        cleanup.callback(server.stop)
        client = cleanup.enter_context(server.client())
        env = clean_environment(tmp, **server.client_env(), EXAMPLE_DHIS2_PASSWORD=PASSWORD)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"

        def chapctl(*args: str, cwd: Path) -> str:
            proc = subprocess.run([str(bin_dir / "chapctl"), *args], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout

        repo = tmp / "projects-repo"
        chapctl("init", str(repo), "--owner", "e2e-team", cwd=tmp)
        example = repo / "projects" / "example-malaria.yaml"
        example.write_text(example.read_text().replace("https://dhis2.example.org", fake.url)
                           .replace("model_id: 1 ", "model_id: 7 "))  # the fake's weekly setup
        chapctl("compile", cwd=repo)
        chapctl("apply", cwd=repo)

        (tmp / "worker").mkdir()  # no flows/ here: the flow can only come from the installed package
        worker_env = {**env, **WORKER_SETTINGS, "PREFECT_HOME": str(tmp / "worker-home")}
        worker = Worker.start(POOL, worker_env, cwd=tmp / "worker", log_path=tmp / "worker.log", bin_dir=bin_dir,
                              name="prefect worker (installed chapctl)")
        cleanup.callback(worker.stop)
        api = Api(client)
        wait_worker_online(api, worker, POOL)
        yield api, worker, bin_dir


def _logs(api: Api, run_id: str) -> list[str]:
    rows = api.c.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200,
                                            "sort": "TIMESTAMP_ASC"}).json()
    return [row["message"] for row in rows]


def test_the_worker_runs_the_installed_chapctls_flow(installed_stack):
    api, worker, _ = installed_stack
    deployment = api.deployment("example-malaria")
    assert deployment["pull_steps"] == [{"flows.installed.require_chapctl": {"version": __version__}}]
    run = api.wait_terminal(api.trigger(deployment["id"])["id"], RUN_TIMEOUT, worker)
    logs = _logs(api, run["id"])
    assert run["state"]["type"] == "COMPLETED", (run["state"], logs[-5:], worker.log_tail())
    assert "Executing deployment step: require_chapctl" in logs
    assert "Deployment step 'require_chapctl' completed successfully" in logs
    assert [a["key"] for a in api.artifacts_of(run["id"])], "the run wrote no report"


def test_a_deployment_of_another_release_fails_its_run_saying_what_to_install(installed_stack):
    api, worker, bin_dir = installed_stack
    deployment = api.deployment("example-malaria")
    api.c.patch(f"/deployments/{deployment['id']}",
                json={"pull_steps": [{"flows.installed.require_chapctl": {"version": "9.9.9"}}]}).raise_for_status()
    run = api.wait_terminal(api.trigger(deployment["id"])["id"], RUN_TIMEOUT, worker)
    logs = "\n".join(_logs(api, run["id"]))
    assert run["state"]["type"] in ("FAILED", "CRASHED"), run["state"]
    assert "this deployment runs the flow of chapctl 9.9.9" in logs, logs[-2000:]
    assert f"this worker has chapctl {__version__} ({bin_dir.parent}" in logs  # the installed one, not a checkout
    assert "pip install 'chapctl==9.9.9'" in logs
    assert not api.artifacts_of(run["id"])  # the flow never started
