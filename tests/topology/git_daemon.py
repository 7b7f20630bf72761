"""A bare git repository on disk, served read-only over git:// by `git daemon` — the "remote" a
production worker clones the project repository from.

    with GitDaemon.start(base_dir) as daemon:          # serves every repository under base_dir
        url = daemon.url("projects.git")               # git://127.0.0.1:<port>/projects.git
        daemon.upload_packs("projects.git")            # one log line per clone/fetch served

Why git:// rather than a file:// URL or a path: chapctl's `source.git.repository` accepts only
network URLs (https, ssh, git, `git@host:path`; compiler/compile/models.py `GitSource`), and
Prefect's `git_clone` step runs `git clone --depth 1`, which the "dumb" HTTP transport (a static
file server) cannot do. `git daemon` speaks the smart protocol, needs nothing but git, and logs
every request, which is what the topology test counts.

The daemon runs in its own process group (it forks one upload-pack per connection) and is
stopped by its PID, then its group; never by name.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests import processes

GIT_ENV = {"GIT_AUTHOR_NAME": "chapctl topology test", "GIT_AUTHOR_EMAIL": "topology@example.org",
           "GIT_COMMITTER_NAME": "chapctl topology test", "GIT_COMMITTER_EMAIL": "topology@example.org",
           "GIT_CONFIG_NOSYSTEM": "1"}


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}  # no user/global config leaks in
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def commit_all(work_tree: Path, message: str, branch: str = "main") -> str:
    """`git init` (if needed), add everything, commit; returns the commit id."""
    if not (work_tree / ".git").exists():
        git("init", "--quiet", "--initial-branch", branch, cwd=work_tree)
    git("add", "--all", cwd=work_tree)
    git("commit", "--quiet", "--message", message, cwd=work_tree)
    return git("rev-parse", "HEAD", cwd=work_tree)


def bare_clone(work_tree: Path, bare: Path) -> Path:
    git("clone", "--quiet", "--bare", str(work_tree), str(bare), cwd=work_tree.parent)
    return bare


@dataclass
class GitDaemon:
    base: Path
    port: int
    log_path: Path
    process: processes.Process | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    @classmethod
    def reserve(cls, base: Path, log_path: Path) -> GitDaemon:
        """Choose the port first (the URL goes into the projects before the repository exists)."""
        return cls(base=base, port=processes.free_port(), log_path=log_path)

    def start(self, timeout: float = 20.0) -> GitDaemon:
        self.base.mkdir(parents=True, exist_ok=True)
        cmd = ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
               f"--base-path={self.base}", "--export-all", "--verbose", "--informative-errors",
               "--log-destination=stderr", str(self.base)]
        # The daemon shuts its children down on SIGTERM; SIGKILL to the group reaches its upload-packs too.
        self.process = processes.start("git daemon", cmd, log_path=self.log_path, leader_first=True, timeout=timeout,
                                       ready=lambda: "Ready to rumble" in self.log(), every=0.05)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def upload_packs(self, name: str) -> list[str]:
        """The daemon's log lines for clones and fetches of repository `name`."""
        return [line for line in self.log().splitlines() if line.endswith(f"Request upload-pack for '/{name}'")]

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            proc.stop(grace=10)

    def __enter__(self) -> GitDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
