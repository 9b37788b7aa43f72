"""Rules of the products that contract axes (dot, matmul, einsum): shape rules, attr checks,
planners, features and samples. Nothing here names an op; `table.py` uses them.

Where their bugs live: a transposition that a square matrix hides (dot), batch axes that
broadcast on one side and must be summed back, 1-D operands that get an axis and lose it
(matmul), and labels repeated within one operand (a diagonal, a trace), shared across
operands, or summed away (einsum).
"""

from __future__ import annotations

import re

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError

P_SQUARE = 0.4  # an inner size equals an outer size: square matrices hide transposition bugs

# ---- dot -----------------------------------------------------------------------------------------


def dot_shape(a: tuple, b: tuple, attrs: dict) -> tuple:
    if len(a) not in (1, 2) or len(b) not in (1, 2):
        raise ShapeError(f"dot takes 1-D or 2-D operands, got shapes {list(a)} and {list(b)}")
    if a[-1] != b[0]:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not fit a @ b ({a[-1]} != {b[0]})")
    return a[:-1] + b[1:]


def _dot_produces(shape: tuple, max_rank: int) -> bool:
    return (len(shape) == 0 and max_rank >= 1) or (len(shape) in (1, 2) and max_rank >= 2)


def _plan_dot(context: PlanContext, shape: tuple):
    if not shape:
        inner = context.dim()
        return [(inner,), (inner,)], {}
    inner = shape[0] if context.boolean(P_SQUARE) else context.dim()
    if len(shape) == 2:
        return [(shape[0], inner), (inner, shape[1])], {}
    if context.boolean(0.5):
        return [(shape[0], inner), (inner,)], {}
    return [(inner,), (inner, shape[0])], {}


def _dot_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    a, b = shapes
    if len(a) == 2 and len(b) == 2:
        if a[0] == a[1] == b[1] >= 2:  # a 1x1 matrix cannot show a transposition
            return {"dot_2d_2d_square"}
        return {"dot_2d_2d_non_square"} if a[0] != a[1] or b[0] != b[1] else set()
    return {f"dot_{len(a)}d_{len(b)}d"}


DOT = {
    "shape": dot_shape,
    "forward": lambda a, b, attrs: a @ b,
    "planner": Planner(_dot_produces, _plan_dot),
    "features": _dot_features,
    "feature_names": ("dot_1d_1d", "dot_2d_1d", "dot_1d_2d", "dot_2d_2d_square", "dot_2d_2d_non_square"),
    "samples": (
        Sample(((3,), (3,))),
        Sample(((2, 3), (3,))),
        Sample(((3,), (3, 2))),
        Sample(((2, 3), (3, 4))),
        Sample(((3, 3), (3, 3))),
        Sample(((1, 1), (1, 1))),
    ),
}

# ---- matmul ----------------------------------------------------------------------------------------


def matmul_shape(a: tuple, b: tuple, attrs: dict) -> tuple:
    """numpy's matmul: a 1-D operand gets an axis (in front for `a`, behind for `b`) that the
    result loses; the axes before the last two broadcast."""
    if not a or not b:
        raise ShapeError(f"matmul takes operands of rank 1 or more, got shapes {list(a)} and {list(b)}")
    rows = a if len(a) >= 2 else (1, *a)
    columns = b if len(b) >= 2 else (*b, 1)
    if rows[-1] != columns[-2]:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not fit a @ b ({rows[-1]} != {columns[-2]})")
    try:
        batch = tuple(np.broadcast_shapes(rows[:-2], columns[:-2]))
    except ValueError:
        raise ShapeError(f"the batch axes of shapes {list(a)} and {list(b)} do not broadcast") from None
    return batch + a[-2:-1] * (len(a) >= 2) + b[-1:] * (len(b) >= 2)


def _matmul_produces(shape: tuple, max_rank: int) -> bool:
    return max_rank >= max(len(shape), 1) and (len(shape) != 1 or max_rank >= 2)


def _plan_matmul(context: PlanContext, shape: tuple):
    inner = shape[-1] if shape and context.boolean(P_SQUARE) else context.dim()
    rank = len(shape)
    if rank == 0:
        return [(inner,), (inner,)], {}
    if rank == 1:  # a matrix times a vector, or a vector times a matrix
        return ([(shape[0], inner), (inner,)] if context.boolean(0.5) else [(inner,), (inner, shape[0])]), {}
    if rank == 2 and (context.max_rank < 3 or context.boolean(0.5)):
        return [(shape[0], inner), (inner, shape[1])], {}
    if rank == 2:  # a batch of matrices times a vector, or a vector times a batch of matrices
        if context.boolean(0.5):
            return [(*shape, inner), (inner,)], {}
        return [(inner,), (shape[0], inner, shape[1])], {}
    batch, rows, columns = shape
    left, right = (batch,), (batch,)
    side = context.integer(0, 2)  # 0: both batched alike; 1: the left side broadcast; 2: the right
    stretched = context.choice([(), (1,)])  # no batch axis at all, or one of size 1
    if side == 1:
        left = stretched
    elif side == 2:
        right = stretched
    return [(*left, rows, inner), (*right, inner, columns)], {}


def _matmul_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    a, b = shapes
    if len(a) == 1 or len(b) == 1:
        return {f"matmul_1d_{'both' if len(a) == len(b) else 'left' if len(a) == 1 else 'right'}"}
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    if not batch or int(np.prod(batch)) == 1:
        return {"matmul_2d_2d"}
    found = {"matmul_batched"}
    if tuple(a[:-2]) != tuple(batch):
        found.add("matmul_batch_broadcast_left")
    if tuple(b[:-2]) != tuple(batch):
        found.add("matmul_batch_broadcast_right")
    return found


MATMUL = {
    "shape": matmul_shape,
    "forward": lambda a, b, attrs: np.matmul(a, b),
    "planner": Planner(_matmul_produces, _plan_matmul),
    "features": _matmul_features,
    "feature_names": (
        "matmul_1d_both",
        "matmul_1d_left",
        "matmul_1d_right",
        "matmul_2d_2d",
        "matmul_batched",
        "matmul_batch_broadcast_left",
        "matmul_batch_broadcast_right",
    ),
    "samples": (
        Sample(((3,), (3,))),
        Sample(((3,), (3, 2))),
        Sample(((2, 3), (3,))),
        Sample(((2, 3), (3, 3))),
        Sample(((2, 2, 3), (3,))),
        Sample(((3,), (2, 3, 2))),
        Sample(((2, 2, 3), (2, 3, 2))),
        Sample(((2, 3), (2, 3, 2))),
        Sample(((1, 2, 3), (2, 3, 2))),
        Sample(((2, 2, 3), (1, 3, 2))),
    ),
}

# ---- einsum ----------------------------------------------------------------------------------------

MAX_SUBSCRIPTS = 64  # characters: three operands of rank 8 and an output fit with room to spare
_EXPLICIT = re.compile(r"[a-z]*(,[a-z]*)*->[a-z]*")
P_REPEAT = 0.5  # an operand repeats one of its labels: a diagonal, or a trace
P_EXTRA_LABEL = 0.3  # an operand takes a label that another operand has: shared labels, batches
LABELS = "ijklmn"


def _terms(subscripts: str) -> tuple[list[str], str]:
    inputs, output = subscripts.split("->")
    return inputs.split(","), output


def check_einsum(attrs: dict) -> str | None:
    subscripts = attrs["subscripts"]
    if not isinstance(subscripts, str) or len(subscripts) > MAX_SUBSCRIPTS:
        return f"subscripts must be a string of at most {MAX_SUBSCRIPTS} characters, got {subscripts!r:.80}"
    if not _EXPLICIT.fullmatch(subscripts):
        return f"subscripts must be explicit, like 'ij,jk->ik' (letters a-z, no '...'), got {subscripts!r}"
    terms, output = _terms(subscripts)
    if len(set(output)) != len(output):
        return f"subscripts {subscripts!r}: a label appears twice in the output"
    missing = sorted(set(output) - set("".join(terms)))
    if missing:
        return f"subscripts {subscripts!r}: output label(s) {', '.join(missing)} appear in no operand"
    return None


def einsum_shape(*shapes_and_attrs) -> tuple:
    *shapes, attrs = shapes_and_attrs
    terms, output = _terms(attrs["subscripts"])
    if len(terms) != len(shapes):
        raise ShapeError(f"subscripts {attrs['subscripts']!r} name {len(terms)} operand(s), got {len(shapes)}")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape):
            raise ShapeError(f"term {term!r} of {attrs['subscripts']!r} does not fit an operand of shape {list(shape)}")
        for label, size in zip(term, shape):
            if sizes.setdefault(label, size) != size:
                raise ShapeError(f"label {label!r} of {attrs['subscripts']!r} has sizes {sizes[label]} and {size}")
    return tuple(sizes[label] for label in output)


def einsum_forward(*operands_and_attrs) -> np.ndarray:
    *operands, attrs = operands_and_attrs
    return np.asarray(np.einsum(attrs["subscripts"], *operands))


def einsum_without_operand(attrs: dict, slot: int) -> dict | None:
    """The subscripts without operand `slot`'s term, or None when the output needs one of its labels."""
    terms, output = _terms(attrs["subscripts"])
    kept = terms[:slot] + terms[slot + 1 :]
    if not kept or set(output) - set("".join(kept)):
        return None
    return {**attrs, "subscripts": ",".join(kept) + "->" + output}


def _plan_einsum(context: PlanContext, shape: tuple):
    rank, room = len(shape), context.max_rank
    count = context.integer(1, 3)
    summed = context.integer(1 if rank == 0 else 0, max(0, min(2, count * room - rank)))
    sizes = dict(zip(LABELS, (*shape, *(context.dim() for _ in range(summed)))))
    labels = list(sizes)
    terms: list[list[str]] = [[] for _ in range(count)]
    for label in labels:  # every label in some operand
        context.choice([term for term in terms if len(term) < room]).append(label)
    for term in terms:
        for label in labels:
            if label not in term and len(term) < room and (not term or context.boolean(P_EXTRA_LABEL)):
                term.append(label)
    for term in terms:
        if len(term) < room and context.boolean(P_REPEAT):
            term.append(context.choice(term))
    for term in terms:  # in some order: a transposed operand must be transposed back
        for position in range(len(term) - 1, 0, -1):
            swap = context.integer(0, position)
            term[position], term[swap] = term[swap], term[position]
    subscripts = ",".join("".join(term) for term in terms) + "->" + "".join(labels[:rank])
    return [tuple(sizes[label] for label in term) for term in terms], {"subscripts": subscripts}


def _einsum_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    terms, output = _terms(attrs["subscripts"])
    found = {f"einsum_{len(terms)}_operands"}
    for term in terms:
        for label in {label for label in term if term.count(label) > 1}:
            found.add("einsum_diagonal" if label in output else "einsum_trace")
    labels = set("".join(terms))
    if labels - set(output):
        found.add("einsum_summed")
    if len(terms) >= 2:
        if any(sum(label in term for term in terms) >= 2 for label in labels):
            found.add("einsum_shared")
        if any(not set(a) & set(b) for i, a in enumerate(terms) for b in terms[i + 1 :]):
            found.add("einsum_outer")
        if set.intersection(*map(set, terms)) & set(output):
            found.add("einsum_batch")
    return found


EINSUM = {
    "shape": einsum_shape,
    "forward": einsum_forward,
    "attrs": {"subscripts": "i->i"},
    "check_attrs": check_einsum,
    "max_arity": 3,
    "without_operand": einsum_without_operand,
    "planner": Planner(lambda shape, max_rank: max_rank >= max(len(shape), 1), _plan_einsum),
    "features": _einsum_features,
    "feature_names": (
        "einsum_1_operands",
        "einsum_2_operands",
        "einsum_3_operands",
        "einsum_diagonal",
        "einsum_trace",
        "einsum_shared",
        "einsum_outer",
        "einsum_batch",
        "einsum_summed",
    ),
    "samples": (
        Sample(((3, 3),), {"subscripts": "ii->i"}),
        Sample(((3, 3),), {"subscripts": "ii->"}),
        Sample(((2, 3),), {"subscripts": "ij->ji"}),
        Sample(((2, 2, 3),), {"subscripts": "iij->j"}),
        Sample(((2, 3), (3, 2)), {"subscripts": "ij,jk->ik"}),
        Sample(((2,), (3,)), {"subscripts": "i,j->ij"}),
        Sample(((2, 2, 3), (2, 3, 2)), {"subscripts": "bij,bjk->bik"}),
        Sample(((3, 3), (3,)), {"subscripts": "ii,i->i"}),
        Sample(((2, 3), (2, 3), (2, 3)), {"subscripts": "ij,ij,ij->"}),
        Sample(((2,), (2, 3), (3,)), {"subscripts": "i,ij,j->"}),
    ),
}
