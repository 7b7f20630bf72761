"""Names the compiler writes and plan/apply look for: one definition, so the two sides agree.

Kept free of heavy imports: plan/apply must not load the models (pydantic) on their fast path.
What the flow must agree on too lives in `flows/constants.py` (no imports there either)."""

import re
from collections.abc import Iterable
from typing import Any

from flows.constants import BLOCK_TYPE_SLUG  # noqa: F401  (the Dhis2Credentials block type)

# The Prefect release this chapctl is built and tested against (pyproject.toml pins it, uv.lock locks
# it; a test holds the three equal). `chapctl --version` names it; workers should run it too.
PREFECT_RELEASE = "3.9.1"
MANAGED_TAG = "managed-by:chapctl"  # every deployment chapctl writes carries it (a marker for people)
OWNER_TAG_PREFIX = "chapctl-owner:"  # + the owner of `_defaults.yaml`: what plan/apply own and prune
DEFAULT_OWNER = "default"  # a repository whose _defaults.yaml names no owner
DEFAULT_WORK_POOL = "default"  # `work_pool:` of _defaults.yaml when it names none
DEFAULT_TIMEZONE = "UTC"  # `timezone:` of _defaults.yaml when it names none; Prefect's for a schedule without one
DEFAULT_COLLISION_STRATEGY = "ENQUEUE"  # `limits.collision_strategy`, and Prefect's when a deployment has none
# 1-32 characters (OWNER_MAX_LENGTH), single hyphens only: "--" separates the owner from a name in what
# chapctl creates (INSTANCE_LIMIT), so owners "team" and "team--x" would otherwise claim each other's limits.
OWNER_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
OWNER_MAX_LENGTH = 32
# Characters no text chapctl takes or shows may carry as they are: C0 controls but tab and newline (NUL breaks
# PostgreSQL), DEL, C1 controls, and the bidirectional marks, overrides and isolates that make a terminal or
# a review show other text than what is stored. validate refuses them; the CLI writes them out (\x1b).
CONTROL_CHARACTERS = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
# What ends a line for YAML or a terminal besides CONTROL_CHARACTERS: for text that must stay on one line.
LINE_BREAKS = "[\t\n\u2028\u2029]"
FINGERPRINT_PREFIX = "chapctl:"  # deployment `version`: chapctl:<owner>:<16 hex>
# Prefect Variables chapctl keeps on the server (names: lowercase, digits, '-' and '_').
VARIABLE_PREFIX = "chapctl-"
LOCK_VARIABLE = "chapctl-lock--{owner}"  # the apply lock of one owner
STATE_VARIABLE = "chapctl-state--{owner}"  # the git commit an owner last applied
CLAIM_VARIABLE = "chapctl-block--{slug}--{name}"  # which owner manages a block document
INSTANCE_LIMIT = "chapctl-{owner}--{block}"  # the global concurrency limit of one DHIS2 instance
CHAP_LIMIT_PARAMETER = "chap_concurrency_limit"  # the flow parameter naming that limit
# Exit codes, one table: a verb's result carries one of the first five (`exit_code`), the CLI's error
# boundary (compiler/cli/common.py) the others. 0 ok; 1 error (a user error, invalid projects, stale
# artifacts, --strict); 2 changes (--detailed-exitcode); 3 a project failing or late and 4 one out of
# sync with --require-sync (status); 64 a usage error (sysexits' EX_USAGE, apart from every code a verb
# returns); 130 interrupted (Ctrl-C, SIGTERM).
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_UNHEALTHY, EXIT_OUT_OF_SYNC = 0, 1, 2, 3, 4
EXIT_USAGE, EXIT_INTERRUPTED = 64, 130


def owner_tag(owner: str) -> str:
    return OWNER_TAG_PREFIX + owner


def environment_owner(owner: str, suffix: str | None) -> str:
    """The owner of an environment: `owner` and its `owner_suffix`, joined by one hyphen."""
    return f"{owner}-{suffix}" if suffix else owner


# `{{ $VAR }}` in prefect.yaml's pull steps: apply resolves it from its environment (reconcile.desired).
ENV_TEMPLATE = re.compile(r"\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def artifact_env(prefect_doc: Any, block_docs: Iterable[Any]) -> set[str]:
    """Every environment variable apply reads for these compiled artifacts (what `reconcile.desired`
    resolves): the `{{ $VAR }}` of prefect.yaml's pull steps and the `secret_env` of each block file
    (passwords, webhook URLs, API keys). `chapctl diff` lists them for a reviewer; apply refuses
    without them (`tests/compiler/test_diff_and_schedule.py` proves the two sets equal)."""
    from compiler.jsontree import leaves

    pull = [leaf for leaf in leaves((prefect_doc or {}).get("pull") or []) if isinstance(leaf, str)]
    names = {m.group(1) for text in pull for m in ENV_TEMPLATE.finditer(text)}
    return names | {str(var) for doc in block_docs for var in ((doc or {}).get("secret_env") or {}).values()}


def written_out(text: str, one_line: bool = False) -> str:
    """`text` with CONTROL_CHARACTERS (and with `one_line`, tab and line breaks) written out as
    `\\x1b`, `\\u202e`, `\\n`: what it holds is shown, never acted on, and one line stays one."""
    import re

    def written(m: re.Match) -> str:
        char = m.group()
        if char in "\t\n":
            return "\\t" if char == "\t" else "\\n"
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return re.sub(f"{CONTROL_CHARACTERS}|{LINE_BREAKS}" if one_line else CONTROL_CHARACTERS, written, text)


# Writes `apply` sends at once. Prefect's server is one process: measured on PostgreSQL, 2 cores,
# 1,000 projects, 4 at once took 21.8 s, 1 took 24.1 s and 8 took 25.3 s (more only queue behind
# its event loop). `--parallel N` overrides.
DEFAULT_WORKERS = 4
