"""Reports: the report as typed data (`model.py`, built by `build.py`), rendered for people
(`markdown.py`, `terminal.py`), reproducers (`reproduce.py`), and the files written (`write.py`)."""

from .build import build_report, case_file, minimal_file, reproducer_file, versions
from .markdown import failure_view, print_all_view, render_markdown, replay_command
from .model import Report
from .reproduce import check_reproducer, reproducer_source
from .write import ReportFolder, ReportFolderError, claim_report_folder, write_report

__all__ = [
    "Report",
    "ReportFolder",
    "ReportFolderError",
    "build_report",
    "case_file",
    "check_reproducer",
    "claim_report_folder",
    "failure_view",
    "minimal_file",
    "print_all_view",
    "render_markdown",
    "replay_command",
    "reproducer_file",
    "reproducer_source",
    "versions",
    "write_report",
]
