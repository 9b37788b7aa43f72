"""Rules of the ops over windows of the last axis (conv1d, max_pool1d), as PyTorch defines
them: shape rules, attr checks, numpy forwards, planners, features and samples. Nothing here
names an op; `table.py` uses them.

Where their bugs live: a stride that skips input elements (and a width it does not divide, so
the last elements reach no window), zero padding, dilation (gaps inside a window), groups
(each output channel sees a slice of the input channels), and windows that overlap, so that
one input element takes the cotangent of several.
"""

from __future__ import annotations

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError
from .rules import is_int

MAX_WINDOW_ATTR = 2**31 - 1


def _positive_ints(attrs: dict, names: tuple[str, ...], least: int = 1) -> str | None:
    for name in names:
        value = attrs[name]
        if not is_int(value) or not least <= value <= MAX_WINDOW_ATTR:
            return f"{name} must be an integer from {least} to {MAX_WINDOW_ATTR}, got {value!r}"
    return None


def _windows(a: np.ndarray, span: int, stride: int, dilation: int = 1) -> np.ndarray:
    """The windows along the last axis: shape (..., count, kernel), element k of window j at
    a[..., j * stride + k * dilation]."""
    view = np.lib.stride_tricks.sliding_window_view(a, span, axis=-1)[..., ::stride, :]
    return view[..., ::dilation]


def _out_width(width: int, span: int, stride: int) -> int:
    return (width - span) // stride + 1


# ---- conv1d ----------------------------------------------------------------------------------------


def check_conv1d(attrs: dict) -> str | None:
    return _positive_ints(attrs, ("stride", "dilation", "groups")) or _positive_ints(attrs, ("padding",), least=0)


def conv1d_shape(x: tuple, w: tuple, attrs: dict) -> tuple:
    if len(x) != 3 or len(w) != 3:
        raise ShapeError(f"conv1d takes x (N, C_in, W) and w (C_out, C_in / groups, K), got {list(x)} and {list(w)}")
    (batch, channels, width), (out_channels, per_group, kernel) = x, w
    groups = attrs["groups"]
    if channels % groups or out_channels % groups or per_group * groups != channels:
        raise ShapeError(f"groups {groups} do not fit x of shape {list(x)} and w of shape {list(w)}")
    span = attrs["dilation"] * (kernel - 1) + 1
    padded = width + 2 * attrs["padding"]
    if kernel == 0 or padded < span:
        raise ShapeError(f"a window of {span} does not fit a padded width of {padded} (shapes {list(x)}, {list(w)})")
    return (batch, out_channels, _out_width(padded, span, attrs["stride"]))


def conv1d(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """y[n, o, j] = sum over the group's channels c and k of x_padded[n, c, j stride + k dilation] w[o, c, k]."""
    padding, groups = attrs["padding"], attrs["groups"]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    span = attrs["dilation"] * (w.shape[2] - 1) + 1
    windows = _windows(padded, span, attrs["stride"], attrs["dilation"])  # (N, C_in, W_out, K)
    per_group_in, per_group_out = x.shape[1] // groups, w.shape[0] // groups
    parts = [
        np.einsum(
            "ncjk,ock->noj",
            windows[:, g * per_group_in : (g + 1) * per_group_in],
            w[g * per_group_out : (g + 1) * per_group_out],
        )
        for g in range(groups)
    ]
    return np.concatenate(parts, axis=1)


def _plan_conv1d(context: PlanContext, shape: tuple):
    batch, out_channels, out_width = shape
    groups = context.choice([g for g in (1, 2, 3) if out_channels % g == 0])
    kernel = context.integer(1, 3)
    stride, dilation = context.integer(1, 2), context.integer(1, 2)
    padding = context.integer(0, 1)
    span = dilation * (kernel - 1) + 1
    remainder = context.integer(0, stride - 1)  # widths the stride does not divide
    width = (out_width - 1) * stride + span + remainder - 2 * padding
    if width < 1:  # the padding alone would hold the window
        width, padding = width + 2 * padding, 0
    per_group = context.dim()
    return [(batch, per_group * groups, width), (out_channels, per_group, kernel)], {
        "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
    }  # fmt: skip


def _conv1d_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    found = {f"conv1d_{name}" for name in ("stride", "dilation", "groups") if attrs[name] > 1}
    if attrs["padding"] > 0:
        found.add("conv1d_padding")
    (_, _, width), (_, _, kernel) = shapes
    span = attrs["dilation"] * (kernel - 1) + 1
    if (width + 2 * attrs["padding"] - span) % attrs["stride"]:
        found.add("conv1d_width_not_divided")
    return found


CONV1D = {
    "shape": conv1d_shape,
    "forward": conv1d,
    "attrs": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    "check_attrs": check_conv1d,
    "planner": Planner(lambda shape, max_rank: len(shape) == 3 and max_rank >= 3, _plan_conv1d),
    "features": _conv1d_features,
    "feature_names": (
        "conv1d_stride",
        "conv1d_padding",
        "conv1d_dilation",
        "conv1d_groups",
        "conv1d_width_not_divided",
    ),
    "samples": (
        Sample(((1, 1, 3), (1, 1, 2))),
        Sample(((2, 2, 5), (3, 2, 2)), {"stride": 2}),
        Sample(((1, 2, 4), (2, 2, 3)), {"padding": 1}),
        Sample(((1, 1, 6), (2, 1, 2)), {"dilation": 2}),
        Sample(((2, 4, 3), (2, 2, 2)), {"groups": 2}),
        Sample(((1, 4, 7), (4, 2, 2)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
    ),
}

# ---- max_pool1d ------------------------------------------------------------------------------------


def check_max_pool1d(attrs: dict) -> str | None:
    problem = _positive_ints(attrs, ("kernel",))
    if problem is None and attrs["stride"] is not None:
        problem = _positive_ints(attrs, ("stride",))
    return problem


def pool_stride(attrs: dict) -> int:
    return attrs["stride"] or attrs["kernel"]  # null means the kernel: windows side by side


def max_pool1d_shape(x: tuple, attrs: dict) -> tuple:
    if len(x) != 3:
        raise ShapeError(f"max_pool1d takes x of shape (N, C, W), got {list(x)}")
    if x[2] < attrs["kernel"]:
        raise ShapeError(f"a window of {attrs['kernel']} does not fit a width of {x[2]}")
    return (x[0], x[1], _out_width(x[2], attrs["kernel"], pool_stride(attrs)))


def max_pool1d(x: np.ndarray, attrs: dict) -> np.ndarray:
    return np.max(_windows(x, attrs["kernel"], pool_stride(attrs)), axis=-1)


def _plan_max_pool1d(context: PlanContext, shape: tuple):
    kernel = context.integer(2, 3)
    stride = context.choice([None, 1, 2])  # below the kernel: overlapping windows
    step = stride or kernel
    width = (shape[2] - 1) * step + kernel + context.integer(0, step - 1)
    return [(shape[0], shape[1], width)], {"kernel": kernel, "stride": stride}


def _max_pool1d_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    (_, _, width) = shapes[0]
    step = pool_stride(attrs)
    found = set()
    if step < attrs["kernel"] and _out_width(width, attrs["kernel"], step) >= 2:
        found.add("max_pool1d_overlapping")
    if (width - attrs["kernel"]) % step:
        found.add("max_pool1d_width_not_divided")
    return found


MAX_POOL1D = {
    "shape": max_pool1d_shape,
    "forward": max_pool1d,
    "attrs": {"kernel": 2, "stride": None},
    "check_attrs": check_max_pool1d,
    "no_ties": "window",
    "planner": Planner(lambda shape, max_rank: len(shape) == 3 and max_rank >= 3, _plan_max_pool1d),
    "features": _max_pool1d_features,
    "feature_names": ("max_pool1d_overlapping", "max_pool1d_width_not_divided"),
    "samples": (
        Sample(((1, 1, 4),)),
        Sample(((2, 1, 5),), {"kernel": 3, "stride": 1}),
        Sample(((1, 2, 6),), {"kernel": 3, "stride": 2}),
        Sample(((1, 1, 3),), {"kernel": 1}),
    ),
}
