"""Blame by majority, once the checks of one quantity are in (compare.py).

For each quantity, backends that agree form groups. If the references (every backend but
the engine under test) all agree with each other, the engine is blamed when it disagrees
with them. If the references disagree among themselves, that is reported as
`references-disagree`, naming the reference that the others outvote when there is one;
the engine is then blamed only if a strict majority of all backends agrees against it.
A crash, a wrong shape, or NaN/Inf where the others are finite is a finding of its own.
"""

from __future__ import annotations

import itertools

from ..kinds import Kind
from .results import Finding


def blame(quantity, input_name, label, names, agree, finite, projection, roles, findings):
    """Who is wrong about one quantity, given which pairs of backends `agree` (Checks):
    append the findings."""

    def agrees(a, b):
        return a == b or agree[frozenset((a, b))].passed

    references = [n for n in names if roles.get(n) != "engine"]
    engines = [n for n in names if roles.get(n) == "engine"]
    references_agree = all(agrees(a, b) for a, b in itertools.combinations(references, 2))

    # The largest group of mutually agreeing backends: the majority view, if it is one.
    groups = [
        set(group)
        for size in range(len(names), 0, -1)
        for group in itertools.combinations(names, size)
        if all(agrees(a, b) for a, b in itertools.combinations(group, 2))
    ]
    largest = max(len(g) for g in groups)
    top = [g for g in groups if len(g) == largest]
    majority = top[0] if len(top) == 1 and largest * 2 > len(names) else None

    def expected_for(backend):
        # What the backend should have returned: a reference it disagrees with that agrees with the most others.
        # Sorted by name as well: a set's order follows string hashing, which changes per process.
        voters = sorted(majority or set(references) - {backend}, key=lambda n: (n == "numeric", n))
        for voter in voters:
            if voter != backend and (voter in finite or (voter == "numeric" and projection is not None)):
                return voter
        return None

    def worst_margin(backend):
        return max(c.margin for k, c in agree.items() if backend in k and not c.passed)

    blamed_engines = []
    if references and references_agree:
        blamed_engines = [e for e in engines if not all(agrees(e, r) for r in references)]
    elif majority is not None:
        blamed_engines = [e for e in engines if e not in majority]
    if not references_agree:
        outvoted = [r for r in references if majority is not None and r not in majority]
        detail = "references disagree: " + ", ".join(
            f"{'/'.join(sorted(k))} margin {c.margin:.3g}"
            for k, c in agree.items()
            if not c.passed
            if not (set(k) & set(engines))
        )
        findings.append(
            Finding(
                Kind.REFERENCES_DISAGREE,
                outvoted[0] if len(outvoted) == 1 else None,
                quantity,
                input_name,
                f"{label}: {detail}",
                margin=max(c.margin for c in agree.values()),
                expected_backends=sorted(majority or []),
            )
        )
    for engine in blamed_engines:
        reference = expected_for(engine)
        expected = None
        if reference == "numeric" and projection is not None:
            expected = {"direction": projection[0].tolist(), "directional_derivative": projection[1]}
        elif reference is not None:
            expected = finite[reference].tolist()
        others = sorted(r for r in references if not agrees(engine, r))
        findings.append(
            Finding(
                Kind(quantity),
                engine,
                quantity,
                input_name,
                f"{label} of {engine} disagrees with {', '.join(others)} (margin {worst_margin(engine):.3g})",
                expected=expected,
                actual=finite[engine].tolist(),
                margin=worst_margin(engine),
                expected_backends=others,
            )
        )
