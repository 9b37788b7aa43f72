"""Kink mode's operands: fresh inputs that sit exactly on an op's kink (a point, a tie between
operands, a tie along the reduced axis, a tie within a window), for `_GraphBuilder` (builder.py),
which this is a part of."""

from __future__ import annotations

import numpy as np

from ..ops import Op
from .values import Need, slot_need

P_KINK_ELEMENT = 0.5  # each element (or row) of such an input sits on the kink; at least one does


class KinkOperands:
    """The kink-mode part of the graph builder: it uses the builder's `source`, `values`,
    `draw` and `add_input`."""

    def on_kink(self, shape: tuple) -> np.ndarray:
        """Which elements of a value of `shape` go on the kink: each with P_KINK_ELEMENT, and one at least."""
        mask = np.array([self.source.boolean(P_KINK_ELEMENT) for _ in range(int(np.prod(shape)))], dtype=bool)
        if mask.size:
            mask[self.source.integer(0, mask.size - 1)] = True
        return mask.reshape(shape)

    def kink_operands(self, op: Op, attrs: dict, shape: tuple, shapes: list[tuple]) -> list[str] | None:
        """Fresh inputs for `op` exactly on its kink, or None where its shapes allow none (a
        reduce_max along an axis of size 1)."""
        kink = op.kinks[0]
        if kink.where == "point":
            value = self.draw(shapes[0], Need(op.domain(0, attrs)))
            points = kink.points_for(attrs)  # clip has two: each chosen element sits on one of them
            on = points[0]
            if len(points) > 1:
                on = np.reshape([self.source.choice(points) for _ in value.flat], value.shape)
            return [self.add_input(shapes[0], value=np.where(self.on_kink(shapes[0]), on, value))]
        if kink.where == "tie":
            # Both operands have the result's shape, so every tied element is one element of each.
            first = self.add_input(shape)
            other = self.draw(shape, Need(apart_from=self.values[first]))
            tied = np.where(self.on_kink(shape), self.values[first], other)
            return [first, self.add_input(shape, value=tied)]
        if kink.where == "window_tie":
            return self.window_tie_operand(op, attrs, shapes[0])
        axis = attrs.get("axis")
        rows = self.draw(shapes[0], Need(distinct_max=True, lowest=kink.lowest, axis=axis))
        rows = rows.reshape(1, -1) if axis is None else np.moveaxis(rows, axis, -1).copy()
        if rows.shape[-1] < 2:
            return None
        if kink.lowest:  # a tie of minima is a tie of maxima of the negated rows
            rows = -rows
        # The runner-up of each chosen row is raised to the row's maximum: an exact tie of two.
        order = np.argsort(rows, axis=-1)
        top = np.take_along_axis(rows, order[..., -1:], axis=-1)
        chosen = self.on_kink(rows.shape[:-1])[..., None]
        runner_up = np.where(chosen, top, np.take_along_axis(rows, order[..., -2:-1], axis=-1))
        np.put_along_axis(rows, order[..., -2:-1], runner_up, axis=-1)
        if kink.lowest:
            rows = -rows
        value = rows.reshape(shapes[0]) if axis is None else np.moveaxis(rows, -1, axis)
        return [self.add_input(shapes[0], value=value)]

    def window_tie_operand(self, op: Op, attrs: dict, shape: tuple) -> list[str] | None:
        """A fresh input for a max_pool1d with a tie in one window of each chosen row: the
        window's runner-up raised to its maximum. None for windows of one element."""
        kernel = attrs["kernel"]
        stride = attrs["stride"] or kernel
        if kernel < 2:
            return None
        value = self.draw(shape, slot_need(op, attrs, 0))
        count = (shape[-1] - kernel) // stride + 1
        chosen = self.on_kink(shape[:-1])
        for row in zip(*np.nonzero(chosen)):
            start = self.source.integer(0, count - 1) * stride
            window = value[row][start : start + kernel]
            order = np.argsort(window)
            value[(*row, start + order[-2])] = window[order[-1]]
        return [self.add_input(shape, value=value)]
