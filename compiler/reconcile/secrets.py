"""Where apply reads secrets: the environment, then `CHAPCTL_SECRETS` — one variable holding many.

CI systems hand secrets to a job one variable per name, so every new country would need a
workflow edit. With `CHAPCTL_SECRETS` set to a JSON object (GitHub Actions:
`CHAPCTL_SECRETS: ${{ toJSON(secrets) }}`) or to dotenv lines (`NAME=value`, one per line),
apply finds any `password_env` by name without one. A variable set in the environment wins.
The map is parsed only when asked for a name, and its text is never echoed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping

from compiler.errors import UserError

VARIABLE = "CHAPCTL_SECRETS"
# The names (never the values) of the secrets apply's environment will have: what a pull request's
# plan is given instead of the secrets, so that it can fail when apply would miss one (issue 25 #6).
NAMES_VARIABLE = "CHAPCTL_SECRET_NAMES"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretEnv(Mapping[str, str]):
    """The environment, with the names of `CHAPCTL_SECRETS` underneath it."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self._map: dict[str, str] | None = None

    def _secrets(self) -> dict[str, str]:
        if self._map is None:
            self._map = parse(self._env.get(VARIABLE) or "")
        return self._map

    def __getitem__(self, name: str) -> str:
        if name in self._env:
            return self._env[name]
        return self._secrets()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._env or (isinstance(name, str) and name in self._secrets())

    def __iter__(self) -> Iterator[str]:
        yield from self._env
        yield from (k for k in self._secrets() if k not in self._env)

    def __len__(self) -> int:
        return len(set(self._env) | set(self._secrets()))


def with_secrets(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    env = os.environ if env is None else env
    return env if isinstance(env, SecretEnv) or not env.get(VARIABLE) else SecretEnv(env)


def parse(text: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            raise UserError(f"{VARIABLE} starts like JSON but is not valid JSON (its text is not shown); "
                            "give a JSON object of NAME: value, or NAME=value lines") from None
        if not isinstance(doc, dict):
            raise UserError(f"{VARIABLE} must be a JSON object of NAME: value")
        return {str(k): str(v) for k, v in doc.items() if v is not None}
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not name.strip():
            raise UserError(f"{VARIABLE} line {number} is not NAME=value (its text is not shown)")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out


def declared_names(env: Mapping[str, str]) -> set[str]:
    """The names listed in CHAPCTL_SECRET_NAMES: separated by commas, spaces or newlines, or a JSON
    list (a JSON object: its keys; its values are never read)."""
    text = (env.get(NAMES_VARIABLE) or "").strip()
    if not text:
        return set()
    if text[0] in "[{":
        try:
            doc = json.loads(text)
        except ValueError:
            raise UserError(f"{NAMES_VARIABLE} starts like JSON but is not valid JSON; give names separated by "
                            "commas or spaces") from None
        names = [str(name) for name in doc] if isinstance(doc, (list, dict)) else []
    else:
        names = re.split(r"[\s,]+", text)
    bad = [name for name in names if name and not _NAME.fullmatch(name)]
    if bad:
        raise UserError(f"{NAMES_VARIABLE} holds {len(bad)} item(s) that are not variable names (letters, digits, _); "
                        "give the names of the secrets, never their values")
    return {name for name in names if name}
