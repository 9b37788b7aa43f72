"""THE op table: every op of the graph format, declared once.

An entry (see `entry.py`) is data: name, arity, attrs with defaults and their checks,
whether it broadcasts, its shape rule and plain-numpy forward, the domain of each operand,
how the generator plans its operands, the graph features it produces, the samples the
table-driven tests run it on, and where it is not differentiable. The generator, the
validator, the numeric oracle, comparison, shrinking, triage, coverage and the docs all
derive from `OPS`; `tests/test_op_table.py` runs every entry against every backend.

Adding an op starts here and touches every file docs/adding-an-op.md lists (the backends' maps,
the engine's node class, the planted engines of the selftest, the docs).
"""

from __future__ import annotations

import numpy as np

from . import bounds, contractions, delicate, fused, joining, products, selection, shaping, statistics, windows
from .entry import REAL, Domain, Kink, Op
from .planning import Planner, Sample
from .rules import (
    REDUCTION,
    REDUCTION_SAMPLES,
    UNARY_SAMPLES,
    broadcast_shape,
    broadcast_slot_feature,
    check_axis_and_keepdims,
    is_int,
    reduced_shape,
    reduction_feature_names,
    reduction_features,
    same_shape,
)

# ---- power ---------------------------------------------------------------------------------------

GENERATED_EXPONENTS = (2, 3)  # where power's bugs live (the notebook dropped the factor x); any real operand


def _check_power(attrs: dict) -> str | None:
    exponent = attrs["exponent"]
    if not is_int(exponent):
        return f"exponent must be an integer, got {exponent!r}"
    if abs(exponent) > 64:  # beyond this any operand but 0 and +-1 over- or underflows float64
        shown = str(exponent) if len(str(exponent)) <= 20 else f"a number of {len(str(exponent))} digits"
        return f"exponent must be between -64 and 64, got {shown}"
    return None


def _plan_power(context, shape: tuple):
    return [shape], {"exponent": context.choice(GENERATED_EXPONENTS)}


# ---- the wider op set ----------------------------------------------------------------------------

# exp(6.5) = 665: within the generator's value bound of 1e3.
EXP_OPERAND = Domain(bound={"float64": 6.5, "float32": 6.5})
# A float32 intermediate of size s carries an absolute error of about s * 1e-7 per op; through
# sin and cos it stays below float32's tolerance while |a| <= 20.
PERIODIC_OPERAND = Domain(bound={"float64": 1e3, "float32": 20.0})
POSITIVE = Domain(positive=True, margin=0.1)  # log, sqrt, the base of pow: 1/a and 1/sqrt(a) stay modest
AWAY_FROM_KINK = Domain(away_from=(0.0,))  # relu and abs
DENOMINATOR = Domain(away_from=(0.0,), margin=0.1)  # a / b: 1/b <= 10
EXPONENT = Domain(bound={"float64": 3.0, "float32": 3.0})  # a ** b with a >= 0.1 stays within the value bound


def _unary(name: str, meaning: str, forward, domain: Domain | None = None, **entry) -> Op:
    return Op(name, 1, meaning, same_shape, lambda a, attrs: forward(a), domains=(domain,) if domain else None, **entry)


def _far(name: str, meaning: str, forward, arity: int = 1, **entry) -> Op:
    """An elementwise op whose operands go far out part of the time (delicate.py)."""
    return Op(
        name, arity, meaning, broadcast_shape if arity == 2 else same_shape, lambda *args: forward(*args[:-1]),
        broadcasts=arity == 2, domains=(fused.FAR_OUT,) * arity, **delicate.far(name), **entry,
    )  # fmt: skip


def _reduction(name: str, meaning: str, forward, **entry) -> Op:
    entry = {"features": reduction_features(name), "feature_names": reduction_feature_names(name), **entry}
    return Op(
        name, 1, meaning, reduced_shape, forward, attrs={"axis": None, "keepdims": False},
        check_attrs=check_axis_and_keepdims, planner=REDUCTION, samples=REDUCTION_SAMPLES, **entry,
    )  # fmt: skip


def _along_axis(name: str, meaning: str, forward) -> Op:
    return Op(
        name, 1, meaning, fused.along_axis_shape, forward,
        attrs={"axis": -1}, check_attrs=fused.check_axis, domains=(fused.FAR_OUT,), planner=fused.ALONG_AXIS,
        features=fused.along_axis_features(name), feature_names=fused.along_axis_feature_names(name),
        samples=fused.ALONG_AXIS_SAMPLES,
    )  # fmt: skip


def _cumulative(name: str, meaning: str, function, **entry) -> Op:
    """cumsum and cumprod: `function` along `axis` (-1 by default); a product's slices get zeros."""
    product = entry.get("zeros_in_slices", False)
    features = products.product_features(name, reduction=False) if product else products.axis_features(name)
    names = products.product_feature_names(name, reduction=False) if product else products.axis_feature_names(name)
    return Op(
        name, 1, meaning, fused.along_axis_shape, products.cumulative_forward(function),
        attrs={"axis": -1}, check_attrs=fused.check_axis, planner=fused.ALONG_AXIS,
        features=features, feature_names=names, samples=fused.ALONG_AXIS_SAMPLES, **entry,
    )  # fmt: skip


def _logsumexp_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    found = reduction_features("logsumexp")(shapes, attrs, values)
    return found | ({"logsumexp_large_operands"} if fused.large_operand(values) else set())


# relu'(0) may be anything in [0, 1], abs'(0) anything in [-1, 1]: the subgradients there.
RELU_KINK = Kink("point", "relu'(0)", points=(0.0,), derivative=(0.0, 1.0))
ABS_KINK = Kink("point", "abs'(0)", points=(0.0,), derivative=(-1.0, 1.0))
# On a bound clip's derivative may be anything in [0, 1]: PyTorch gives 1, JAX 0.5.
# A tie within a window: PyTorch and JAX give the window's cotangent to its first maximum.
MAX_POOL_KINK = Kink("window_tie", "max_pool1d tie")
CLIP_KINK = Kink("point", "clip'(bound)", point_attrs=("lo", "hi"), derivative=(0.0, 1.0))


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("add", 2, "elementwise `a + b`", broadcast_shape, lambda a, b, _: a + b, broadcasts=True),
        Op("subtract", 2, "elementwise `a - b`", broadcast_shape, lambda a, b, _: a - b, broadcasts=True),
        Op("mult", 2, "elementwise `a * b`", broadcast_shape, lambda a, b, _: a * b, broadcasts=True),
        Op(
            "power",
            1,
            "elementwise `a ** exponent`",
            same_shape,
            lambda a, attrs: a ** attrs["exponent"],
            attrs={"exponent": 2},
            check_attrs=_check_power,
            planner=Planner(lambda shape, max_rank: True, _plan_power),
            features=lambda shapes, attrs, values: {f"exponent_{attrs['exponent']}"} & {"exponent_2", "exponent_3"},
            feature_names=("exponent_2", "exponent_3"),
            samples=tuple(Sample(s.shapes, {"exponent": n}) for n in (2, 3, 1, 0) for s in UNARY_SAMPLES[::2]),
            notes=f"generated with exponents {', '.join(map(str, GENERATED_EXPONENTS))}",
        ),
        Op(
            "reduce_sum",
            1,
            "sum of elements, all or along one axis",
            reduced_shape,
            lambda a, attrs: np.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
            attrs={"axis": None, "keepdims": False},
            check_attrs=check_axis_and_keepdims,
            planner=REDUCTION,
            features=reduction_features("reduce_sum"),
            feature_names=reduction_feature_names("reduce_sum"),
            samples=REDUCTION_SAMPLES,
        ),
        Op("dot", 2, "numpy `a @ b` for 1-D and 2-D operands", **contractions.DOT),
        _far("sigmoid", "`1 / (1 + exp(-a))`", delicate.sigmoid),
        _unary("neg", "`-a`", np.negative),
        _unary("exp", "`e ** a`", np.exp, EXP_OPERAND),
        _unary("log", "natural log", np.log, POSITIVE),
        _unary("sqrt", "square root", np.sqrt, POSITIVE),
        _far("tanh", "hyperbolic tangent", np.tanh),
        _unary("sin", "sine (radians)", np.sin, PERIODIC_OPERAND),
        _unary("cos", "cosine (radians)", np.cos, PERIODIC_OPERAND),
        _unary("relu", "`max(a, 0)`", lambda a: np.maximum(a, 0.0), AWAY_FROM_KINK, kinks=(RELU_KINK,)),
        _unary("abs", "absolute value", np.abs, AWAY_FROM_KINK, kinks=(ABS_KINK,)),
        Op(
            "div",
            2,
            "elementwise `a / b`",
            broadcast_shape,
            lambda a, b, _: a / b,
            broadcasts=True,
            domains=(Domain(), DENOMINATOR),
            features=broadcast_slot_feature(1, "div_broadcast_denominator"),
            feature_names=("div_broadcast_denominator",),
        ),
        Op(
            "maximum",
            2,
            "elementwise max",
            broadcast_shape,
            lambda a, b, _: np.maximum(a, b),
            broadcasts=True,
            no_ties="operands",
            kinks=(Kink("tie", "maximum tie"),),
        ),
        Op(
            "pow",
            2,
            "elementwise `a ** b`",
            broadcast_shape,
            lambda a, b, _: a**b,
            broadcasts=True,
            domains=(POSITIVE, EXPONENT),
            features=broadcast_slot_feature(1, "pow_broadcast_exponent"),
            feature_names=("pow_broadcast_exponent",),
        ),
        _reduction(
            "reduce_mean",
            "mean, all or along one axis",
            lambda a, attrs: np.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
        ),
        _reduction(
            "reduce_max",
            "max, all or along one axis",
            lambda a, attrs: np.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
            no_ties="axis",
            kinks=(Kink("axis_tie", "reduce_max tie"),),
        ),
        Op(
            "transpose",
            1,
            "numpy `transpose(a, axes)`",
            shaping.transpose_shape,
            lambda a, attrs: np.transpose(a, attrs["axes"]),
            attrs={"axes": None},
            check_attrs=shaping.check_axes,
            planner=shaping.TRANSPOSE,
            features=shaping.transpose_features,
            feature_names=shaping.TRANSPOSE_FEATURES,
            samples=shaping.TRANSPOSE_SAMPLES,
            notes="axes null reverses them",
        ),
        Op(
            "reshape",
            1,
            "numpy `reshape(a, shape)`, C order",
            shaping.reshape_shape,
            lambda a, attrs: np.reshape(a, attrs["shape"]),
            attrs={"shape": []},
            check_attrs=shaping.check_shape_attr,
            planner=shaping.RESHAPE,
            features=shaping.reshape_features,
            feature_names=shaping.RESHAPE_FEATURES,
            samples=shaping.RESHAPE_SAMPLES,
        ),
        Op(
            "broadcast_to",
            1,
            "numpy `broadcast_to(a, shape)`",
            shaping.broadcast_to_shape,
            lambda a, attrs: np.array(np.broadcast_to(a, attrs["shape"])),
            attrs={"shape": []},
            check_attrs=shaping.check_shape_attr,
            planner=shaping.BROADCAST_TO,
            features=shaping.broadcast_to_features,
            feature_names=shaping.BROADCAST_TO_FEATURES,
            samples=shaping.BROADCAST_TO_SAMPLES,
        ),
        _along_axis("softmax", "`exp(a - max) / sum(exp(a - max))` along `axis`", fused.softmax),
        _along_axis("log_softmax", "`a - logsumexp(a)` along `axis`", fused.log_softmax),
        _reduction(
            "logsumexp",
            "`log(sum(exp(a)))`, stable, all or along one axis",
            fused.logsumexp,
            domains=(fused.FAR_OUT,),
            features=_logsumexp_features,
            feature_names=(*reduction_feature_names("logsumexp"), "logsumexp_large_operands"),
        ),
        # ---- the third op wave: products, prefixes, selection and data movement ----
        _reduction(
            "reduce_prod",
            "product of elements, all or along one axis",
            products.reduce_prod_forward,
            domains=(products.FACTOR,),
            zeros_in_slices=True,
            features=products.product_features("reduce_prod", reduction=True),
            feature_names=products.product_feature_names("reduce_prod", reduction=True),
        ),
        _cumulative("cumsum", "running sum along `axis`", np.cumsum),
        _cumulative(
            "cumprod", "running product along `axis`", np.cumprod, domains=(products.FACTOR,), zeros_in_slices=True
        ),
        Op(
            "minimum",
            2,
            "elementwise min",
            broadcast_shape,
            lambda a, b, _: np.minimum(a, b),
            broadcasts=True,
            no_ties="operands",
            kinks=(Kink("tie", "minimum tie"),),
        ),
        _reduction(
            "reduce_min",
            "min, all or along one axis",
            lambda a, attrs: np.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
            no_ties="axis_min",
            kinks=(Kink("axis_tie", "reduce_min tie", lowest=True),),
        ),
        Op("clip", 1, "numpy `clip(a, lo, hi)`", kinks=(CLIP_KINK,), **bounds.CLIP),
        Op("where", 2, "numpy `where(mask, a, b)`: the broadcast shape of all three", **selection.WHERE),
        Op("take", 1, "numpy `take(a, indices, axis)`", **selection.TAKE),
        Op("slice", 1, "numpy basic slicing `a[start0:stop0:step0, ...]`", **selection.SLICE),
        Op("concatenate", 2, "numpy `concatenate(operands, axis)`", **joining.CONCATENATE),
        Op("stack", 2, "numpy `stack(operands, axis)`: a new axis", **joining.STACK),
        # ---- the third op wave: delicate functions, statistics, contractions and windows ----
        _far("softplus", "`log(1 + exp(a))`, stable", delicate.softplus),
        _far("log_sigmoid", "`log(sigmoid(a))` = `-softplus(-a)`", delicate.log_sigmoid),
        _unary("log1p", "`log(1 + a)`", np.log1p, delicate.LOG1P_OPERAND, **delicate.tiny("log1p")),
        _unary("expm1", "`exp(a) - 1`", np.expm1, delicate.EXPM1_OPERAND, **delicate.tiny("expm1")),
        _far("logaddexp", "`log(exp(a) + exp(b))`, stable", np.logaddexp, arity=2),
        _unary("erf", "the error function", delicate.erf),
        Op(
            "atan2",
            2,
            "`atan2(a, b)`",
            broadcast_shape,
            lambda a, b, _: np.arctan2(a, b),
            broadcasts=True,
            domains=(delicate.ATAN2_ANGLE, REAL),
            notes="so (a, b) stays off (0, 0), and off the branch cut a = 0, b < 0",
        ),
        Op("var", 1, "variance, all or along one axis", **statistics.VAR),
        Op("std", 1, "`sqrt(var)`", **statistics.STD),
        Op("norm", 1, "Euclidean norm `sqrt(sum(a ** 2))`, all or along one axis", **statistics.NORM),
        Op(
            "matmul",
            2,
            "numpy `matmul`: batch axes broadcast; a 1-D operand gets an axis removed after",
            **contractions.MATMUL,
        ),
        Op("einsum", 1, "numpy `einsum(subscripts, *operands)`, explicit (with `->`)", **contractions.EINSUM),
        Op(
            "conv1d",
            2,
            "PyTorch's `conv1d`: x `(N, C_in, W)`, w `(C_out, C_in / groups, K)`, zero padding",
            **windows.CONV1D,
        ),
        Op(
            "max_pool1d",
            1,
            "PyTorch's `max_pool1d` over the last axis of `(N, C, W)`, no padding",
            kinks=(MAX_POOL_KINK,),
            **windows.MAX_POOL1D,
        ),
    ]
}
