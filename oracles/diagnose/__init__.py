"""Diagnosing a failing case: triage down to the op (`triage.py`), the finding's final kind and
op (`diagnosis.py`, the one place they are set), and shrinking to a minimal case that keeps
that diagnosis (`shrink.py`, `investigate.py`)."""

from .diagnosis import Diagnosis, diagnose, engine_findings, settle
from .investigate import Investigation, Target, investigate
from .shrink import ShrinkResult, shrink, size
from .triage import NOT_CHECKED, OK, NodeReport, Triage, adjoints, local_names, one_node_case, triage

__all__ = [
    "NOT_CHECKED",
    "OK",
    "Diagnosis",
    "Investigation",
    "NodeReport",
    "ShrinkResult",
    "Target",
    "Triage",
    "adjoints",
    "diagnose",
    "engine_findings",
    "investigate",
    "local_names",
    "one_node_case",
    "settle",
    "shrink",
    "size",
    "triage",
]
