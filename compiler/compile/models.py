"""The project file format as pydantic models: the single source of `schema/*.schema.json`.

chapctl validates with these models (pydantic's compiled validators are ~10x faster than running
the JSON Schema through jsonschema); editors use the generated schema, and the test suite proves
that both give the same verdicts on the good and bad example corpus.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compiler.constants import (DEFAULT_COLLISION_STRATEGY, DEFAULT_OWNER, DEFAULT_TIMEZONE,  # noqa: F401  (importer)
                                DEFAULT_WORK_POOL, OWNER_MAX_LENGTH, OWNER_PATTERN)

NAME_PATTERN = r"^[a-z0-9-]{1,63}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# "<flow name>/<deployment name>" as Prefect names a deployment (`prefect deployment run F/D`).
DEPLOYMENT_REF_PATTERN = r"^[^/\s][^/]*/[^/]*[^/\s]$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
DURATION_PATTERN = r"^[1-9][0-9]{0,4}[smhd]$"  # 90s, 30m, 2h, 1d
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """Seconds of a duration matching DURATION_PATTERN (`30m` -> 1800)."""
    return int(text[:-1]) * _DURATION_UNITS[text[-1]]


SINGLE_SCHEDULE_SLUG = "chapctl-cron"  # the slug of a project's `schedule:` (kept when it becomes `schedules:`)


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


class ScheduleParameters(_Strict):
    """Flow parameters a schedule's runs use instead of the project's. Override the end mode as a
    whole (`end_mode` with its `end_period_offset` or `end_date`), the setup, or both."""


    end_mode: Literal["calculated", "fixed", "offset"] | None = Field(
        default=None, description="End mode of this schedule's runs (see the project's `end_mode`).",
        examples=["fixed"])
    end_period_offset: int | None = Field(
        default=None, ge=0, description="With end_mode offset: periods back from the current one.", examples=[0])
    end_date: dt.date | None = Field(
        default=None, strict=False, description="With end_mode fixed: the ISO date whose period ends the data.",
        examples=["2026-06-30"])
    prediction_setup_id: int | None = Field(
        default=None, ge=1, description="Run only this CHAP prediction setup.", examples=[3])


class Replaces(_Strict):
    """A hand-made schedule this project takes over (written by `chapctl import`). With
    `apply --adopt` the schedule is paused, never deleted, in the same apply that creates this
    project's deployment, so that no run happens twice and none is lost; without `--adopt` a plan
    that would leave both active is refused. When `deployment` is this project's own deployment
    (a deployment made by `prefect deploy`, adopted in place), the schedule is kept and becomes
    the project's schedule instead."""

    deployment: str = Field(
        pattern=DEPLOYMENT_REF_PATTERN,
        description="The deployment holding the schedule, as `<flow name>/<deployment name>`.",
        examples=["dhis2-chap-prediction/chap-scheduler"],
    )
    schedule_id: str = Field(
        pattern=UUID_PATTERN,
        description="Id of the schedule on the Prefect server (lowercase UUID).",
        examples=["0b7e5f5c-8d1e-4a51-9a43-0c7c1b0e9f11"],
    )


class ScheduleEntry(Schedule):
    """One of a project's schedules (`schedules:`), named by a slug that keeps its identity on the
    server across edits: changing its cron or parameters updates that schedule in place."""

    slug: str = Field(
        pattern=SLUG_PATTERN,
        description="Stable name of this schedule, unique in the project (1-63 characters of a-z, 0-9 and "
        "'-'). Renaming it replaces the schedule on the server.",
        examples=["weekly"],
    )
    parameters: ScheduleParameters | None = Field(
        default=None,
        description="Flow parameters this schedule's runs use instead of the project's.",
        examples=[{"end_mode": "offset", "end_period_offset": 0}],
    )
    replaces: Replaces | None = Field(
        default=None,
        description="The hand-made schedule this entry takes over (see `chapctl import`): `apply --adopt` pauses "
        "it in the same apply that creates this schedule, or takes it over in place when it is on this "
        "project's own deployment.",
        examples=[{"deployment": "dhis2-chap-prediction/chap-scheduler",
                   "schedule_id": "0b7e5f5c-8d1e-4a51-9a43-0c7c1b0e9f11"}],
    )


class Alerts(_Strict):
    """Who hears about this project's runs, and when. Compiled to Prefect automations owned by
    this repository's owner."""

    notify: list[str] = Field(
        min_length=1,
        description="Notification targets declared in `_defaults.yaml` under `notifications`.",
        examples=[["ops-webhook"]],
    )
    failed: bool = Field(
        default=True, description="Notify when a run ends Failed or Crashed.", examples=[True])
    missed: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        description="Notify when a scheduled run has not started this long after Prefect marked it Late "
        "(a number with s, m, h or d); off when absent.",
        examples=["30m"],
    )


class Limits(_Strict):
    """How many runs of this project may run at once (a Prefect deployment concurrency limit)."""

    concurrency: int = Field(ge=1, description="Most runs of this project at once.", examples=[1])
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = Field(
        default=DEFAULT_COLLISION_STRATEGY,
        description="What happens to a run over the limit: ENQUEUE waits for a slot, CANCEL_NEW cancels it.",
        examples=["ENQUEUE"],
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
    schedules: list[ScheduleEntry] | None = Field(
        default=None,
        min_length=1,
        description="Several schedules, each with a slug and optional parameter overrides; instead of "
        "`schedule`.",
        examples=[[{"slug": "weekly", "cron": "0 6 * * 1"},
                   {"slug": "monthly-fixed", "cron": "0 5 2 * *",
                    "parameters": {"end_mode": "fixed", "end_date": "2026-06-30"}}]],
    )
    alerts: Alerts | None = Field(
        default=None,
        description="Notifications on failed, crashed or missed runs; default from `_defaults.yaml`.",
        examples=[{"notify": ["ops-webhook"], "failed": True, "missed": "30m"}],
    )
    limits: Limits | None = Field(
        default=None,
        description="A concurrency limit on this project's runs.",
        examples=[{"concurrency": 1, "collision_strategy": "ENQUEUE"}],
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
    replaces: Replaces | None = Field(
        default=None,
        description="A hand-made schedule this project takes over (see `chapctl import`): `apply --adopt` "
        "pauses it in the same apply that creates this project's deployment.",
        examples=[{"deployment": "dhis2-chap-prediction/chap-scheduler",
                   "schedule_id": "0b7e5f5c-8d1e-4a51-9a43-0c7c1b0e9f11"}],
    )

    @property
    def schedule_entries(self) -> tuple[ScheduleEntry, ...]:
        """Every schedule, `schedule:` read as one entry with the slug `chapctl-cron`."""
        if self.schedules is not None:
            return tuple(self.schedules)
        if self.schedule is None:
            return ()
        return (ScheduleEntry(slug=SINGLE_SCHEDULE_SLUG, cron=self.schedule.cron, timezone=self.schedule.timezone,
                              active=self.schedule.active),)


class WebhookTarget(_Strict):
    url_env: str = Field(
        pattern=ENV_PATTERN,
        description="Environment variable holding the webhook URL at apply time (it is a secret: it may "
        "carry a token). chapctl POSTs JSON {\"subject\", \"body\"} to it.",
        examples=["OPS_WEBHOOK_URL"],
    )


class SlackTarget(_Strict):
    url_env: str = Field(
        pattern=ENV_PATTERN, description="Environment variable holding the Slack incoming-webhook URL.",
        examples=["SLACK_WEBHOOK_URL"])


class EmailTarget(_Strict):
    to: list[str] = Field(
        min_length=1, description="Recipients.", examples=[["chap-ops@example.org"]])
    sender: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+$", description="Sender address (verified with SendGrid).",
        examples=["prefect@example.org"])
    api_key_env: str = Field(
        pattern=ENV_PATTERN, description="Environment variable holding the SendGrid API key.",
        examples=["SENDGRID_API_KEY"])


class Notification(_Strict):
    """A notification target, declared once in `_defaults.yaml` and named by projects' `alerts`:
    exactly one of `webhook`, `slack` or `email`. Its secret comes from an environment variable at
    apply time, like passwords; chapctl manages the Prefect notification block."""

    webhook: WebhookTarget | None = Field(default=None, description="Any HTTP endpoint (a Custom Webhook block).",
                                          examples=[{"url_env": "OPS_WEBHOOK_URL"}])
    slack: SlackTarget | None = Field(default=None, description="A Slack incoming webhook.",
                                      examples=[{"url_env": "SLACK_WEBHOOK_URL"}])
    email: EmailTarget | None = Field(default=None, description="E-mail through SendGrid.",
                                      examples=[{"to": ["chap-ops@example.org"], "sender": "prefect@example.org",
                                                 "api_key_env": "SENDGRID_API_KEY"}])

    @model_validator(mode="after")
    def _exactly_one(self) -> "Notification":
        if sum(x is not None for x in (self.webhook, self.slack, self.email)) != 1:
            raise ValueError("a notification needs exactly one of `webhook`, `slack` or `email`")
        return self

    @property
    def kind(self) -> str:
        return "webhook" if self.webhook else "slack" if self.slack else "email"


class GitSource(_Strict):
    repository: str = Field(
        pattern=r"^(https?|ssh|git)://\S+$|^git@\S+:\S+$",
        description="Git URL the worker clones.",
        examples=["https://github.com/example/chap-projects.git"],
    )
    branch: str = Field(default="main", min_length=1, description="Branch to clone.", examples=["main"])


class Source(_Strict):
    """Where a worker finds the flow code: the chapctl package installed on the worker, at the
    release the repository is compiled with (production, no fork needed); a git repository it
    clones (a repository that carries its own `flows/`); or a local directory named by an
    environment variable that apply resolves (the local stack)."""

    package: Literal["chapctl"] | None = Field(
        default=None,
        description="Run the flow of the chapctl package installed on the worker (entrypoint "
        "`flows.dhis2_chap_prediction`), at the release this repository is compiled with: a pull step "
        "fails the run when the worker's chapctl is another release.",
        examples=["chapctl"],
    )
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
        if sum(x is not None for x in (self.package, self.git, self.directory_env)) != 1:
            raise ValueError("source needs exactly one of `package`, `git` or `directory_env`")
        return self


class Environment(_Strict):
    """One environment the same projects are applied to, selected with `--env NAME` (or
    `CHAPCTL_ENV`) on every verb: its own Prefect server (named by environment variables, read
    only when the environment is selected), its own owner, and what differs there. Compile writes
    one set of artifacts, the projects as declared; plan and apply lay the environment over them."""

    api_url_env: str = Field(
        pattern=ENV_PATTERN,
        description="Environment variable holding this environment's Prefect API URL (with the environment "
        "selected, chapctl reads the server from it and never from PREFECT_API_URL or a Prefect profile, unless "
        "it is that name).",
        examples=["STAGING_PREFECT_API_URL"],
    )
    auth_string_env: str | None = Field(
        default=None,
        pattern=ENV_PATTERN,
        description="Environment variable holding the `user:password` of a self-hosted server's basic auth "
        "(as PREFECT_API_AUTH_STRING); must be set when given.",
        examples=["STAGING_PREFECT_API_AUTH_STRING"],
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_PATTERN,
        description="Environment variable holding a Prefect Cloud API key (as PREFECT_API_KEY); must be set "
        "when given.",
        examples=["STAGING_PREFECT_API_KEY"],
    )
    owner_suffix: str | None = Field(
        default=None,
        pattern=OWNER_PATTERN,
        description="Appended to `owner` with a hyphen: `laos-team` and `staging` give the owner `laos-team-staging` "
        "(at most 32 characters in all). Give each environment its own suffix (or none for one of them), so "
        "that no environment ever owns, changes or prunes another's objects.",
        examples=["staging"],
    )
    work_pool: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="The work pool of every project in this environment (instead of each project's own).",
        examples=["chap-staging"],
    )
    schedules: Literal["active", "paused"] = Field(
        default="active",
        description="`paused`: every schedule is applied paused (runs only when triggered); `active`: each "
        "schedule as its project declares it (`active: false` stays paused).",
        examples=["paused"],
    )
    notifications: dict[str, Notification] = Field(
        default_factory=dict,
        description="Notification targets replaced in this environment, by the name declared under "
        "`notifications` (the same kind: webhook, slack or email), e.g. a staging channel.",
        examples=[{"ops-webhook": {"webhook": {"url_env": "STAGING_OPS_WEBHOOK_URL"}}}],
    )


class LoadWarnings(_Strict):
    """Thresholds of the hot-spot warnings in SCHEDULES.md (runs starting in the same UTC hour)."""

    per_instance: int = Field(
        default=3, ge=1, description="Warn when more runs than this start in the same UTC hour against one "
        "DHIS2 instance.", examples=[3])
    overall: int = Field(
        default=10, ge=1, description="Warn when more runs than this start in the same UTC hour overall.",
        examples=[10])


class Ci(_Strict):
    """How `plan` judges what apply will need (the pull-request check): every variable apply will
    read and that is not set, nor named in CHAPCTL_SECRET_NAMES, fails plan, as apply would fail."""

    allow_unset: list[Annotated[str, Field(pattern=ENV_PATTERN)]] = Field(
        default_factory=list,
        description="Secret variables (password_env, url_env, api_key_env) plan may find unset without failing: "
        "it warns instead. Apply still refuses to create a block without its secret.",
        examples=[["KENYA_DHIS2_PASSWORD"]],
    )


class Defaults(_Strict):
    """`projects/_defaults.yaml`: values every project inherits unless it sets its own."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, title="chapctl project defaults")

    owner: str = Field(
        default=DEFAULT_OWNER,
        pattern=OWNER_PATTERN,
        max_length=OWNER_MAX_LENGTH,
        description="Short name of this repository on the Prefect server (1-32 characters of a-z, 0-9 "
        "and single hyphens). Everything chapctl applies carries it; plan and apply read, change and prune only "
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
    notifications: dict[str, Notification] = Field(
        default_factory=dict,
        description="Notification targets by name (a-z, 0-9, '-'), for `alerts.notify`.",
        examples=[{"ops-webhook": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}}],
    )
    alerts: Alerts | None = Field(
        default=None,
        description="Alerts of every project that sets none of its own.",
        examples=[{"notify": ["ops-webhook"], "failed": True, "missed": "1h"}],
    )
    instance_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Most runs at once doing CHAP work against one DHIS2 instance, by credentials block name: "
        "a Prefect global concurrency limit that every project using that block holds around its CHAP job.",
        examples=[{"laos-dhis2": 1}],
    )
    environments: dict[str, Environment] = Field(
        default_factory=dict,
        description="Environments the same projects are applied to, by name (1-32 characters of a-z, 0-9 and "
        "single hyphens), selected with `--env NAME` or `CHAPCTL_ENV` (e.g. staging, then production). "
        "Without `--env`, every verb uses the projects as declared and PREFECT_API_URL.",
        examples=[{"staging": {"api_url_env": "STAGING_PREFECT_API_URL", "owner_suffix": "staging",
                               "schedules": "paused"},
                   "production": {"api_url_env": "PREFECT_API_URL"}}],
    )
    ci: Ci = Field(
        default_factory=Ci,
        description="How plan (the pull-request check) judges the variables apply will need.",
        examples=[{"allow_unset": ["KENYA_DHIS2_PASSWORD"]}],
    )
