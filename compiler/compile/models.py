"""The project file format as pydantic models: the single source of `schema/*.schema.json`.

chapctl validates with these models (pydantic's compiled validators are ~10x faster than running
the JSON Schema through jsonschema); editors use the generated schema, and the test suite proves
that both give the same verdicts on the good and bad example corpus.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compiler.constants import DEFAULT_OWNER, OWNER_PATTERN

NAME_PATTERN = r"^[a-z0-9-]{1,63}$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEFAULT_WORK_POOL = "default"
DEFAULT_TIMEZONE = "UTC"


class _Strict(BaseModel):
    # strict: YAML already typed the values; "12" is not 12 and "yes" is not true.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Credentials(_Strict):
    """The DHIS2 credentials block the flow receives. Give `base_url`, `username` and
    `password_env` together to let chapctl manage the block; give only `block` when the block
    document is managed elsewhere (chapctl then only checks that it exists)."""

    block: str = Field(
        pattern=NAME_PATTERN,
        description="Name of a `chap-dhis2-credentials` block document.",
        examples=["laos-dhis2"],
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/@]+(/\S*)?$",
        description="DHIS2 base URL (a context path is kept; a trailing slash is dropped).",
        examples=["https://dhis2.la.example.org"],
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        description="DHIS2 user the flow logs in as.",
        examples=["chap-bot"],
    )
    password_env: str | None = Field(
        default=None,
        pattern=ENV_PATTERN,
        description="Name of the environment variable that holds the password at apply time. "
        "Never the password itself.",
        examples=["LAOS_DHIS2_PASSWORD"],
    )

    @property
    def managed(self) -> bool:
        return self.base_url is not None


class Schedule(_Strict):
    """When the project runs. Without a schedule the project runs only when triggered."""

    cron: str = Field(
        min_length=1,
        description="Five-field cron expression (minute hour day-of-month month day-of-week), "
        "validated with the same rules as Prefect's CronSchedule.",
        examples=["0 6 * * 1"],
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone the cron is read in; default from _defaults.yaml, else UTC.",
        examples=["Asia/Vientiane"],
    )
    active: bool = Field(
        default=True,
        description="false keeps the schedule on the server but paused.",
        examples=[True],
    )


_END_MODE_RULES = {
    "allOf": [
        {
            "if": {"properties": {"end_mode": {"const": "offset"}}, "required": ["end_mode"]},
            "then": {"required": ["end_period_offset"]},
            "else": {"not": {"required": ["end_period_offset"]}},
        },
        {
            "if": {"properties": {"end_mode": {"const": "fixed"}}, "required": ["end_mode"]},
            "then": {"required": ["end_date"]},
            "else": {"not": {"required": ["end_date"]}},
        },
    ]
}


class Project(_Strict):
    """One DHIS2 instance × one CHAP model × one cadence: compiles to one Prefect deployment."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="chapctl project",
        json_schema_extra=_END_MODE_RULES,
    )

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Unique project name, 1-63 characters of a-z, 0-9 and '-'. Becomes the "
        "deployment name and must equal the file name without `.yaml`.",
        examples=["laos-malaria"],
    )
    description: str | None = Field(
        default=None,
        max_length=2000,
        description="Free text shown in the Prefect UI.",
        examples=["Weekly malaria forecast for Laos"],
    )
    credentials: Credentials = Field(
        description="DHIS2 credentials block the flow uses.",
        examples=[
            {
                "block": "laos-dhis2",
                "base_url": "https://dhis2.la.example.org",
                "username": "chap-bot",
                "password_env": "LAOS_DHIS2_PASSWORD",
            },
            {"block": "shared-dhis2"},
        ],
    )
    model_id: int = Field(
        ge=1,
        description="CHAP configured model id: the flow runs the prediction setups whose "
        "configured model has this id (flow parameter `configured_model_id`).",
        examples=[12],
    )
    prediction_setup_id: int | None = Field(
        default=None,
        ge=1,
        description="Run only this CHAP prediction setup (optional).",
        examples=[3],
    )
    end_mode: Literal["calculated", "fixed", "offset"] = Field(
        default="calculated",
        description="How the flow picks the last period of data: `calculated` (latest period "
        "with data), `fixed` (the period holding `end_date`) or `offset` (`end_period_offset` "
        "periods before the current one).",
        examples=["offset"],
    )
    end_period_offset: int | None = Field(
        default=None,
        ge=0,
        description="Periods back from the current one; required with end_mode offset, "
        "forbidden otherwise.",
        examples=[1],
    )
    end_date: dt.date | None = Field(
        default=None,
        strict=False,  # parsed from its ISO text
        description="ISO date whose period ends the data; required with end_mode fixed, "
        "forbidden otherwise.",
        examples=["2026-06-30"],
    )
    schedule: Schedule | None = Field(
        default=None,
        description="Optional cron schedule; without it the project runs only when triggered.",
        examples=[{"cron": "0 6 * * 1", "timezone": "Asia/Vientiane", "active": True}],
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Extra Prefect tags; `managed-by:chapctl` is always added.",
        examples=[["laos", "malaria"]],
    )
    work_pool: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Prefect work pool; default from _defaults.yaml, else `default`.",
        examples=["default"],
    )


class GitSource(_Strict):
    repository: str = Field(
        pattern=r"^(https?|ssh|git)://\S+$|^git@\S+:\S+$",
        description="Git URL the worker clones.",
        examples=["https://github.com/example/chap-projects.git"],
    )
    branch: str = Field(default="main", min_length=1, description="Branch to clone.", examples=["main"])


class Source(_Strict):
    """Where a worker finds the flow code: a git repository it clones (production), or a local
    directory named by an environment variable that apply resolves (the local stack)."""

    git: GitSource | None = Field(
        default=None,
        description="Clone this repository.",
        examples=[{"repository": "https://github.com/example/chap-projects.git", "branch": "main"}],
    )
    directory_env: str | None = Field(
        default=None,
        pattern=ENV_PATTERN,
        description="Environment variable holding the directory the worker runs the flow from.",
        examples=["CHAPCTL_FLOWS_DIR"],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "Source":
        if (self.git is None) == (self.directory_env is None):
            raise ValueError("source needs exactly one of `git` or `directory_env`")
        return self


class LoadWarnings(_Strict):
    """Thresholds of the hot-spot warnings in SCHEDULES.md (runs starting in the same UTC hour)."""

    per_instance: int = Field(
        default=3, ge=1, description="Warn when more runs than this start in the same UTC hour against one "
        "DHIS2 instance.", examples=[3])
    overall: int = Field(
        default=10, ge=1, description="Warn when more runs than this start in the same UTC hour overall.",
        examples=[10])


class Defaults(_Strict):
    """`projects/_defaults.yaml`: values every project inherits unless it sets its own."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, title="chapctl project defaults")

    owner: str = Field(
        default=DEFAULT_OWNER,
        pattern=OWNER_PATTERN,
        description="Short name of this repository on the Prefect server (1-32 characters of a-z, 0-9 "
        "and '-'). Everything chapctl applies carries it; plan and apply read, change and prune only "
        "this owner's objects. Give every repository that applies to the same server its own owner; "
        "a server fed by one repository can keep the default, `default`.",
        examples=["laos-team"],
    )
    timezone: str = Field(
        default=DEFAULT_TIMEZONE, description="Default IANA time zone for schedules.", examples=["UTC"]
    )
    work_pool: str = Field(
        default=DEFAULT_WORK_POOL, pattern=NAME_PATTERN, description="Default work pool.", examples=["default"]
    )
    tags: list[str] = Field(
        default_factory=list, description="Tags added to every project.", examples=[["chap"]]
    )
    source: Source = Field(
        default_factory=lambda: Source(directory_env="CHAPCTL_FLOWS_DIR"),
        description="Where workers find the flow code.",
        examples=[{"directory_env": "CHAPCTL_FLOWS_DIR"}],
    )
    load_warnings: LoadWarnings = Field(
        default_factory=LoadWarnings,
        description="Hot-spot thresholds for the schedule report.",
        examples=[{"per_instance": 3, "overall": 10}],
    )
