"""Random graphs and cases (`builder.py`), their features (`features.py`) and the op table's
sample cases (`samples.py`)."""

from .builder import (
    DEFAULT_CONFIG,
    GRAPH_ATTEMPTS,
    MAX_NODES_LIMIT,
    VALUE_BOUND,
    GeneratorConfig,
    Need,
    cases,
    generate_case,
)
from .choices import ChoiceSource, HypothesisChoices, NumpyChoices
from .features import STRUCTURAL_FEATURES, all_features, case_features, features_out_of_reach, node_features, op_pairs
from .samples import sample_case, sample_cases

__all__ = [
    "DEFAULT_CONFIG",
    "GRAPH_ATTEMPTS",
    "MAX_NODES_LIMIT",
    "STRUCTURAL_FEATURES",
    "VALUE_BOUND",
    "ChoiceSource",
    "GeneratorConfig",
    "HypothesisChoices",
    "Need",
    "NumpyChoices",
    "all_features",
    "case_features",
    "cases",
    "features_out_of_reach",
    "generate_case",
    "node_features",
    "op_pairs",
    "sample_case",
    "sample_cases",
]
