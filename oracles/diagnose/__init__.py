"""Diagnosing a failing case: triage down to the op (`triage.py`), the finding's final kind and
op (`diagnosis.py`, the one place they are set), and shrinking to a minimal case that keeps
that diagnosis (`shrink.py`, `investigate.py`)."""

from .diagnosis import NOT_A_DISCREPANCY, RULE_KINDS, diagnose_case, engine_findings, settle
from .investigate import Investigation, Target, accepted, investigate
from .shrink import ShrinkResult, shrink, size
from .triage import NodeReport, Triage, adjoints, local_names, one_node_case, triage

__all__ = [
    "NOT_A_DISCREPANCY",
    "RULE_KINDS",
    "Investigation",
    "NodeReport",
    "ShrinkResult",
    "Target",
    "Triage",
    "accepted",
    "adjoints",
    "diagnose_case",
    "engine_findings",
    "investigate",
    "local_names",
    "one_node_case",
    "settle",
    "shrink",
    "size",
    "triage",
]
