"""Fuzzing the case loader: a valid case with any part replaced, removed or repeated, or any text
at all, either loads or is one FormatError line. Nothing else escapes (no other exception, so no
traceback), and nothing takes long (Hypothesis's deadline is the hang detector).

FUZZ_EXAMPLES (environment, 1500 by default) sets how many mutated cases each test tries.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracles.format import FormatError, case_to_json, read_json, validate_case
from oracles.generate import generate_case

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1500"))
REPO = Path(__file__).resolve().parent.parent
SEEDS = [case_to_json(generate_case(0, index)) for index in range(20)]

HOSTILE_TEXT = st.sampled_from(['"""', "\x1b[31m", "\u202e", "\x00", "a" * 10_000, "x'", "9" * 5000, "", " "])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), HOSTILE_TEXT,
)  # fmt: skip
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def paths(value, prefix=()):
    """Every place inside a JSON value: tuples of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


@st.composite
def mutated_cases(draw):
    case = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        places = list(paths(case))
        place = draw(st.sampled_from(places[1:])) if len(places) > 1 else ()
        parent = case
        for step in place[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "repeat"]))
        if action == "replace":
            parent[place[-1]] = draw(JSON_VALUES)
        elif action == "remove":
            del parent[place[-1]]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[place[-1]]))
        else:
            parent[f"{place[-1]}_copy"] = copy.deepcopy(parent[place[-1]])
    return case


@settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_cases())
def test_a_mutated_case_loads_or_is_one_format_error_line(case):
    try:
        validate_case(case)
    except FormatError as error:
        message = str(error)
        assert "\n" not in message and len(message) < 1000
        assert all(c.isprintable() for c in message)


@settings(max_examples=EXAMPLES // 3, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200).map(lambda b: b.decode("latin-1")), st.text(max_size=200),
                 st.builds(lambda case: json.dumps(case)[: len(json.dumps(case)) // 2], mutated_cases())))  # fmt: skip
def test_any_text_reads_as_json_or_is_one_format_error_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "case.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        validate_case(read_json(path, "case"))
    except FormatError as error:
        assert "\n" not in str(error)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_cases())
def test_mutated_case_files_replay_with_no_traceback(tmp_path, case):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    audit = str(Path(sys.executable).parent / "autodiff-audit")
    done = subprocess.run([audit, "replay", str(path), "--oracles", "numeric"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode in (0, 1, 2) and "Traceback" not in done.stderr + done.stdout, done.stderr[-2000:]
