"""The demo behind `make run`: the example projects, applied to the local stack, and one real run.

Steps (the server and the fake DHIS2+CHAP are already up, see scripts/stack.py):
0. Refuse an unknown DEMO_PROJECT, and stale or hand-edited compiled files, before anything.
1. Copy the example projects to `.local/demo/` with every managed block's base_url pointed at the
   fake DHIS2 (the committed examples name real-looking hosts) and the owner `demo` (so that
   `make apply` of the real projects against this server is refused, not silently mixed in),
   and compile them there. With CHAP=real, every project runs the real chap-core's seeded monthly
   setup: its `model_id` becomes that setup's configured model id (chap-core's own number) and
   `prediction_setup_id` names it (the seeded weekly setup's fixed start is beyond the flow's
   120-period cap on today's date).
2. Create the one block the examples say is "managed elsewhere", as its owner would.
3. `chapctl preflight`: what each project's first run will meet, by reading only (the fake DHIS2 and
   the CHAP behind its route); its verdict is shown and the demo goes on whatever it says.
4. `chapctl apply` (demo passwords come from the environment, as in production).
5. Start the worker, trigger one run of one project, wait for it, print its final state (with the
   reason when it failed), the first lines of its report and the UI URL, and what keeps running.
Safe to run again: apply converges, the block is created only when missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack  # noqa: E402  (sibling script)

ROOT = stack.ROOT
DEMO = stack.LOCAL / "demo"
DEMO_PROJECT = os.environ.get("DEMO_PROJECT", "laos-malaria")
DEMO_OWNER = "demo"
EXTERNAL_BLOCK = "sierra-leone-dhis2"
RUN_TIMEOUT = float(os.environ.get("DEMO_RUN_TIMEOUT", "300"))
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def demo_env() -> dict[str, str]:
    env = stack.prefect_env()
    env["CHAPCTL_FLOWS_DIR"] = str(ROOT)
    password = os.environ.get("DEMO_DHIS2_PASSWORD", "demo-password")
    for variable in password_variables():
        env.setdefault(variable, password)
    return env


def password_variables() -> list[str]:
    """The variables the example projects name in `password_env`, read by the compiler itself."""
    from compiler.compile.build import validate_repo

    projects = validate_repo(ROOT).projects
    return sorted({v.project.credentials.password_env for v in projects if v.project.credentials.managed})


def check_inputs(plan_only: bool) -> None:
    """Everything that can be refused before the server is touched."""
    import difflib

    from compiler.compile.build import validate_repo

    chapctl_root("compile", "--check", quiet=True)  # a hand edit of prefect.yaml is reported, not lost
    names = sorted(v.project.name for v in validate_repo(ROOT).projects)
    if not plan_only and DEMO_PROJECT not in names:
        close = difflib.get_close_matches(DEMO_PROJECT, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SystemExit(f"error: DEMO_PROJECT={DEMO_PROJECT!r} is not a project in projects/; {hint}"
                         f"the projects are: {', '.join(names)}. Nothing was applied.")


def chapctl_root(*args: str, quiet: bool = False) -> None:
    result = subprocess.run([str(stack.BIN / "chapctl"), *args, "--root", str(ROOT)], cwd=ROOT,
                            capture_output=quiet, text=True)
    if result.returncode != 0:
        if quiet:
            sys.stderr.write(result.stderr)
        raise SystemExit(f"error: chapctl {' '.join(args)} failed (exit {result.returncode}) in {ROOT}; "
                         "nothing was applied")


def prepare_demo_repo() -> None:
    """The examples with base_url -> the fake server; everything else exactly as committed."""
    real_setup = None
    if stack.chap_mode() == "real":
        state = stack.chap_state()
        if state is None:
            raise SystemExit("error: CHAP=real but no chap-core is running: `python scripts/stack.py start-chap`")
        real_setup = state["setups"]["monthly"]
        print(f"CHAP=real: every demo project runs setup {real_setup['id']} ({real_setup['name']!r}, configured "
              f"model {real_setup['configured_model_id']}) of the real chap-core at {state['url']}", flush=True)
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir(parents=True)
    (DEMO / "flows").symlink_to(ROOT / "flows", target_is_directory=True)  # the same flow code
    (DEMO / "projects").mkdir(parents=True)
    for path in (ROOT / "projects").glob("*.yaml"):
        text = re.sub(r"^(\s*base_url:\s*).*$", rf"\g<1>{stack.fake_url()}", path.read_text(), flags=re.M)
        text = re.sub(r"^(\s*username:\s*).*$", rf"\g<1>{os.environ.get('DEMO_DHIS2_USERNAME', 'chap-bot')}",
                      text, flags=re.M)
        if real_setup and path.name != "_defaults.yaml":
            text = re.sub(r"^prediction_setup_id:.*\n", "", text, flags=re.M)
            text = re.sub(r"^model_id:.*$", f"model_id: {real_setup['configured_model_id']}\n"
                          f"prediction_setup_id: {real_setup['id']}", text, flags=re.M)
        if path.name == "_defaults.yaml":
            text = re.sub(r"^owner:.*\n", "", text, flags=re.M) + f"owner: {DEMO_OWNER}\n"
        (DEMO / "projects" / path.name).write_text(text)
    if not (DEMO / "projects" / "_defaults.yaml").exists():
        (DEMO / "projects" / "_defaults.yaml").write_text(f"owner: {DEMO_OWNER}\n")
    chapctl("compile")


def chapctl(*args: str) -> None:
    command = [str(stack.BIN / "chapctl"), *args, "--root", str(DEMO)]
    print("$ chapctl " + " ".join(args) + " --root .local/demo", flush=True)
    result = subprocess.run(command, env=demo_env(), cwd=ROOT, stdout=None if args[0] != "compile" else
                            subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"error: chapctl {args[0]} failed (exit {result.returncode})")


def preflight() -> int:
    """`chapctl preflight` of the demo projects before the first run; its exit code, never fatal: the
    run that follows shows what a failing project does."""
    print("$ chapctl preflight --root .local/demo", flush=True)
    result = subprocess.run([str(stack.BIN / "chapctl"), "preflight", "--root", str(DEMO)], env=demo_env(), cwd=ROOT)
    if result.returncode == 3:
        print("preflight: a project would fail at its first run (above); the demo goes on", flush=True)
    elif result.returncode != 0:
        print(f"preflight could not run (exit {result.returncode}); the demo goes on", flush=True)
    return result.returncode


def ensure_external_block() -> None:
    """The examples reference a block managed outside chapctl; create it once, as its owner would.

    Its existence is checked over the REST API: importing Prefect (and its event worker, which
    prints "Still processing items" at exit) only happens the one time it is created."""
    with client() as api:
        found = api.post("block_documents/filter", json={
            "block_documents": {"name": {"any_": [EXTERNAL_BLOCK]}, "is_anonymous": {"eq_": False}},
            "block_types": {"slug": {"any_": ["chap-dhis2-credentials"]}}, "limit": 1})
        found.raise_for_status()
        if found.json():
            return
    code = (
        "import os, sys\n"
        "from flows.blocks import Dhis2Credentials\n"
        "Dhis2Credentials(base_url=sys.argv[2], username=sys.argv[3],\n"
        "                 password=os.environ['DEMO_DHIS2_PASSWORD']).save(sys.argv[1])\n"
        "print(f'created block {sys.argv[1]} (managed outside chapctl)')\n"
    )
    env = {**demo_env(), "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "ERROR",
           "DEMO_DHIS2_PASSWORD": os.environ.get("DEMO_DHIS2_PASSWORD", "demo-password")}
    subprocess.run([sys.executable, "-c", code, EXTERNAL_BLOCK, stack.fake_url(),
                    os.environ.get("DEMO_DHIS2_USERNAME", "chap-bot")], env=env, cwd=ROOT, check=True)


def client() -> httpx.Client:
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return httpx.Client(base_url=stack.api_url().rstrip("/") + "/", timeout=30,
                        auth=tuple(auth.split(":", 1)) if auth else None)


def trigger_and_wait() -> None:
    with client() as api:
        deployment = api.get(f"deployments/name/dhis2-chap-prediction/{DEMO_PROJECT}")
        deployment.raise_for_status()
        run = api.post(f"deployments/{deployment.json()['id']}/create_flow_run", json={})
        run.raise_for_status()
        run_id = run.json()["id"]
        print(f"triggered flow run {run.json()['name']} of {DEMO_PROJECT} ({run_id}); waiting...", flush=True)
        deadline = time.monotonic() + RUN_TIMEOUT
        state = {}
        while time.monotonic() < deadline:
            state = api.get(f"flow_runs/{run_id}").json()["state"]
            if state["type"] in TERMINAL:
                break
            time.sleep(1)
        else:
            raise SystemExit(f"error: the run did not finish within {RUN_TIMEOUT:.0f} s "
                             "(see .local/logs/worker.log)")
        print(f"\nfinal state: {state['name']} ({state['type']})")
        if state["type"] != "COMPLETED" and state.get("message"):
            print(f"reason: {state['message']}")
        artifacts = api.post("artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
        reports = [a for a in artifacts if a.get("type") == "markdown"]
        if reports:
            print(f"\nreport (artifact key {reports[0].get('key')}), first lines:")
            print("\n".join("    " + line for line in str(reports[0]["data"]).splitlines()[:15]))
        ui = stack.api_url().rstrip("/").removesuffix("/api")
        print(f"\nPrefect UI: {ui}/deployments  (this run: {ui}/runs/flow-run/{run_id})")
        if state["type"] != "COMPLETED":
            raise SystemExit(1)


def what_keeps_running() -> None:
    print("\nStill running (until `make stop`; `make clean` also deletes .local/):")
    for name, what in (("server", f"Prefect server {stack.local_api_url()}"), ("worker", "process worker"),
                       ("fake-dhis2", f"fake DHIS2+CHAP {stack.fake_url()}"),
                       ("chap-core", f"real chap-core {(stack.chap_state() or {}).get('url', '')}")):
        pid = stack.pid_of(name)
        if pid:
            print(f"  {what} (pid {pid}, log .local/logs/{name}.log)")
    print("The schedules of the demo projects stay active: the worker runs them when they are due.")


def main() -> None:
    plan_only = sys.argv[1:] == ["plan"]  # `make demo-plan`: what `make run` would change, nothing more
    check_inputs(plan_only)
    prepare_demo_repo()
    ensure_external_block()
    if plan_only:
        chapctl("plan")
        return
    preflight()
    chapctl("apply")
    os.environ.setdefault("CHAP_SCHEDULER_POLL_INTERVAL_SECONDS", "1")  # the fake's jobs finish in seconds
    stack.start_worker()
    try:
        trigger_and_wait()
    finally:
        what_keeps_running()


if __name__ == "__main__":
    main()
