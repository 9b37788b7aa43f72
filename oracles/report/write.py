"""Writing a report folder: report.json, report.md, each failing graph's case, each minimal case
and its standalone pytest reproducer, at the paths the report itself names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .markdown import json_default, render_markdown
from .reproduce import reproducer_source


def _write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def write_report(report: dict) -> tuple[Path, Path]:
    """Write the report into the folder it names (`summary.report_folder`)."""
    directory = Path(report["summary"]["report_folder"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("cases", "reproducers"):  # an earlier audit's files would be mistaken for this one's
        shutil.rmtree(directory / stale, ignore_errors=True)
    for entry in report["discrepancies"]:
        if entry["case_file"] and not Path(entry["case_file"]).exists():
            _write(entry["case_file"], json.dumps(entry["case"], indent=1) + "\n")
    spec, seed = report["summary"]["backends"]["engine_spec"], report["summary"]["seed"]
    for investigation in report["minimal_cases"]:
        if investigation["case_file"]:
            _write(investigation["case_file"], json.dumps(investigation["minimal"], indent=1) + "\n")
        if investigation["reproducer"]:
            _write(investigation["reproducer"], reproducer_source(investigation, spec, seed))
    json_path, md_path = directory / "report.json", directory / "report.md"
    json_path.write_text(json.dumps(report, indent=1, default=json_default) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
