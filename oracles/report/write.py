"""Writing a report folder: report.json, report.md, each failing graph's case, each minimal case
and its standalone pytest reproducer, at the paths the report itself names.

The folder is the audit's alone while it runs, and never holds a half-written file:
- `claim_report_folder` takes a new or empty folder, or one an earlier audit wrote (its
  manifest, `.autodiff-audit.json`, lists every file it wrote). Anything else is refused, so
  the harness never deletes or overwrites what it did not write. It then removes the files
  the manifest lists (they would be mistaken for this audit's), and takes a lock
  (`.autodiff-audit.lock`, holding the audit's process id): a second audit on the folder is
  refused while the first lives. The new manifest is written before any other file.
- every file is written to a temporary name beside it and renamed into place, which is atomic.
- a write that fails (a full disk) leaves no temporary file, and its `OSError` names the file.
  An audit stopped that way may leave a file of its own that the manifest does not list yet (a
  file is listed once written): in a folder with a manifest, a file with one of the names the
  harness gives (`OURS`: campaign.jsonl, engine.log, report.json, report.md, a case file under
  cases/, a reproducer under reproducers/ or upstream/, as report/build.py names them) counts as the
  harness's, so that folder is never refused for it; a temporary file left by a killed write
  neither. Any other file is the user's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from ..files import write_whole
from ..format.graph import finite_json
from .markdown import render_markdown
from .model import Report
from .reproduce import reproducer_source
from .upstream import adapter_source, upstream_for

MANIFEST = ".autodiff-audit.json"
LOCK = ".autodiff-audit.lock"
# The names the harness gives the files of a report folder (campaign.STORE, the engine's log,
# the report, and report/build.py's case_file, minimal_file and reproducer_file).
OURS = re.compile(
    r"campaign\.jsonl|engine\.log|report\.json|report\.md"
    r"|cases/case-\d{5,}(-[a-z0-9_]+-minimal)?\.json|reproducers/test_case_\d{5,}_[a-z0-9_]+\.py"
    r"|upstream/case_\d{5,}_[a-z0-9_]+\.py"
)


class ReportFolderError(Exception):
    """A report folder the audit may not use: one line, for the user."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ReportFolder:
    """A claimed report folder: locked, and emptied of the files an earlier audit wrote there."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.written: list[str] = []

    def claim(self, keep: tuple[str, ...] = ()) -> ReportFolder:
        """Lock the folder and remove an earlier audit's files, except those named in `keep`
        (a resumed campaign keeps its store and its engine log)."""
        directory = self.directory
        where = f"--report {str(directory)!r}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ReportFolderError(f"{where}: cannot write there: {error.strerror or error}") from None
        if not directory.is_dir():
            raise ReportFolderError(f"{where}: not a folder")
        lock = directory / LOCK
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _alive(holder):
                raise ReportFolderError(f"{where}: another audit (process {holder}) is writing there") from None
            lock.unlink(missing_ok=True)  # a lock left by an audit that is gone
            return self.claim(keep)
        except OSError as error:
            raise ReportFolderError(f"{where}: cannot write there: {error.strerror or error}") from None
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(f"{os.getpid()}\n")
        except OSError as error:
            lock.unlink(missing_ok=True)
            raise _naming(error, lock) from None
        try:
            self._clear_earlier(where, keep)
        except BaseException:
            self.release()
            raise
        return self

    def _clear_earlier(self, where: str, keep: tuple[str, ...] = ()) -> None:
        directory = self.directory
        manifest = directory / MANIFEST
        ours: list[str] = []
        if manifest.exists():
            try:
                ours = [os.path.normpath(str(name)) for name in json.loads(manifest.read_text())["files"]]
            except (OSError, ValueError, KeyError, TypeError):
                raise ReportFolderError(f"{where}: its {MANIFEST} is unreadable; use another folder") from None
            # A file of the harness's own that the manifest does not list yet: a write stopped
            # (a full disk) before the manifest's.
            ours += [
                os.path.normpath(relative)
                for path in directory.rglob("*")
                if path.is_file() and OURS.fullmatch(relative := path.relative_to(directory).as_posix())
            ]
        foreign = sorted(
            str(path.relative_to(directory))
            for path in directory.rglob("*")
            if path.is_file()
            and path.name not in (MANIFEST, LOCK)
            and not (path.name.startswith(".") and path.name.endswith(".tmp"))  # a write this harness left unfinished
            and str(path.relative_to(directory)) not in ours
        )
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise ReportFolderError(
                f"{where}: the folder holds files an audit did not write ({foreign[0]!r}{more}); "
                "name a new or empty folder"
            )
        inside = directory.resolve()
        for name in dict.fromkeys(ours):
            if name in keep:
                self.written.append(name)
                continue
            path = (directory / name).resolve()
            if path.is_relative_to(inside) and path != inside:  # a manifest names files in its folder only
                path.unlink(missing_ok=True)
        for path in directory.rglob(".*.tmp"):
            path.unlink(missing_ok=True)
        for folder in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: the earlier audit's own folders
        self.write_manifest()  # before any other file: whatever happens next, the folder is the harness's

    def write(self, path: str | Path, text: str) -> None:
        """Write `text` at `path` (inside the folder) atomically, and list it in the manifest."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, text)
        self.note(path)

    def note(self, path: str | Path) -> None:
        """List a file written into the folder (by this process or another) in the manifest."""
        relative = os.path.relpath(Path(path), self.directory)
        if relative not in self.written:
            self.written.append(relative)
            self.write_manifest()

    def write_manifest(self) -> None:
        manifest = {"written_by": "autodiff-audit", "files": sorted(self.written)}
        write_whole(self.directory / MANIFEST, json.dumps(manifest, indent=1))

    def release(self) -> None:
        lock = self.directory / LOCK
        with contextlib.suppress(OSError, ValueError):
            if int(lock.read_text().strip() or 0) == os.getpid():
                lock.unlink()

    def __enter__(self) -> ReportFolder:
        return self.claim()

    def __exit__(self, *exc) -> None:
        self.release()


def _naming(error: OSError, path: Path) -> OSError:
    """`error`, naming the file it is about (a failed write's error names none)."""
    if error.filename is None:
        error.filename = str(path)
    return error


def claim_report_folder(directory: Path, keep: tuple[str, ...] = ()) -> ReportFolder:
    return ReportFolder(directory).claim(keep)


def write_report(report: Report, folder: ReportFolder | None = None) -> tuple[Path, Path]:
    """Write the report into the folder it names (`summary.report_folder`), claiming it unless
    the caller has (`folder`)."""
    if folder is None:
        with ReportFolder(Path(report.summary.report_folder)) as claimed:
            return write_report(report, claimed)
    directory = folder.directory
    for entry in report.discrepancies:
        if entry.case_file and not Path(entry.case_file).exists():
            folder.write(entry.case_file, json.dumps(entry.case, indent=1) + "\n")
    spec, seed = report.summary.backends.engine_spec, report.summary.seed
    adapter = adapter_source(spec) if any(m.upstream for m in report.minimal_cases) else None
    for minimal in report.minimal_cases:
        if minimal.case_file:
            folder.write(minimal.case_file, json.dumps(minimal.minimal, indent=1) + "\n")
        if minimal.reproducer:
            folder.write(minimal.reproducer, reproducer_source(minimal, spec, seed))
        if minimal.upstream and adapter is not None:
            folder.write(minimal.upstream, upstream_for(minimal, adapter, report.summary.backends.engine, seed))
    json_path, md_path = directory / "report.json", directory / "report.md"
    # Standard JSON: a number that is not finite is written as the string "NaN", "Infinity" or
    # "-Infinity" (docs/report.schema.json), and allow_nan=False makes sure none slips through.
    folder.write(json_path, json.dumps(finite_json(report.to_json()), indent=1, allow_nan=False) + "\n")
    folder.write(md_path, render_markdown(report))
    return json_path, md_path
