"""Validating a report.json against docs/report.schema.json, for tests/test_report_schema.py and
for the check in conftest.py that every report the suite writes matches it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

REPO = Path(__file__).parents[1]
SCHEMA = REPO / "docs" / "report.schema.json"
MANIFEST = ".autodiff-audit.json"  # a report folder's list of the files the harness wrote there


class ReportSchemaError(AssertionError):
    """A report.json that does not match docs/report.schema.json."""


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def schema_errors(report) -> list[str]:
    """Each way `report` (parsed JSON) breaks the schema, as "at <JSON path>: <message>".

    The schema's top level is oneOf(audit report, selftest report), whose own error says only
    "not valid under any of the given schemas"; the errors shown are those of the branch the
    report means to be (a selftest report has `bugs`)."""
    branch = 1 if isinstance(report, dict) and "bugs" in report else 0
    problems = []
    for error in _validator().iter_errors(report):
        if error.validator == "oneOf" and not error.path and error.context:
            chosen = [e for e in error.context if e.schema_path and e.schema_path[0] == branch]
            errors = chosen or list(error.context)
        else:
            errors = [error]
        problems += [f"at {e.json_path}: {_explain(e)}" for e in errors]
    return problems


def _explain(error: jsonschema.ValidationError) -> str:
    """The error's message; for a value that fits none of the alternatives of a oneOf/anyOf, the
    failure of the alternative that came closest (of the value's own type, and fitting the furthest)."""
    if not error.context:
        return _short(error.message)
    own_type = [e for e in error.context if not (e.validator == "type" and not e.relative_path)] or error.context
    deepest = max(len(e.relative_path) for e in own_type)  # the alternative that fit the furthest
    closest = jsonschema.exceptions.best_match(e for e in own_type if len(e.relative_path) == deepest)
    return f"fits none of the allowed forms; closest: at {closest.json_path}: {_explain(closest)}"


def validate_report(path) -> dict:
    """The report.json at `path`, parsed; ReportSchemaError naming each failing path if it does not
    match docs/report.schema.json. (json reads the NaN/Infinity tokens the harness may write.)"""
    path = Path(path)
    report = json.loads(path.read_text(encoding="utf-8"))
    problems = schema_errors(report)
    if problems:
        raise ReportSchemaError(
            f"{path} does not match {SCHEMA.relative_to(REPO)}:\n" + "\n".join(f"  {p}" for p in problems[:20])
        )
    return report


def reports_written_under(folder: Path) -> list[Path]:
    """Every report.json the harness wrote below `folder`: listed in its folder's manifest (a file
    a test wrote itself, say a broken copy, is not)."""
    found = []
    for manifest in sorted(Path(folder).rglob(MANIFEST)):
        try:
            files = json.loads(manifest.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if "report.json" in files and (manifest.parent / "report.json").is_file():
            found.append(manifest.parent / "report.json")
    return found
