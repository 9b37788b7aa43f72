"""The campaign store: every finished case of an audit, appended to `DIR/campaign.jsonl` as it
completes, so that a Ctrl-C, a killed worker or a killed main process loses no finished case,
and `autodiff-audit audit --resume DIR` continues the campaign to its target without redoing
any of them.

The first line holds the audit's configuration; every other line holds one case's result
(its findings, kinks, coverage and timings), written and flushed as a whole line. A last line
cut short by a kill is ignored on reading, so the store is always readable.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .check import CaseResult, Finding
from .crash import Crash
from .format import json_default
from .kinds import Kind

STORE = "campaign.jsonl"


class CampaignError(ValueError):
    """A store that cannot be resumed: one line, for the user."""


def result_json(result: CaseResult) -> dict:
    return dataclasses.asdict(dataclasses.replace(result, evaluations=None))


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

    @classmethod
    def start(cls, path: Path, config: dict) -> CampaignStore:
        """A new store at `path`, holding `config` and no case yet."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"campaign": config}, default=json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return cls(path, config, [])

    def append(self, results: list[CaseResult]) -> None:
        lines = "".join(json.dumps({"case": result_json(r)}, default=json_default) + "\n" for r in results)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def resume(cls, path: Path) -> CampaignStore:
        """The store at `path`, with the campaign's configuration and its finished cases."""
        where = f"--resume: {path}"
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise CampaignError(f"{where}: cannot read it: {error.strerror or error}") from None
        try:
            config = json.loads(lines[0])["campaign"]
            if not isinstance(config, dict):
                raise TypeError("the configuration is not an object")
        except (IndexError, ValueError, KeyError, TypeError) as error:
            raise CampaignError(f"{where}: not a campaign store ({type(error).__name__})") from None
        results: dict[int, CaseResult] = {}
        for number, line in enumerate(lines[1:], start=2):
            try:
                result = result_from_json(json.loads(line)["case"])
            except (ValueError, KeyError, TypeError):
                if number == len(lines):  # the last line, cut short by a kill: that case is redone
                    continue
                raise CampaignError(f"{where}: line {number} is not a finished case") from None
            results[result.index] = result
        return cls(path, config, [results[index] for index in sorted(results)])
