"""The committed JSON Schema is generated from the models, fits editors, and agrees with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator, FormatChecker

from compiler.compile.load import load_repo
from compiler.compile.models import Project
from compiler.compile.schema import render_schemas
from tests.compiler.conftest import REPO

CASES = Path(__file__).parent / "cases"


def committed(path: str) -> dict:
    return json.loads((REPO / path).read_text())


def test_committed_schemas_equal_generated():
    from compiler.compile.render import stamp

    for path, text in render_schemas().items():
        assert (REPO / path).read_text() == stamp(text)


def test_schema_is_draft07_editor_friendly_and_documented():
    schema = committed("schema/project.schema.json")
    Draft7Validator.check_schema(schema)
    text = json.dumps(schema)
    assert "unevaluatedProperties" not in text and "$defs" not in text
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def fields(node: dict):
        for name, prop in node.get("properties", {}).items():
            yield name, prop
        for sub in node.get("definitions", {}).values():
            yield from fields(sub)

    for name, prop in fields(schema):
        assert prop.get("description"), f"{name} has no description"
        assert prop.get("examples"), f"{name} has no examples"


def test_example_projects_carry_the_modeline():
    for path in (REPO / "projects").glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        target = "defaults" if path.name == "_defaults.yaml" else "project"
        assert first == f"# yaml-language-server: $schema=../schema/{target}.schema.json", path


def _documents(root: Path):
    loaded = load_repo(root)
    return [s.data for s in loaded.projects]


def test_editor_schema_accepts_every_example_project():
    validator = Draft7Validator(committed("schema/project.schema.json"), format_checker=FormatChecker())
    for data in _documents(REPO):
        assert list(validator.iter_errors(data)) == []
        Project.model_validate(data)


# Cases whose problem is one of shape (types, keys, patterns, end-mode pairing): the editor schema
# must flag them too. Semantic ones (cron, timezone, cross-file, secrets by value) are chapctl's.
SHAPE_CASES = ["unknown-keys", "wrong-types", "negative-offset", "bad-name", "bad-end-date",
               "fixed-without-end-date", "offset-without-offset", "end-fields-with-wrong-mode",
               "many-files-all-reported"]


@pytest.mark.parametrize("case", SHAPE_CASES)
def test_editor_schema_rejects_the_shape_errors_chapctl_rejects(case):
    validator = Draft7Validator(committed("schema/project.schema.json"), format_checker=FormatChecker())
    documents = _documents(CASES / case)
    assert documents
    assert any(list(validator.iter_errors(d)) for d in documents)
