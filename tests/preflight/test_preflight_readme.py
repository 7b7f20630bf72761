"""The README's "Preflight" section quotes real output: the lines of its `<!-- output: preflight -->`
block are what `chapctl preflight` prints for the setup it documents — the repository's example
projects pointed at the fake DHIS2+CHAP as `make run` points them (scripts/demo.py), the fake's
today and the flow's at 2026-03-10. The README is written by hand from a real run; this test only
reads it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.fake_dhis2 import FakeDhis2Server
from tests.preflight.scenario import REPO, TODAY

pytestmark = pytest.mark.flows

DEMO_PASSWORD = "demo-password"  # scripts/stack.py's fake and scripts/demo.py's passwords


def quoted(name: str) -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- output: {re.escape(name)} .*?-->\n```text\n(.*?)```", text, re.S)
    assert block, f"README has no output block {name!r}"
    return block.group(1)


def demo_copy(root, fake_url: str):
    """The example projects as scripts/demo.py copies them: every base_url at the fake, the demo's
    username, the owner `demo`; compiled by chapctl."""
    (root / "projects").mkdir(parents=True)
    for path in (REPO / "projects").glob("*.yaml"):
        text = re.sub(r"^(\s*base_url:\s*).*$", rf"\g<1>{fake_url}", path.read_text(), flags=re.M)
        text = re.sub(r"^(\s*username:\s*).*$", r"\g<1>chap-bot", text, flags=re.M)
        if path.name == "_defaults.yaml":
            text = re.sub(r"^owner:.*\n", "", text, flags=re.M) + "owner: demo\n"
        (root / "projects" / path.name).write_text(text)
    subprocess.run([sys.executable, "-m", "compiler", "compile", "--root", str(root)], cwd=REPO, check=True,
                   capture_output=True)
    return root


def test_readme_preflight_output_is_verbatim(tmp_path):
    with FakeDhis2Server(username="chap-bot", password=DEMO_PASSWORD, today=TODAY) as fake:
        root = demo_copy(tmp_path / "demo", fake.url)
        result = subprocess.run(
            [sys.executable, "-m", "compiler", "preflight", "--root", str(root)], cwd=REPO, capture_output=True,
            text=True, timeout=300,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "250", "CHAP_TODAY": TODAY.isoformat(),
                 "LAOS_DHIS2_PASSWORD": DEMO_PASSWORD, "RWANDA_DHIS2_PASSWORD": DEMO_PASSWORD})
    printed = result.stdout.replace(fake.url, "http://127.0.0.1:18080")
    assert result.returncode == 0, result.stderr
    assert "$ chapctl preflight\n" + printed == quoted("preflight"), "\n" + printed
