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

from .audit import AuditConfig
from .check import CaseResult, Finding
from .generate import GeneratorConfig
from .report.markdown import json_default

STORE = "campaign.jsonl"


class CampaignError(ValueError):
    """A store that cannot be resumed: one line, for the user."""


def config_json(config: AuditConfig) -> dict:
    fields = dataclasses.asdict(config)
    fields["report"] = str(config.report)
    fields["oracles"] = list(config.oracles)
    fields["generator"] = {**dataclasses.asdict(config.generator), "ops": list(config.generator.ops)}
    return fields


def config_from_json(fields: dict) -> AuditConfig:
    generator = GeneratorConfig(**{**fields["generator"], "ops": tuple(fields["generator"]["ops"])})
    return AuditConfig(
        **{**fields, "generator": generator, "oracles": tuple(fields["oracles"]), "report": Path(fields["report"])}
    )


def result_json(result: CaseResult) -> dict:
    fields = dataclasses.asdict(dataclasses.replace(result, evaluations=None))
    return fields


def result_from_json(fields: dict) -> CaseResult:
    findings = [Finding(**finding) for finding in fields.pop("findings")]
    return CaseResult(**fields, findings=findings)


class CampaignStore:
    """Append-only: one JSON line per finished case, after the configuration's line."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, config: AuditConfig) -> None:
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"campaign": config_json(config)}, default=json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, results: list[CaseResult]) -> None:
        lines = "".join(json.dumps({"case": result_json(r)}, default=json_default) + "\n" for r in results)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def load(self) -> tuple[AuditConfig, list[CaseResult]]:
        """The campaign's configuration and its finished cases (one per index, in case order)."""
        where = f"--resume: {self.path}"
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise CampaignError(f"{where}: cannot read it: {error.strerror or error}") from None
        try:
            config = config_from_json(json.loads(lines[0])["campaign"])
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
        return config, [results[index] for index in sorted(results)]
