"""The campaign store: every finished case of an audit, appended to `DIR/campaign.jsonl` as it
completes, so that a Ctrl-C, a killed worker or a killed main process loses no finished case,
and `autodiff-audit audit --resume DIR` continues the campaign to its target without redoing
any of them.

The first line holds the audit's configuration; every other line holds one case's result
(its findings, kinks, coverage and timings), written and flushed as a whole line. The store is
always readable, and `--resume` always takes it up:
- an append that fails (a full disk: ENOSPC, EFBIG past a file size limit, EDQUOT) is cut off
  again, so no half line is left; the error names the store (`OSError.filename`);
- a last line cut short by a kill is ignored on reading, and cut off before the next append;
- an unreadable line anywhere else (binary or ASCII garbage, a line that is not a case) is
  skipped, with one warning line on stderr saying how many: those cases are audited again.
  Only the first line, the configuration, must be readable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .check import CaseResult, Finding
from .crash import Crash
from .format import json_default
from .kinds import Kind

STORE = "campaign.jsonl"


class CampaignError(ValueError):
    """A store that cannot be resumed: one line, for the user."""


def result_json(result: CaseResult) -> dict:
    return dataclasses.asdict(dataclasses.replace(result, evaluations=None, mode_answers=None))


def result_from_json(fields: dict) -> CaseResult:
    def finding(stored: dict) -> Finding:
        crash = Crash(**stored["crash"]) if stored.get("crash") else None
        return Finding(**{**stored, "kind": Kind(stored["kind"]), "crash": crash})

    findings = [finding(stored) for stored in fields.pop("findings")]
    return CaseResult(**fields, findings=findings)


class CampaignStore:
    """Append-only: one JSON line per finished case, after the configuration's line. `config`
    is the audit's configuration as JSON (the audit's `AuditConfig.to_json`); `finished`, the
    cases the store holds (one per index, in case order)."""

    def __init__(self, path: Path, config: dict, finished: list[CaseResult]):
        self.path = Path(path)
        self.config = config
        self.finished = finished
        self.tail_checked = False  # whether a line cut short by a kill has been dealt with

    @classmethod
    def start(cls, path: Path, config: dict) -> CampaignStore:
        """A new store at `path`, holding `config` and no case yet."""
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"campaign": config}, default=json_default) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            Path(path).unlink(missing_ok=True)  # half a configuration would be no store at all
            raise _naming(error, path) from None
        return cls(path, config, [])

    def append(self, results: list[CaseResult]) -> None:
        """Add the finished cases, each as a whole line, flushed to the disk. A write that fails is
        undone (the file is cut back to where it ended), so no half line is ever left behind."""
        data = "".join(json.dumps({"case": result_json(r)}, default=json_default) + "\n" for r in results).encode()
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise _naming(error, self.path) from None
        try:
            end = os.lseek(descriptor, 0, os.SEEK_END)
            if not self.tail_checked:
                end = _end_a_cut_line(descriptor, end)
                self.tail_checked = True
            try:
                written = memoryview(data)
                while written:
                    written = written[os.write(descriptor, written) :]
                os.fsync(descriptor)
            except OSError:
                os.ftruncate(descriptor, end)  # truncating needs no space
                raise
        except OSError as error:
            raise _naming(error, self.path) from None
        finally:
            os.close(descriptor)

    @classmethod
    def resume(cls, path: Path, say: Callable[[str], None] | None = None) -> CampaignStore:
        """The store at `path`, with the campaign's configuration and its finished cases. Lines
        that cannot be read are skipped, and `say` (a line on stderr, by default) tells how many."""
        where = f"--resume: {path}"
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise CampaignError(f"{where}: cannot read it: {error.strerror or error}") from None
        # `lines`, every line ended by a newline; `cut`, what follows the last one: nothing, unless
        # a kill cut the last write short.
        *lines, cut = data.split(b"\n")
        if not lines:
            lines, cut = [cut], b""
        try:
            config = json.loads(lines[0].decode("utf-8"))["campaign"]
            if not isinstance(config, dict):
                raise TypeError("the configuration is not an object")
        except UNREADABLE as error:
            raise CampaignError(
                f"{where}: not a campaign store: its first line, the campaign's configuration, is unreadable "
                f"({type(error).__name__})"
            ) from None
        results: dict[int, CaseResult] = {}
        unreadable: list[int] = []
        for number, line in enumerate(lines[1:], start=2):
            result = _case(line)
            if result is None:
                unreadable.append(number)
            else:
                results[result.index] = result
        last = _case(cut) if cut else None  # a line cut short is no case: that case is audited again
        if last is not None:
            results[last.index] = last
        if unreadable:
            count = len(unreadable)
            numbers = ", ".join(map(str, unreadable[:5])) + (", ..." if count > 5 else "")
            (say or _warn)(
                f"autodiff-audit: warning: --resume: skipped {count} unreadable line{'s' * (count > 1)} of {path} "
                f"(line{'s' * (count > 1)} {numbers}); {'those cases are' if count > 1 else 'that case is'} "
                "audited again"
            )
        return cls(path, config, [results[index] for index in sorted(results)])


# What reading a line that is not what it should be raises: bytes that are not UTF-8, text that is
# not JSON, JSON that is not a case (a missing key, a wrong type, an unknown kind), or nested too deep.
UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, RecursionError)


def _case(line: bytes) -> CaseResult | None:
    """The case a store's line holds, or None if it cannot be read."""
    try:
        return result_from_json(json.loads(line.decode("utf-8"))["case"])
    except UNREADABLE:
        return None


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _naming(error: OSError, path: Path) -> OSError:
    """`error`, naming the file it is about (a failed write's error names none)."""
    if error.filename is None:
        error.filename = str(path)
    return error


def _end_a_cut_line(descriptor: int, end: int) -> int:
    """Where the next line may start in the store open at `descriptor` (`end` bytes long): at its
    end, unless its last line was cut short (no newline) by a kill. Such a line is cut off if it is
    not a whole case, and ended with a newline if it is (or if it is the configuration's own line,
    which `resume` read whole)."""
    if end == 0 or os.pread(descriptor, 1, end - 1) == b"\n":
        return end
    start, tail = end, b""
    while start > 0 and b"\n" not in tail:
        step = min(start, 1 << 16)
        start -= step
        tail = os.pread(descriptor, step, start) + tail
    begins = start + tail.rfind(b"\n") + 1  # 0 if the store has no newline at all
    if begins > 0 and _case(tail[begins - start :]) is None:
        os.ftruncate(descriptor, begins)
        return begins
    os.write(descriptor, b"\n")
    return end + 1
