"""Deployment parameters checked against their flow's parameter schema, before any write.

The parameters come from chapctl's templates (`compiler/templates/`) and the schema from the flow's signature in `flows/`; when
the two disagree (a flow parameter renamed, a template typo) the deployment's runs would fail at
start. Prefect's server checks a create's parameters only when the request names
`enforce_parameter_schema`, and then also re-validates the schema itself against the JSON Schema
meta-schema, ~8 ms of its ~25 ms per deployment; it never checks an update's. chapctl checks both
here, with one validator per distinct schema (a thousand projects share one), and leaves the field
out of creates: the server then stores its default, `true`, without the per-object work (proven
against each supported server release by tests/server/test_server_versions.py).

Prefect's own rules: `required` is ignored (a deployment may leave parameters to the flow's
defaults), a block parameter is the `{"$ref": {"block_document_id": …}}` the server stores.
Only deployments that are written are checked, so a no-op never imports jsonschema.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.reconcile.desired import BlockRef, DesiredDeployment

_PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
_validators: dict[str, Any] = {}


def parameter_problems(deployment: DesiredDeployment) -> list[str]:
    """One line per parameter that does not fit the flow's schema (empty when all fit)."""
    schema = deployment.parameter_openapi_schema
    if not schema:
        return []
    validator = _validator(schema)
    if isinstance(validator, str):
        return [f"the parameter schema of {deployment.entrypoint} is not valid JSON Schema ({validator})"]
    values = {
        k: ({"$ref": {"block_document_id": _PLACEHOLDER_ID}} if isinstance(v, BlockRef) else v)
        for k, v in deployment.parameters.items()
    }
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(all parameters)"
        problems.append(f"parameter {where}: {error.message}")
    return problems


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True)
    if key not in _validators:
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            _validators[key] = exc.message
        else:
            _validators[key] = Draft202012Validator(_without_required(schema))
    return _validators[key]


def _without_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node
