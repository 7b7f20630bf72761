"""CHAP prediction setups: parsing the listing and choosing which setups a run works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Model(BaseModel):
    # chap-core adds fields over time; only the ones the flow uses are declared and checked.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class ConfiguredModel(_Model):
    id: int
    name: str


class CovariateSource(_Model):
    covariate: str
    data_element_id: str = Field(alias="dataElementId")


class PredictionSetup(_Model):
    id: int
    name: str
    configured_model: ConfiguredModel = Field(alias="configuredModel")
    start_period: str = Field(alias="startPeriod")
    period_type: str = Field(alias="periodType")
    org_units: tuple[str, ...] = Field(alias="orgUnits", min_length=1)
    covariate_sources: tuple[CovariateSource, ...] = Field(alias="covariateSources", min_length=1)
    schedule_enabled: bool = Field(False, alias="scheduleEnabled")

    @property
    def data_elements(self) -> list[str]:
        """The setup's DHIS2 data elements, in covariate order, each once."""
        return list(dict.fromkeys(source.data_element_id for source in self.covariate_sources))


@dataclass(frozen=True)
class SetupItem:
    """One listed setup: parsed, or the reason it could not be (with what could be read)."""

    raw_id: Any
    raw_name: str
    model_id: Any
    model_name: str
    schedule_enabled: bool
    setup: PredictionSetup | None = None
    invalid: str | None = None
    # chap-core's own schedule of the setup (`scheduleCronExpression`; the DHIS2 Modeling App edits it,
    # chap-core runs nothing by it): the flow ignores it, `chapctl preflight` compares it with the project's
    schedule_cron: str | None = None


SKIPPED_DISABLED = "scheduleEnabled is false in CHAP"


@dataclass
class Selection:
    """The setups a run looks at, in listing order, or why none could be chosen; and every other
    listed setup with the reason it is left out (`left_out`)."""

    chosen: list[SetupItem] = field(default_factory=list)
    honour_schedule: bool = True
    error: str | None = None
    left_out: list[tuple[SetupItem, str]] = field(default_factory=list)

    def skips(self, item: SetupItem) -> bool:
        """True when the item is chosen but its schedule is disabled in CHAP."""
        return self.honour_schedule and not item.schedule_enabled

    @property
    def runs(self) -> list[SetupItem]:
        """The chosen setups a run works on (those not skipped for a disabled schedule)."""
        return [item for item in self.chosen if not self.skips(item)]

    def reasons(self) -> list[tuple[SetupItem, str]]:
        """Every listed setup the run does not work on, with why: left out by the parameters, or
        chosen and skipped for its schedule."""
        skipped = [(item, SKIPPED_DISABLED) for item in self.chosen if self.skips(item)]
        return self.left_out + skipped


def parse_setup(raw: Any) -> SetupItem:
    """Parse one listed setup; a malformed one is kept, with the reason, so only it fails."""
    data = raw if isinstance(raw, dict) else {}
    model = data.get("configuredModel") if isinstance(data.get("configuredModel"), dict) else {}
    item = dict(
        raw_id=data.get("id"),
        raw_name=str(data.get("name", f"setup {data.get('id', '?')}")),
        model_id=model.get("id"),
        model_name=str(model.get("name", "?")),
        schedule_enabled=data.get("scheduleEnabled") is True,
        schedule_cron=data.get("scheduleCronExpression") if isinstance(data.get("scheduleCronExpression"), str)
        else None,
    )
    try:
        return SetupItem(**item, setup=PredictionSetup.model_validate(raw))
    except ValidationError as exc:
        return SetupItem(**item, invalid=_validation_summary(exc))


def _validation_summary(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in error['loc']) or 'setup'}: {error['msg']}"
        for error in exc.errors()
    ]
    return "chap returned an invalid prediction setup (" + "; ".join(problems) + ")"


def _id_order(raw_id: Any) -> tuple[int, Any]:
    # Numeric ids in numeric order (3 before 10); anything odd after them, as text.
    return (0, raw_id) if isinstance(raw_id, int) else (1, str(raw_id))


def select_setups(items: list[SetupItem], configured_model_id: int | None,
                  prediction_setup_id: int | None) -> Selection:
    """Choose setups as the parameters ask.

    `prediction_setup_id` runs exactly that setup, even one whose schedule is disabled in CHAP
    (asking for it by id is explicit). Otherwise setups with `scheduleEnabled=false` are skipped.
    An empty choice is an error: a run that silently does nothing would hide a broken project.
    Every setup not chosen is in `left_out` with the reason.
    """
    available = [str(raw_id) for raw_id in sorted((item.raw_id for item in items), key=_id_order)]
    if prediction_setup_id is not None:
        chosen = [item for item in items if item.raw_id == prediction_setup_id]
        others = [(item, f"not prediction_setup_id={prediction_setup_id}") for item in items
                  if item.raw_id != prediction_setup_id]
        if not chosen:
            return Selection(error=f"prediction_setup_id={prediction_setup_id} not found; "
                                   f"available ids: [{', '.join(available)}]", left_out=others)
        if configured_model_id is not None and chosen[0].model_id != configured_model_id:
            return Selection(error=f"prediction_setup_id={prediction_setup_id} uses configured model "
                                   f"{chosen[0].model_id}, not configured_model_id={configured_model_id}",
                             left_out=others + [(chosen[0], f"configured model {chosen[0].model_id}, not "
                                                            f"configured_model_id={configured_model_id}")])
        return Selection(chosen=chosen[:1], honour_schedule=False, left_out=others + [(item, "listed twice")
                                                                                     for item in chosen[1:]])
    left_out: list[tuple[SetupItem, str]] = []
    if configured_model_id is not None:
        models = sorted({item.model_id for item in items if isinstance(item.model_id, int)})
        matching = [item for item in items if item.model_id == configured_model_id]
        left_out = [(item, f"configured model {item.model_id}, not configured_model_id={configured_model_id}")
                    for item in items if item.model_id != configured_model_id]
        if not matching:
            used = ", ".join(str(m) for m in models) or "none"
            return Selection(error=f"no prediction setup uses configured_model_id={configured_model_id}; the setups "
                                   f"on this CHAP use configured model ids [{used}] (setup ids "
                                   f"[{', '.join(available)}]): set the project's model_id to one of those, or "
                                   "create a prediction setup for this model in CHAP", left_out=left_out)
        items = matching
    if not items:
        return Selection(error="chap returned no prediction setups")
    return Selection(chosen=items, left_out=left_out)
