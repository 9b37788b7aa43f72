"""What comparison works with: each backend's answer (`Evaluation`, `NumericResult`), one
comparison of two answers (`Check`), a discrepancy (`Finding`), and all of them for a case
(`Verdict`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..crash import Crash
from ..kinds import Kind


@dataclass
class Evaluation:
    """What one backend returned for one case."""

    backend: str
    role: str  # "engine" or "reference"
    value: np.ndarray | None = None
    gradients: dict[str, np.ndarray] | None = None
    crash: Crash | None = None  # how it failed to answer
    seconds: float = 0.0


@dataclass
class NumericResult:
    """The finite-difference oracle's answer: forward value and one directional estimate per input."""

    value: np.ndarray
    directions: dict[str, np.ndarray]
    estimates: dict[str, tuple[float, float]]  # input -> (estimate, error bound)
    crash: Crash | None = None


@dataclass
class Check:
    quantity: str  # "value" or "gradient"
    input: str | None
    backends: tuple[str, str]
    error: float
    tolerance: float

    @property
    def margin(self) -> float:
        return self.error / self.tolerance if self.tolerance > 0 else (0.0 if self.error == 0 else np.inf)

    @property
    def passed(self) -> bool:
        return self.margin <= 1.0


@dataclass
class Finding:
    """A discrepancy: which backend, which quantity, what kind, and the arrays."""

    kind: Kind
    backend: str | None
    quantity: str | None
    input: str | None
    detail: str
    expected: object = None
    actual: object = None
    margin: float | None = None
    expected_backends: list[str] = field(default_factory=list)
    op: str | None = None  # the op at fault, once triage has named it
    crash: Crash | None = None  # for a crash or a timeout: how it happened


@dataclass
class Verdict:
    checks: list[Check]
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return not self.findings
