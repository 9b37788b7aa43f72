"""Rules of the ops over windows of the last axis (conv1d, max_pool1d), as PyTorch defines
them: shape rules, attr checks, numpy forwards, planners, features and samples. Nothing here
names an op; `table.py` uses them.

Where their bugs live: a stride that skips input elements (and a width it does not divide, so
the last elements reach no window), zero padding, dilation (gaps inside a window), groups
(each output channel sees a slice of the input channels), and windows that overlap, so that
one input element takes the cotangent of several.
"""

from __future__ import annotations

import itertools

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


def windows_of(a: np.ndarray, span: int, stride: int, dilation: int = 1) -> np.ndarray:
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
    windows = windows_of(padded, span, attrs["stride"], attrs["dilation"])  # (N, C_in, W_out, K)
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


def _conv1d_layouts(out_width: int, room: int) -> list[tuple[int, dict, int]]:
    """Every (kernel, attrs but groups, input width) with a kernel of 1 to 3, stride, dilation
    and padding up to 2, 2 and 1, and each remainder the stride leaves (widths it does not
    divide), whose input width is at most `room`. Kernel 1 with stride 1 always fits."""
    layouts = []
    for kernel, stride, dilation, padding in itertools.product((1, 2, 3), (1, 2), (1, 2), (0, 1)):
        span = dilation * (kernel - 1) + 1
        for remainder in range(stride):
            width = (out_width - 1) * stride + span + remainder - 2 * padding
            if 1 <= width <= room and kernel <= room:
                layouts.append((kernel, {"stride": stride, "padding": padding, "dilation": dilation}, width))
    return layouts


def _plan_conv1d(context: PlanContext, shape: tuple):
    """One layout of those that fit the config's axes, drawn evenly, and groups that divide
    both channel counts."""
    batch, out_channels, out_width = shape
    room = context.max_dim
    groups = context.choice([g for g in (1, 2, 3) if out_channels % g == 0 and g <= room])
    per_group = context.integer(1, room // groups)
    kernel, attrs, width = context.choice(_conv1d_layouts(out_width, room))
    return [(batch, per_group * groups, width), (out_channels, per_group, kernel)], {**attrs, "groups": groups}


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
    return np.max(windows_of(x, attrs["kernel"], pool_stride(attrs)), axis=-1)


def _plan_max_pool1d(context: PlanContext, shape: tuple):
    """A window of 2 or 3, side by side or overlapping (a stride below the kernel), and each
    remainder the stride leaves: one of those whose input fits the config's axes, drawn evenly
    (a window of 2 with stride 1 always fits: `least_dim`)."""
    layouts = [
        ((shape[2] - 1) * (stride or kernel) + kernel + remainder, {"kernel": kernel, "stride": stride})
        for kernel, stride in itertools.product((2, 3), (None, 1, 2))
        for remainder in range(stride or kernel)
    ]
    width, attrs = context.choice([layout for layout in layouts if layout[0] <= context.max_dim])
    return [(shape[0], shape[1], width)], attrs


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
    "planner": Planner(
        lambda shape, max_rank: len(shape) == 3 and max_rank >= 3,
        _plan_max_pool1d,
        least_dim=lambda shape: shape[2] + 1,
    ),
    "features": _max_pool1d_features,
    "feature_names": ("max_pool1d_overlapping", "max_pool1d_width_not_divided"),
    "samples": (
        Sample(((1, 1, 4),)),
        Sample(((2, 1, 5),), {"kernel": 3, "stride": 1}),
        Sample(((1, 2, 6),), {"kernel": 3, "stride": 2}),
        Sample(((1, 1, 3),), {"kernel": 1}),
    ),
}
