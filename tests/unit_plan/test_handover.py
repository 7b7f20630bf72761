"""The handover step of apply (`compiler.reconcile.handover.finish`) on the races a real server
rarely shows on demand: a run time held by both the paused schedule and its successor, and a run
a scheduler pass inserted after the pause. A fake API holds the runs; the real server case is
tests/server/test_import.py."""

from __future__ import annotations

from compiler.errors import NotFound
from compiler.reconcile import handover

OLD, NEW, SCHED, OTHER = "old-dep", "new-dep", "sched-1", "sched-2"
PAUSED_AT = "2026-12-01T10:00:00.500000Z"


class FakeAPI:
    def __init__(self, runs: list[dict], schedules: list[dict] | None = None):
        self.runs = {r["id"]: r for r in runs}
        self.schedules = schedules if schedules is not None else [{"id": SCHED, "updated": PAUSED_AT, "active": False}]
        self.posts: list[tuple[str, dict]] = []

    def get(self, path: str):
        if path == f"/deployments/{OLD}/schedules":
            return self.schedules
        raise NotFound(path)

    def filter_all(self, path: str, body: dict):
        flt = body["flow_runs"]
        (dep,) = flt["deployment_id"]["any_"]
        out = [r for r in self.runs.values() if r["deployment_id"] == dep]
        if "state" in flt:
            out = [r for r in out if r["state_type"] in flt["state"]["type"]["any_"]]
        if "expected_start_time" in flt:
            out = [r for r in out if handover._time(r["expected_start_time"])
                   >= handover._time(flt["expected_start_time"]["after_"])]
        return sorted(out, key=lambda r: r["expected_start_time"])

    def delete(self, path: str):
        run_id = path.rsplit("/", 1)[1]
        if run_id not in self.runs:
            raise NotFound(path)
        del self.runs[run_id]

    def post(self, path: str, body: dict):
        self.posts.append((path, body))


def run(run_id: str, dep: str, at: str, sched: str, state: str = "SCHEDULED", run_count: int = 0) -> dict:
    return {"id": run_id, "deployment_id": dep, "expected_start_time": at, "state_type": state,
            "run_count": run_count, "created_by": {"id": sched, "type": "SCHEDULE"}, "auto_scheduled": True}


def test_a_time_on_both_keeps_the_run_the_paused_schedule_kept():
    api = FakeAPI([
        run("o-due", OLD, "2026-12-01T10:00:00Z", SCHED),  # due at the pause: Prefect kept it
        run("o-late", OLD, "2026-12-01T09:00:00Z", SCHED, state="RUNNING", run_count=1),
        run("n-due", NEW, "2026-12-01T10:00:00Z", "new-sched"),  # the successor scheduled it just before
        run("n-next", NEW, "2026-12-08T10:00:00Z", "new-sched"),
    ])
    done = handover.finish(api, f"/deployments/{OLD}/schedules/{SCHED}", {"successor_id": NEW, "reschedule": False})
    assert done["deleted_successor_runs"] == ["n-due"]
    assert set(api.runs) == {"o-due", "o-late", "n-next"}
    assert api.posts == []


def test_a_run_inserted_after_the_pause_goes_and_other_schedules_get_their_runs_back():
    api = FakeAPI([
        run("o-leftover", OLD, "2026-12-08T10:00:00Z", SCHED),  # a scheduler pass that raced the pause
        run("o-other", OLD, "2026-12-08T11:00:00Z", OTHER),  # another schedule: never touched here
        run("n-next", NEW, "2026-12-08T10:00:00Z", "new-sched"),
    ])
    done = handover.finish(api, f"/deployments/{OLD}/schedules/{SCHED}", {"successor_id": NEW, "reschedule": True})
    assert done["deleted_paused_runs"] == ["o-leftover"] and done["deleted_successor_runs"] == []
    assert set(api.runs) == {"o-other", "n-next"}
    assert api.posts == [(f"/deployments/{OLD}/schedule", {"start_time": "2026-12-01T10:00:00.500000+00:00"})]
    again = handover.finish(api, f"/deployments/{OLD}/schedules/{SCHED}", {"successor_id": NEW, "reschedule": False})
    assert again["deleted_paused_runs"] == [] == again["deleted_successor_runs"]  # idempotent


def test_nothing_to_do_when_the_schedule_or_its_deployment_is_gone():
    api = FakeAPI([run("n", NEW, "2026-12-08T10:00:00Z", "x")], schedules=[])
    assert handover.finish(api, f"/deployments/{OLD}/schedules/{SCHED}", {"successor_id": NEW, "reschedule": True}) \
        == {"deleted_successor_runs": [], "deleted_paused_runs": [], "rescheduled_from": None}
    assert handover.finish(api, "/deployments/gone/schedules/x", {"successor_id": NEW})["rescheduled_from"] is None
    assert set(api.runs) == {"n"} and api.posts == []


class DeploymentAPI:
    """One deployment as `GET /deployments/{id}` answers it; records the schedule requests."""

    def __init__(self, deployment: dict):
        self.deployment = deployment
        self.posts: list[tuple[str, dict]] = []

    def get(self, path: str):
        if path == f"/deployments/{self.deployment['id']}":
            return self.deployment
        raise NotFound(path)

    def post(self, path: str, body: dict):
        self.posts.append((path, body))


def dep(paused: bool = False, active: bool = True) -> dict:
    return {"id": NEW, "paused": paused, "updated": "2026-12-01T10:00:02.000000Z", "schedules": [
        {"id": SCHED, "active": active, "updated": "2026-12-01T10:00:01.500000Z"},
        {"id": OTHER, "active": False, "updated": "2026-11-01T00:00:00Z"}]}


def test_runs_are_made_again_from_the_first_write_of_the_chain():
    api = DeploymentAPI(dep())
    as_read = {NEW: "2026-11-20T00:00:00Z", SCHED: "2026-11-20T00:00:00Z", OTHER: "2026-11-01T00:00:00Z"}
    start = handover.restore_runs(api, f"/deployments/{NEW}", {"as_read": as_read})
    assert start == "2026-12-01T10:00:01.500000+00:00"  # the schedule PATCH, before the deployment's
    assert api.posts == [(f"/deployments/{NEW}/schedule", {"start_time": start})]
    # a deployment created by this apply: nothing read before, every stamp is the create's
    created = dep()
    for s in created["schedules"]:
        s["updated"] = "2026-12-01T10:00:01.900000Z"
    api = DeploymentAPI(created)
    assert handover.restore_runs(api, f"/deployments/{NEW}", {"as_read": {}}) == "2026-12-01T10:00:01.900000+00:00"


def test_no_runs_for_a_paused_deployment_or_one_without_an_active_schedule_or_one_gone():
    for deployment in (dep(paused=True), dep(active=False)):
        api = DeploymentAPI(deployment)
        assert handover.restore_runs(api, f"/deployments/{NEW}", {"as_read": {}}) is None
        assert api.posts == []
    api = DeploymentAPI(dep())
    assert handover.restore_runs(api, "/deployments/gone", {"as_read": {}}) is None and api.posts == []


def test_only_a_schedule_deleted_schedules_from_the_servers_now():
    deployment = dep()
    api = DeploymentAPI(deployment)
    as_read = {NEW: deployment["updated"], SCHED: deployment["schedules"][0]["updated"], OTHER: "2026-11-01T00:00:00Z",
               "deleted-sched": "2026-11-01T00:00:00Z"}
    assert handover.restore_runs(api, f"/deployments/{NEW}", {"as_read": as_read}) is None
    assert api.posts == [(f"/deployments/{NEW}/schedule", {})]
