"""Rules of the delicate elementwise functions (softplus, log_sigmoid, log1p, expm1, logaddexp,
erf, atan2) and of the existing ones that saturate (sigmoid, tanh): stable numpy forwards,
the domains that take them far out, or tiny, part of the time, and the features that say so.
Nothing here names an op; `table.py` uses them."""

from __future__ import annotations

import math

import numpy as np

from .entry import FAR_FROM, Domain

# log1p: a >= -0.9, so 1 / (1 + a) <= 10 (like log's margin of 0.1); tiny operands part of the time.
LOG1P_OPERAND = Domain(minimum=-0.9, tiny=True)
# expm1: exp(6.5) = 665 stays within the value bound, as for exp; tiny operands part of the time.
EXPM1_OPERAND = Domain(bound={"float64": 6.5, "float32": 6.5}, tiny=True)
# atan2(a, b): a kept 0.1 from 0 keeps (a, b) off (0, 0), where atan2 is not differentiable,
# and off the branch cut (a = 0, b < 0), where it jumps by 2 pi; its derivatives
# b / (a^2 + b^2) and -a / (a^2 + b^2) stay at most 10, like div's.
ATAN2_ANGLE = Domain(away_from=(0.0,), margin=0.1)

TINY = 1e-6  # an operand whose elements are all at most this (and not all 0) is tiny


def sigmoid(a: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-a)) for a >= 0, exp(a) / (1 + exp(a)) for a < 0: no exponent is positive.
    return np.exp(np.minimum(a, 0)) / (1 + np.exp(-np.abs(a)))


def softplus(a: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, a)  # max(a, 0) + log1p(exp(-|a|)): nothing overflows


def log_sigmoid(a: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -a)


_erf = np.vectorize(math.erf, otypes=[np.float64])  # numpy has no erf; math's is correctly rounded to an ulp or so


def erf(a: np.ndarray) -> np.ndarray:
    return _erf(a) if np.ndim(a) else np.float64(math.erf(float(a)))


def far_features(prefix: str):
    """`features` of an op whose operands go far out: `<prefix>_far_operands` when one does."""
    return lambda shapes, attrs, values: {f"{prefix}_far_operands"} if any_far(values) else set()


def any_far(values: list) -> bool:
    return any(float(np.max(np.abs(value), initial=0.0)) >= FAR_FROM for value in values)


def tiny_features(prefix: str):
    """`features` of an op whose operands go tiny: `<prefix>_tiny_operands` when one is."""

    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        magnitude = float(np.max(np.abs(values[0]), initial=0.0)) if values else 0.0
        return {f"{prefix}_tiny_operands"} if 0 < magnitude <= TINY else set()

    return features


def far(prefix: str) -> dict:
    """What an entry takes to go far out: the domain (for every operand), its feature."""
    return {"features": far_features(prefix), "feature_names": (f"{prefix}_far_operands",)}


def tiny(prefix: str) -> dict:
    return {"features": tiny_features(prefix), "feature_names": (f"{prefix}_tiny_operands",)}
