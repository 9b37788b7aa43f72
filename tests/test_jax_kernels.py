"""The JAX reference's kernel store (oracles/backends/jax_kernels.py) changes no answer by a bit,
and survives what a shared cache folder meets:

- on about a hundred random graphs holding every op (float64, float32, and kink mode), the
  reference's value and gradients (and on some of them its J t and H t) are the same bytes with
  the store as with plain eager JAX; so are a jitted function's (softmax) under jax.vjp, which
  the store keeps as a kernel too;
- a kernel is keyed on everything that makes it: two operands of one shape, one weak-typed and
  one not, are two kernels, and a kernel is only loaded for the name it was saved under;
- an entry that is truncated, holds garbage, or was written for another kernel is ignored and
  compiled again, never trusted; so is one that loads but does not run;
- a JAX other than the one it was written for gets plain JAX and one line saying so; a CPU
  that rejects every kernel loaded back (jax issue 38445) is found at once and said in one line;
- processes that share the store and miss the same kernels at once compile each one once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

import jax
from jax import lax

from oracles.backends import jax_backend, jax_kernels
from oracles.check.modes import case_tangents
from oracles.format import case_to_json
from oracles.generate import GeneratorConfig, generate_case
from oracles.ops import OPS

REPO = Path(__file__).resolve().parent.parent
# (generator, graphs): about a hundred graphs holding every op, float32 and kink mode among them. Axes
# of 1 and 2 only: every kernel is compiled twice here (plain JAX keeps none), and fewer shapes
# make fewer kernels, while what could change a bit (the store's path) is the same for every shape.
# The window ops need results of rank 3 and inputs wider than 2 to take their strides and
# overlaps (max_pool1d's gradient is a kernel whose parameters name a primitive): a few graphs
# of their own.
SETTINGS = [
    (GeneratorConfig(max_dim=2), 40),
    (GeneratorConfig(max_dim=2, dtype="float32"), 25),
    (GeneratorConfig(max_dim=2, kinks=True), 15),
    (GeneratorConfig(ops=("conv1d", "max_pool1d", "add", "relu"), output_rank=3, max_nodes=4), 12),
]


# Forward mode and second order go through the store too: the first graphs of each setting are
# asked for J t and H t as well.
WITH_MODES = 6


def answers(cases) -> list[bytes]:
    """Each case's value and gradients (and J t and H t, where it has tangents), as the bytes
    (with dtype and shape) the reference gave."""
    found = []
    for graph, values, cotangent, tangents in cases:
        value, gradients = jax_backend.evaluate(graph, values, cotangent)
        arrays = [value, *(gradients[name] for name in sorted(gradients))]
        if tangents is not None:
            products = jax_backend.hvp(graph, values, cotangent, tangents)
            arrays += [*jax_backend.jvp(graph, values, tangents), *(products[name] for name in sorted(products))]
        found += [f"{array.dtype}{array.shape}".encode() + np.ascontiguousarray(array).tobytes() for array in arrays]
    return found


@contextlib.contextmanager
def plain_jax():
    """Plain eager JAX inside; the store the backend installed comes back after it."""
    store = jax_kernels.installed()
    jax_kernels.uninstall()
    try:
        yield
    finally:
        if store is not None:
            jax_kernels.reinstall(store)


@pytest.fixture
def store(tmp_path):
    """A store of the test's own, in an empty folder; the backend's comes back after the test."""
    previous = jax_kernels.installed()
    jax_kernels.uninstall()
    assert jax_kernels.install(tmp_path) is None
    yield jax_kernels.installed()
    jax_kernels.uninstall()
    if previous is not None:
        jax_kernels.reinstall(previous)


def test_the_store_is_what_the_jax_reference_uses():
    store = jax_kernels.installed()
    assert store is not None and jax_backend.note is None
    before = sum(store.counts[k] for k in ("loaded", "compiled"))
    x = jax.device_put(np.arange(3.0) + 1000.5)  # a shape and values no other test uses first
    assert float(lax.reduce_sum(lax.mul(x, x), (0,))) == float(np.sum(np.asarray(x) ** 2))
    assert sum(store.counts[k] for k in ("loaded", "compiled")) >= before  # served by the store


def bitwise_cases() -> list[tuple]:
    cases = []
    for generator, count in SETTINGS:
        for index in range(count):
            case = generate_case(11, index, generator)
            tangents = case_tangents(case, 0) if index < WITH_MODES else None
            cases.append((case_to_json(case)["graph"], case.values, case.cotangent, tangents))
    return cases


# Plain eager JAX in a process of its own, which never had a store installed (and keeps nothing on
# disk): its answers to the same cases, pickled. It runs beside this process's, on the other core.
PLAIN_ANSWERS = """
import pickle, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
import test_jax_kernels as here
sys.stdout.buffer.write(pickle.dumps(here.answers(here.bitwise_cases())))
"""


def test_answers_are_the_same_bits_as_plain_eager_jax():
    environment = {**os.environ, "AUTODIFF_AUDIT_JAX_KERNELS": "off", "AUTODIFF_AUDIT_JAX_CACHE": "off"}
    plain_process = subprocess.Popen([sys.executable, "-c", PLAIN_ANSWERS, str(REPO)], env=environment,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert jax_kernels.installed() is not None
    with_store = answers(bitwise_cases())
    out, err = plain_process.communicate(timeout=900)
    assert plain_process.returncode == 0, err.decode()[-3000:]
    plain = pickle.loads(out)
    # A value and a gradient at least, and a value, J t and an HVP at least where there are tangents.
    assert len(with_store) == len(plain) >= 2 * sum(count for _, count in SETTINGS) + 3 * WITH_MODES * len(SETTINGS)
    assert {node["op"] for graph, *_ in bitwise_cases() for node in graph["nodes"]} == set(OPS)  # every op of the table
    differing = [k for k, (a, b) in enumerate(zip(with_store, plain)) if a != b]
    assert differing == []


def weakly_typed(x):
    return lax.convert_element_type_p.bind(x, new_dtype=x.dtype, weak_type=True, sharding=None)


def test_weak_and_strong_operands_are_two_kernels_and_keep_their_type(store):
    strong = jax.device_put(np.array([2.0, 3.0]))
    weak = weakly_typed(strong)
    assert weak.aval.weak_type and not strong.aval.weak_type
    with plain_jax():
        expected = [lax.add(a, a).aval for a in (strong, weak)]
    compiled = store.counts["compiled"]
    assert [lax.add(a, a).aval for a in (strong, weak)] == expected  # weak in, weak out, as in plain JAX
    assert store.counts["compiled"] == compiled + 2
    assert len(kernels_of(store.folder, "add")) == 2
    lax.add(strong, strong)
    assert store.counts["compiled"] == compiled + 2  # met again: from memory


def test_jitted_functions_run_eagerly_are_kernels_of_the_store_too(store):
    x = jax.device_put(np.array([[1.0, 2.0], [3.0, 5.0]]))

    def softmax_and_its_vjp():  # as the reference runs them: under jax.vjp
        value, vjp = jax.vjp(lambda x: jax.nn.softmax(x, axis=1), x)
        return np.asarray(value).tobytes() + np.asarray(vjp(value)[0]).tobytes()

    with plain_jax():
        expected = softmax_and_its_vjp()
    assert softmax_and_its_vjp() == expected
    headers = [path.read_bytes().split(b"\n", 1)[0] for path in store.folder.rglob("*.kernel")]
    assert any(header.startswith(b'{"key": "jit:') for header in headers)


def test_a_jitted_function_called_with_a_python_number_runs_jaxs_own_way(store):
    scale = jax.jit(lambda x, factor: x * factor)
    assert np.asarray(scale(jax.device_put(np.array([1.0, 2.0])), 2.5)).tolist() == [2.5, 5.0]


def kernels_of(folder: Path, primitive: str) -> list[Path]:
    """The kernel files below `folder` of `primitive`, by the key in their header."""
    key = f'{{"key": "{primitive}('.encode()
    return [path for path in folder.rglob("*.kernel") if path.read_bytes().startswith(key)]


def damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    header, _, payload = data.partition(b"\n")
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "another kernel's":  # the right file name, the wrong key in it
        path.write_bytes(header.replace(b'"key": "', b'"key": "other') + b"\n" + payload)
    elif how == "a payload that does not match its digest":
        path.write_bytes(header + b"\n" + payload[:-10] + bytes(10))
    elif how == "another kernel's executable, which loads but does not run":
        fields, payload = json.loads(header), other.read_bytes().split(b"\n", 1)[1]  # the negation: one operand
        fields["sha256"] = hashlib.sha256(payload).hexdigest()
        path.write_bytes(json.dumps(fields).encode() + b"\n" + payload)


DAMAGES = {"add": "truncated", "sub": "garbage", "mul": "another kernel's",
           "max": "a payload that does not match its digest",
           "div": "another kernel's executable, which loads but does not run"}  # fmt: skip
# Each run is a fresh process: the store is read from the disk, not from memory.
SIX_KERNELS = """
import numpy as np, jax
from jax import lax
from oracles.backends import jax_backend, jax_kernels
x = jax.device_put(np.array([1.5, 2.5]))
lax.neg(x)
print([np.asarray(f(x, x)).tolist() for f in (lax.add, lax.sub, lax.mul, lax.max, lax.div)])
print(jax_kernels.installed().counts)
"""


def test_a_damaged_entry_is_compiled_again_never_trusted(tmp_path):
    env = {**os.environ, "AUTODIFF_AUDIT_JAX_CACHE": str(tmp_path)}

    def run() -> tuple[str, dict]:
        done = subprocess.run([sys.executable, "-c", SIX_KERNELS], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        answers, counts = done.stdout.splitlines()
        return answers, eval(counts)  # a dict of counts that the program printed

    right, first = run()
    assert first["compiled"] == 6
    [negation] = kernels_of(tmp_path, "neg")
    for primitive, how in DAMAGES.items():
        damage(kernels_of(tmp_path, primitive)[0], how, negation)

    answers, second = run()
    assert answers == right
    # Each damaged entry compiled again: four read as damaged, and the other kernel's executable
    # rejected (as it loads, or when it first runs) ...
    assert second == {**second, "compiled": 5, "loaded": 1, "rejected": 1, "corrupt": 4}
    answers, third = run()  # ... and written over, whole
    assert answers == right and third == {**third, "compiled": 0, "loaded": 6, "rejected": 0, "corrupt": 0}


def test_another_jax_version_gets_plain_jax_and_one_line(monkeypatch, tmp_path):
    previous = jax_kernels.installed()
    jax_kernels.uninstall()
    monkeypatch.setattr(jax, "__version__", "0.99.0")
    try:
        note = jax_kernels.install(tmp_path)
        assert jax_kernels.installed() is None
        assert "plain JAX" in note and "0.99.0" in note and jax_kernels.WRITTEN_FOR[0] in note
        assert "\n" not in note
    finally:
        if previous is not None:
            jax_kernels.reinstall(previous)


def test_a_cpu_that_rejects_every_loaded_kernel_is_said_once_and_compiles_instead(monkeypatch, tmp_path):
    # jax issue 38445: on some x86 CPUs, XLA's loader refuses every executable it reads back.
    def rejecting(*arguments, **options):
        raise RuntimeError("Target machine feature +prefer-no-gather is not supported on the host machine")

    previous = jax_kernels.installed()
    jax_kernels.uninstall()
    monkeypatch.setattr(jax_kernels.serialize_executable, "deserialize_and_load", rejecting)
    try:
        note = jax_kernels.install(tmp_path)
        assert "38445" in note and "\n" not in note
        store = jax_kernels.installed()
        assert store is not None and store.folder is None  # kernels kept in memory only: nothing to load
        x = jax.device_put(np.array([0.25, 0.5]))
        assert np.asarray(lax.mul(x, x)).tolist() == [0.0625, 0.25]
    finally:
        jax_kernels.uninstall()
        if previous is not None:
            jax_kernels.reinstall(previous)


def test_processes_that_miss_the_same_kernels_at_once_compile_each_once(tmp_path):
    program = (
        "import numpy as np, jax, time\n"
        "from oracles.backends import jax_backend, jax_kernels\n"
        "x = jax.device_put(np.linspace(0, 1, 7))\n"
        "start = float(__import__('sys').argv[1]); time.sleep(max(0.0, start - time.time()))\n"
        "for k in range(1, 9): x = jax.lax.mul(jax.lax.reshape(x, (7,)), x) if k % 2 else jax.lax.sin(x)\n"
        "print(jax_kernels.installed().counts['compiled'])\n"
    )
    env = {**os.environ, "AUTODIFF_AUDIT_JAX_CACHE": str(tmp_path)}
    start = str(time.time() + 5)  # both are past their imports by then
    processes = [
        subprocess.Popen([sys.executable, "-c", program, start], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    compiled = [int(p.communicate(timeout=120)[0].split()[-1]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    kernels = len(list(tmp_path.glob("kernels/*/*/*.kernel")))
    assert sum(compiled) == kernels  # each kernel compiled by one process; the other loaded it
