"""Reports: the report as data (`build.py`), rendered for people (`markdown.py`), reproducers
(`reproduce.py`), and the files written (`write.py`)."""

from .build import build_report, case_file, minimal_file, reproducer_file, versions
from .markdown import json_default, print_all_view, render_markdown, replay_command
from .reproduce import check_reproducer, reproducer_source
from .write import ReportFolder, ReportFolderError, claim_report_folder, write_report

__all__ = [
    "ReportFolder",
    "ReportFolderError",
    "build_report",
    "case_file",
    "check_reproducer",
    "claim_report_folder",
    "json_default",
    "minimal_file",
    "print_all_view",
    "render_markdown",
    "replay_command",
    "reproducer_file",
    "reproducer_source",
    "versions",
    "write_report",
]
