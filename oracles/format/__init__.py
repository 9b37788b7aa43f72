"""The graph format (version 1): graphs and cases, validated, loaded and saved (`graph.py`)."""

from .graph import (
    DTYPES,
    FORMAT,
    MAX_ELEMENTS,
    VERSION,
    Case,
    FormatError,
    case_to_json,
    infer_shapes,
    json_default,
    load_case,
    read_json,
    reference_values,
    save_case,
    validate_case,
    validate_graph,
)

__all__ = [
    "DTYPES",
    "FORMAT",
    "MAX_ELEMENTS",
    "VERSION",
    "Case",
    "FormatError",
    "case_to_json",
    "infer_shapes",
    "json_default",
    "load_case",
    "read_json",
    "reference_values",
    "save_case",
    "validate_case",
    "validate_graph",
]
