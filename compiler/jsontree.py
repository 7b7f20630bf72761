"""The one walker over JSON-like trees (dicts, lists, leaves) that plan, apply and desired share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """A copy of `value` with every non-container replaced by `leaf(it)`; keys are kept as they are."""
    if isinstance(value, dict):
        return {k: map_leaves(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_leaves(v, leaf) for v in value]
    return leaf(value)


def leaves(value: Any) -> Iterator[Any]:
    """Every non-container in `value`, depth first."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def map_mappings(value: Any, node: Callable[[dict[str, Any]], Any]) -> Any:
    """A copy of `value` with every dict replaced by `node(it)`, children first (bottom-up)."""
    if isinstance(value, dict):
        return node({k: map_mappings(v, node) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return [map_mappings(v, node) for v in value]
    return value


def paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """The leaves of `value` by path: a mapping's entries by key (`trigger.within`), a list of mappings
    by index (`actions[0].subject`). Any other list, and an empty mapping, is one leaf: a change shows
    as the part that changed, never as a whole document cut short."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(paths(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(paths(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}
