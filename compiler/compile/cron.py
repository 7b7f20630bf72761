"""Cron validation with exactly Prefect's rules, without importing `prefect`.

Prefect's CronSchedule validates with its vendored croniter (`prefect._vendor.croniter`) plus a
check that rejects random/hashed expressions (`prefect._internal.schemas.validators.
validate_cron_string`). Importing `prefect` costs seconds, so we load the vendored croniter module
straight from Prefect's installed files; `tests/compiler/test_cron_agreement.py` proves the
verdicts agree with Prefect's own CronSchedule on a corpus.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from types import ModuleType

_MODULE_NAME = "_chapctl_prefect_croniter"
# croniter also understands @-macros; Prefect accepts them, and they are a friendly spelling.
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MACRO_CRONS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


@lru_cache(maxsize=1)
def _croniter_module() -> ModuleType:
    prefect_spec = importlib.util.find_spec("prefect")  # locates, does not import
    if prefect_spec is None or not prefect_spec.submodule_search_locations:
        raise RuntimeError("prefect is not installed; chapctl needs it for cron validation")
    (prefect_dir,) = list(prefect_spec.submodule_search_locations)[:1]
    path = f"{prefect_dir}/_vendor/croniter/croniter.py"
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


_EXPANSIONS: dict[str, tuple | None] = {}


def expand(expression: str) -> tuple | None:
    """croniter's expansion `(fields, nth_weekday)` of an expression, or None when croniter
    rejects it (`croniter.is_valid` is exactly "expand raises no CroniterError"). Cached: the
    validator and the schedule review both need it, and it is the slow part of either."""
    if expression not in _EXPANSIONS:
        module = _croniter_module()
        try:
            _EXPANSIONS[expression] = module.croniter.expand(expression)
        except module.CroniterError:
            _EXPANSIONS[expression] = None
    return _EXPANSIONS[expression]


def fires(expression: str, start, day_or: bool = True):
    """Prefect's vendored croniter over naive wall-clock times from `start` (naive too), as
    Prefect's CronSchedule drives it; `get_next`/`get_prev(datetime)` step through the fires."""
    return _croniter_module().croniter(MACRO_CRONS.get(expression.lower(), expression), start, day_or=day_or)


def remember(expression: str, expansion: tuple | None) -> None:
    """Adopt an expansion computed in another process (see compiler.parallel)."""
    _EXPANSIONS.setdefault(expression, expansion)


def prefect_accepts(expression: str) -> bool:
    """Prefect's verdict, reproduced: croniter.is_valid and no random/hashed (R/H) fields."""
    if expand(expression) is None:
        return False
    return not any(part.casefold() in ("r", "h") for part in expression.split())


def cron_problem(expression: str) -> str | None:
    """None when valid; else a message saying what is wrong. chapctl is stricter than Prefect in
    one way only: it wants five fields (or an @-macro), since a sixth field means seconds or
    years depending on the tool, which reviewers misread."""
    fields = expression.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in MACROS)):
        return f"cron must have 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    if not prefect_accepts(expression):
        return f"not a valid cron expression for Prefect ({_reason(expression)})"
    return None


_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day-of-month", "1-31"), ("month", "1-12 or JAN-DEC"),
           ("day-of-week", "0-7 or SUN-SAT"))


def _reason(expression: str) -> str:
    """Name the first field that is wrong on its own (others replaced by `*`)."""
    fields = expression.split()
    for index, part in enumerate(fields):
        if part.casefold() in ("r", "h"):
            return f"{_FIELDS[index][0]} field {part!r}: random (R) and hashed (H) values are not supported"
        probe = ["*"] * 5
        probe[index] = part
        if expand(" ".join(probe)) is None:
            name, allowed = _FIELDS[index]
            return f"{name} field {part!r} is invalid; allowed: {allowed}, with , - / and *"
    return "the fields do not combine into a valid schedule"


@lru_cache(maxsize=4096)
def describe(cron: str) -> str:
    """Plain English for a cron, in 24-hour US English whatever the machine's locale."""
    return _describer()(MACRO_CRONS.get(cron.lower(), cron))


@lru_cache(maxsize=1)
def _describer():
    from cron_descriptor import ExpressionDescriptor, Options
    from cron_descriptor.ExpressionParser import ExpressionParser
    from cron_descriptor.GetText import GetText

    options = Options()
    options.use_24hour_time_format = True
    options.locale_code = "en_US"
    options.verbose = False
    translations = GetText(options.locale_code, options.locale_location)

    class SharedTranslations(ExpressionDescriptor):
        # The stock constructor re-reads the .mo catalogue for every expression (~0.3 ms each);
        # the pinned cron-descriptor's state is these three attributes, so share the catalogue.
        def __init__(self, expression: str) -> None:
            self._expression = expression
            self._options = options
            self.get_text = translations
            self._expression_parts = ExpressionParser(expression, options).parse()

    return lambda expression: SharedTranslations(expression).get_description()
