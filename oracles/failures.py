"""The failure database, in the spirit of Hypothesis's example database: every minimal failing
case an audit finds in an engine is kept, and the next audit of that engine replays them all
before its first random graph. A bug that was fixed is reported fixed; one that comes back is
a regression, on the terminal in the first second.

It lives in `.autodiff-audit/` in the working folder (`--failures DIR` or AUTODIFF_AUDIT_FAILURES
moves it), one folder per engine (its spec, as typed), and in each, per case:
- `<id>.case.json`: the minimal case, in the graph format (`autodiff-audit replay` reads it);
- `<id>.json`: what it is (kind, op, node), when it was found and by which report, and its status.

`autodiff-audit failures list` shows it, `autodiff-audit failures clear` empties it. Clearing
removes only files this module wrote: entries that carry its MARKER, and the case beside each.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .files import write_whole
from .format import FormatError, case_to_json, load_case, validate_case

DEFAULT_FOLDER = Path(".autodiff-audit")
ENVIRONMENT = "AUTODIFF_AUDIT_FAILURES"
MARKER = "autodiff-audit failure database entry"
STILL_FAILS, FIXED, REGRESSION = "still fails", "fixed", "regression"


NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a full disk, a file size limit, a quota


class FailureDatabaseError(ValueError):
    """A database that cannot be read or written: one line, for the user. `no_space` if a write
    failed for want of space (the command line exits 4 for it, as for any full disk)."""

    def __init__(self, message: str, no_space: bool = False):
        super().__init__(message)
        self.no_space = no_space


@dataclass
class Entry:
    id: str  # a digest of the case: the same minimal case is kept once
    engine: str  # the engine's spec, as given to --engine
    kind: str
    op: str | None
    node: str | None
    found: str  # ISO date and time
    report: str  # the report folder of the audit that found it
    status: str = STILL_FAILS  # or FIXED; a fixed case that fails again is a regression
    checked: str | None = None  # when an audit last replayed it
    format: str = MARKER

    def describe(self) -> str:
        where = f" in {self.op}" if self.op else ""
        return f"{self.id} ({self.kind}{where})"


def default_folder() -> Path:
    return Path(os.environ.get(ENVIRONMENT) or DEFAULT_FOLDER)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _engine_folder_name(spec: str) -> str:
    # Readable, and unique: two specs that read alike after cleaning still get two folders.
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec)[:80]
    return f"{readable}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def case_id(case_json: dict) -> str:
    return hashlib.sha256(json.dumps(case_json, sort_keys=True).encode()).hexdigest()[:16]


class FailureDatabase:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _folder(self, engine: str) -> Path:
        return self.root / _engine_folder_name(engine)

    def case_path(self, entry: Entry) -> Path:
        return self._folder(entry.engine) / f"{entry.id}.case.json"

    def _entry_path(self, entry: Entry) -> Path:
        return self._folder(entry.engine) / f"{entry.id}.json"

    def entries(self, engine: str | None = None) -> list[Entry]:
        """The entries of `engine` (every engine's if None), oldest first; files that are not
        entries are left alone, and an entry whose case is gone or unreadable is skipped."""
        if not self.root.is_dir():
            return []
        folders = [self._folder(engine)] if engine is not None else sorted(p for p in self.root.iterdir() if p.is_dir())
        found = []
        for folder in folders:
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                if path.name.endswith(".case.json"):
                    continue
                entry = _read_entry(path)
                if entry is not None and self.case_path(entry).is_file():
                    found.append(entry)
        return sorted(found, key=lambda entry: (entry.engine, entry.found, entry.id))

    def load(self, entry: Entry):
        """The entry's case; FailureDatabaseError if its file no longer holds a valid case."""
        try:
            return load_case(self.case_path(entry))
        except FormatError as error:
            raise FailureDatabaseError(f"failure database: {error}") from None

    def add(
        self, engine: str, case_json: dict, kind: str, op: str | None, node: str | None, report: str
    ) -> tuple[str, bool]:
        """Keep a minimal failing case, once; returns its id and whether it is new (one kept before
        is marked failing)."""
        validate_case(case_json, where="a minimal case")
        entry = Entry(case_id(case_json), engine, kind, op, node, _now(), report)
        existing = _read_entry(self._entry_path(entry))
        if existing is not None:
            existing.status = STILL_FAILS
            entry = existing
            self._write(self._entry_path(entry), asdict(entry))
            return entry.id, False
        self._write(self.case_path(entry), case_json)
        try:
            self._write(self._entry_path(entry), asdict(entry))
        except FailureDatabaseError:
            self.case_path(entry).unlink(missing_ok=True)  # written just now: no case without its entry
            raise
        return entry.id, True

    def record(self, entry: Entry, fails: bool) -> str:
        """Store what replaying `entry` showed; returns its outcome (see replay_outcome)."""
        outcome = replay_outcome(entry, fails)
        entry.status = STILL_FAILS if fails else FIXED
        entry.checked = _now()
        self._write(self._entry_path(entry), asdict(entry))
        return outcome

    def clear(self, engine: str | None = None) -> int:
        """Remove the entries of `engine` (of every engine if None) and their cases; returns how many."""
        removed = 0
        for entry in self.entries(engine):
            self.case_path(entry).unlink(missing_ok=True)
            self._entry_path(entry).unlink(missing_ok=True)
            removed += 1
            folder = self._folder(entry.engine)  # the database made it; the root may be the user's
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return removed

    def _write(self, path: Path, content: dict) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, json.dumps(content, indent=1) + "\n")  # whole or not at all, even if killed now
        except OSError as error:
            raise FailureDatabaseError(
                f"failure database {self.root}: cannot write {path.name}: {error.strerror or error}",
                no_space=error.errno in NO_SPACE,
            ) from None


def replay_outcome(entry: Entry, fails: bool) -> str:
    """STILL_FAILS, FIXED, or REGRESSION for a case that was fixed before and fails again."""
    return (REGRESSION if entry.status == FIXED else STILL_FAILS) if fails else FIXED


def _read_entry(path: Path) -> Entry | None:
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(fields, dict) or fields.get("format") != MARKER:
            return None
        return Entry(**fields)
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class FailureDatabaseRun:
    """What an audit did with the failure database: the known cases it replayed first and how
    each came out (by id), and the new minimal cases it kept."""

    folder: str
    known: int
    replayed: int
    not_replayed: int
    failing: int  # still failing or regressed: these fail the audit
    still_fails: list[str]
    regressions: list[str]
    fixed: list[str]
    added: list[str]
    errors: list[str]  # what could not be written to the database


class KnownFailures:
    """The failure database's side of one audit: the engine's known cases to replay first, what
    each replay showed (recorded as it comes), and the audit's new minimal cases kept at the end.
    `say` gets one line for the terminal at each step (a warning, a replay's outcome)."""

    def __init__(self, database: FailureDatabase, engine_spec: str, engine_name: str, report: str, say=print):
        self.database, self.engine_spec, self.engine_name, self.report = database, engine_spec, engine_name, report
        self.say = say
        self.entries: list[Entry] = []
        self.cases: list[dict] = []  # graph-format JSON, one per entry
        for entry in database.entries(engine_spec):
            try:
                self.cases.append(case_to_json(database.load(entry)))
                self.entries.append(entry)
            except FailureDatabaseError as error:  # a damaged entry is skipped, not the audit
                say(f"autodiff-audit: warning: {error}: skipped")
        self.outcomes: dict[str, list[str]] = {STILL_FAILS: [], FIXED: [], REGRESSION: []}
        self.errors: list[str] = []
        self.not_kept = 0  # writes that failed for want of space: the command line exits 4 for them
        self.added: list[str] = []
        if self.entries:
            say(f"failure database: replaying the {len(self.entries)} kept cases of {engine_spec} first")

    def replayed(self, k: int, result) -> None:
        """Record what replaying entry `k` gave (a CaseResult)."""
        entry = self.entries[k]
        if result.skipped:
            return  # the engine declines it now: neither fixed nor failing
        fails = any(f.kind.rule.discrepancy and f.backend == self.engine_name for f in result.findings)
        try:
            outcome = self.database.record(entry, fails)
        except FailureDatabaseError as error:  # the audit and its report go on; the database keeps its old word
            self._failed(error)
            outcome = replay_outcome(entry, fails)
        self.outcomes[outcome].append(entry.id)
        self.say(f"failure database: {entry.describe()}: {outcome.upper() if outcome == REGRESSION else outcome}")

    def keep(self, investigations) -> None:
        """Keep the engine's new minimal cases: only those that failed again when checked against
        every reference (a case that does not reproduce is no bug to replay), and never a
        reference's finding (that is not this engine's bug)."""
        for investigation in investigations:
            if (
                investigation.minimal is None
                or not investigation.confirmed
                or investigation.backend != self.engine_name
            ):
                continue
            try:
                kept, new = self.database.add(
                    self.engine_spec, investigation.minimal, str(investigation.kind), investigation.op,
                    investigation.node, self.report,
                )  # fmt: skip
            except FailureDatabaseError as error:  # never at the cost of the report
                self._failed(error)
                continue
            if new:
                self.added.append(kept)
        for problem in sorted(set(self.errors)):
            if not self.not_kept:  # a full disk is one line, the command line's
                self.say(f"autodiff-audit: warning: {problem}")

    def _failed(self, error: FailureDatabaseError) -> None:
        self.errors.append(str(error))
        self.not_kept += error.no_space

    def summary(self) -> FailureDatabaseRun:
        replayed = sum(len(ids) for ids in self.outcomes.values())
        return FailureDatabaseRun(
            folder=str(self.database.root), known=len(self.entries), replayed=replayed,
            not_replayed=len(self.entries) - replayed,
            failing=len(self.outcomes[STILL_FAILS]) + len(self.outcomes[REGRESSION]),
            still_fails=self.outcomes[STILL_FAILS], regressions=self.outcomes[REGRESSION],
            fixed=self.outcomes[FIXED], added=sorted(set(self.added)), errors=sorted(set(self.errors)),
        )  # fmt: skip
