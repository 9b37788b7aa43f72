"""Windows along the last axis, as PyTorch has them: conv1d (cross-correlation) and
max_pool1d, on inputs of shape (N, C, W).

Both gather the windows with index arithmetic: window t, tap k reads position
t * stride + k * dilation. The gradient goes back the same way, added with np.add.at,
since windows that overlap read a position more than once and each reading adds its part.
"""

from __future__ import annotations

import numpy as np

from .nodes import GraphError, NodeBase


def _positive_int(name: str, attr: str, value, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise GraphError(f"node {name!r}: {attr} must be an int >= {least}, got {value!r}")
    return int(value)


def _window_positions(width: int, kernel: int, stride: int, dilation: int = 1) -> np.ndarray:
    """positions[t, k] = t * stride + k * dilation: the W_out x K positions the windows read."""
    span = dilation * (kernel - 1) + 1  # from a window's first position to its last, inclusive
    count = (width - span) // stride + 1
    if count < 1:
        raise ValueError(f"a window of span {span} does not fit in a width of {width}")
    return np.arange(count)[:, None] * stride + np.arange(kernel)[None, :] * dilation


def _three_axes(value, what: str):
    if np.ndim(value) != 3:
        raise ValueError(f"{what} must have 3 axes, got shape {np.shape(value)}")


class NodeConv1d(NodeBase):
    """PyTorch's `conv1d(x, w)` without bias: x (N, C_in, W), w (C_out, C_in / groups, K) give
    (N, C_out, W_out), out[n, o, t] = sum_{c, k} w[o, c, k] x_padded[n, c_g + c, t*stride + k*dilation],
    with c_g the first input channel of output channel o's group. Zero padding on both sides."""

    arity = 2

    def __init__(self, name: str, input_nodes=None, stride=1, padding=0, dilation=1, groups=1):
        super().__init__(name, input_nodes)
        self.stride = _positive_int(name, "stride", stride)
        self.padding = _positive_int(name, "padding", padding, least=0)
        self.dilation = _positive_int(name, "dilation", dilation)
        self.groups = _positive_int(name, "groups", groups)

    def grouped_windows(self, x=None, w=None):
        """(the windows of x as (N, groups, C_in / groups, W_out, K), w as (groups, C_out / groups,
        C_in / groups, K), the positions the windows read in the padded x). x and w are the
        inputs' values, unless given (forward_tangent gives their tangents)."""
        if x is None:
            x, w = (node.value for node in self.inputs)
        _three_axes(x, "x")
        _three_axes(w, "w")
        (n, c_in, width), (c_out, c_group, kernel), g = x.shape, w.shape, self.groups
        if c_in % g or c_out % g or c_group != c_in // g:
            raise ValueError(f"{g} group(s) do not fit x of {c_in} channels and w of shape {w.shape}")
        p = self.padding
        positions = _window_positions(width + 2 * p, kernel, self.stride, self.dilation)
        windows = np.pad(x, ((0, 0), (0, 0), (p, p)))[:, :, positions]  # (N, C_in, W_out, K)
        # Output channel o uses the input channels of group o // (C_out / groups).
        grouped = windows.reshape(n, g, c_group, *positions.shape)
        return grouped, w.reshape(g, c_out // g, c_group, kernel), positions

    def forward(self, value=None):
        windows, w, _ = self.grouped_windows()
        out = np.einsum("ngcwk,gock->ngow", windows, w)  # per group: sum over its channels and the taps
        self.value = out.reshape(out.shape[0], -1, out.shape[-1])

    def backward(self):
        gradient = self.total_gradient()
        x, w = (node.value for node in self.inputs)
        windows, grouped_w, positions = self.grouped_windows()
        grouped_gradient = np.reshape(gradient, (x.shape[0], self.groups, -1, positions.shape[0]))
        # out is linear in each: d out[n,o,t] / d w[o,c,k] = window[n,c,t,k], summed over n and t;
        # d out[n,o,t] / d window[n,c,t,k] = w[o,c,k], summed over the group's output channels.
        part_w = np.einsum("ngcwk,ngow->gock", windows, grouped_gradient).reshape(w.shape)
        window_parts = np.einsum("ngow,gock->ngcwk", grouped_gradient, grouped_w).reshape(x.shape[:2] + positions.shape)
        # Each window element came from padded position positions[t, k]: add every one back
        # there (np.add.at adds repeated positions up), then drop the padding.
        # (zeros_like: a Dual for Dual window parts, which add.at adds into; see dual.py)
        padded = np.zeros_like(window_parts, shape=(*x.shape[:2], x.shape[2] + 2 * self.padding))
        np.add.at(padded, (slice(None), slice(None), positions), window_parts)
        part_x = padded[:, :, self.padding : self.padding + x.shape[2]]
        self.store_gradients(gradient, part_x, part_w)

    def forward_tangent(self):
        # d conv(x, w) = conv(dx, w) + conv(x, dw): conv is bilinear (and the zero padding is constant).
        x, w = self.inputs
        windows, grouped_w, _ = self.grouped_windows()
        tangent_windows, grouped_tangent_w, _ = self.grouped_windows(x.tangent, w.tangent)
        conv = "ngcwk,gock->ngow"  # forward's, per group
        out = np.einsum(conv, tangent_windows, grouped_w) + np.einsum(conv, windows, grouped_tangent_w)
        self.tangent = out.reshape(self.value.shape)


class NodeMaxPool1d(NodeBase):
    """PyTorch's `max_pool1d(x, kernel, stride)` without padding on x (N, C, W): the max of each
    window of `kernel` positions, windows `stride` apart (stride None = kernel), so they may overlap."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, kernel=2, stride=None):
        super().__init__(name, input_nodes)
        self.kernel = _positive_int(name, "kernel", kernel)
        self.stride = self.kernel if stride is None else _positive_int(name, "stride", stride)

    def windows(self):
        """(x's windows as (N, C, W_out, kernel), the positions they read)."""
        x = self.inputs[0].value
        _three_axes(x, "x")
        positions = _window_positions(x.shape[2], self.kernel, self.stride)
        return x[:, :, positions], positions

    def forward(self, value=None):
        self.value = np.max(self.windows()[0], axis=-1)

    def backward(self):
        gradient = self.total_gradient()
        windows, positions = self.windows()
        # d max / d element = 1 at the window's maximum, 0 elsewhere. At a tie the whole cotangent
        # goes to the first maximal element (PyTorch and JAX): argmax picks the first. Selected,
        # not multiplied, so that an inf cotangent puts no nan on the other elements.
        first = np.argmax(windows, axis=-1)[..., None] == np.arange(self.kernel)
        window_parts = np.where(first, gradient[..., None], 0)
        # Overlapping windows share elements: each window's part adds up at its element.
        part = np.zeros_like(window_parts, shape=np.shape(self.inputs[0].value))  # (a Dual for a Dual)
        np.add.at(part, (slice(None), slice(None), positions), window_parts)
        self.store_gradients(gradient, part)

    def forward_tangent(self):
        # d max = the tangent at the window's first maximum, backward's choice at a tie.
        windows, positions = self.windows()
        first = np.argmax(windows, axis=-1)[..., None]
        tangent_windows = self.inputs[0].tangent[:, :, positions]
        self.tangent = np.take_along_axis(tangent_windows, first, axis=-1)[..., 0]
