"""The JAX reference's kernel store: eager JAX without lowering a primitive it has compiled before.

Eager JAX runs each primitive (an `add`, a `reduce_sum`, the `mul`s of a transpose rule) as a
tiny compiled kernel, one per primitive, parameters and operand types. In each new process it
traces and lowers every such kernel to MLIR again before it can look in its persistent
compilation cache, whose key is a hash of the lowered module: about 9 ms a kernel, and random
graphs meet hundreds of them. This store keys each kernel *before* lowering, on what makes it
(the primitive, its parameters, its operands' shapes, dtypes and weak types), and keeps the
compiled executable itself: a process that meets a kernel the store holds loads it (about a
millisecond) and neither traces nor lowers it. The jitted functions that JAX runs eagerly inside
a VJP (jax.nn's softmax, jnp's reductions) are kernels too, keyed on the text of their jaxpr
(every equation, parameter and literal, exactly), when all of it is plain data.

The answers do not change by a bit: the kernel is the executable JAX itself compiles for that
call (`jax.jit` of the primitive, lowered and compiled as JAX's eager dispatch does it), and JAX
still composes each graph's VJP (`jax.vjp` of the whole graph function, whose primitives come
here one by one). tests/test_jax_kernels.py compares both, bit for bit, on hundreds of graphs.

It hooks into two internals of JAX (`dispatch.xla_primitive_callable` and `jit_p`'s
implementation), and makes one MLIR context per thread instead of one per lowering: so it is
used only with the JAX it was written for (WRITTEN_FOR); with another, the reference runs plain
JAX, and `note` says so in one line.

On disk, in `kernels/<environment>/` of the JAX cache folder (`$AUTODIFF_AUDIT_JAX_CACHE`):
the environment is a digest of all that can change a kernel (jax_kernel_keys.environment_key),
so a kernel is only loaded where it was compiled. Each kernel is one file, written whole or not
at all, whose header holds its key and its executable's digest: an entry that is truncated,
corrupt, or another kernel's is compiled again, never trusted. Processes that miss a kernel at
once compile it once: the others wait for it (a lock on a byte of `.locks`).

Some x86 CPUs reject every executable loaded from a file (jax issue 38445: XLA's loader reads
tuning flags as features the host lacks). The store loads a probe kernel when it opens; if it
is rejected, the store keeps its kernels in memory only, and `note` says so, once.

Turn it off with AUTODIFF_AUDIT_JAX_KERNELS=off (the reference then runs plain JAX); clear it by
deleting the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

from ..files import write_whole

try:  # internals of the JAX this was written for; another may not have them (install() says so)
    from jax._src import core, dispatch, pjit
    from jax._src.config import trace_context
    from jax._src.interpreters import mlir
    from jax.experimental import serialize_executable
except ImportError as error:
    _MISSING: str | None = f"{error}"
else:
    _MISSING = None

from .jax_kernel_keys import Unstorable, aval_text, environment_key, jaxpr_text, stable_text

WRITTEN_FOR = ("0.10.2", "0.10.2")  # jax, jaxlib: the versions whose eager dispatch this hooks
LOCK_BYTES = 1 << 16  # kernels share a lock byte of `.locks` only by chance, and then just wait for each other
ENVIRONMENT = "AUTODIFF_AUDIT_JAX_KERNELS"


def _primitive_callable(kernels: _Kernels, jitted) -> Callable:
    """A primitive's callable as JAX's dispatch calls it, on the operands: `kernels` runs them,
    with `jitted` (JAX's own jit of the primitive) to make a kernel and to run what has no type."""
    return lambda *args: kernels.run(args, lambda: jitted, jitted)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class KernelStore:
    """The kernels of one process, and those on disk in `folder` (None: in memory only)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.original = dispatch.xla_primitive_callable
        self.primitives: dict[tuple, Callable] = {}
        # By name, every kernel this process holds.
        self.by_name: dict[str, Callable] = {}
        # By content, every executable this process holds: kernels of two names can be one
        # executable (operands typed alike in two ways), loaded once.
        self.by_payload: dict[tuple, Callable] = {}
        self.original_jit_impl, self.original_python_jit_impl = pjit.jit_p.impl, pjit._pjit_call_impl_python
        self.jitted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.jit_kernels: dict[str, _Kernels] = {}
        self.counts = {"loaded": 0, "compiled": 0, "rejected": 0, "corrupt": 0, "plain": 0}

    # ---- the hook ---------------------------------------------------------------------------------

    def callable_for(self, primitive, **params):
        """What `dispatch.xla_primitive_callable(primitive, **params)` gives: a callable that runs
        the primitive on its operands."""
        ordered = tuple(sorted(params.items()))
        try:
            key = (primitive, trace_context(), ordered)
            hash(key)
        except TypeError:
            return self.original(primitive, **params)
        found = self.primitives.get(key)
        if found is None:
            try:
                name = f"{primitive.name}({','.join(f'{k}={stable_text(v)}' for k, v in ordered)})"
            except Unstorable:
                found = self.original(primitive, **params)
            else:
                found = _primitive_callable(_Kernels(self, name), self.original(primitive, **params))
            self.primitives[key] = found
        return found

    def jit_impl(self, *args, jaxpr, **params):
        """What `jit_p`'s implementation does (run a jitted function, as jax.nn's softmax and jnp's
        reductions are, eagerly): the same kernel, from the store, keyed on the jaxpr's text. A
        jitted function with shardings, layouts, donations or compiler options of its own, or a
        jaxpr that is not plain data, goes JAX's own way."""
        name = self._jit_name(jaxpr, params)
        if not name:
            return self.original_jit_impl(*args, jaxpr=jaxpr, **params)
        kernels = self.jit_kernels.get(name)
        if kernels is None:
            kernels = self.jit_kernels[name] = _Kernels(self, name)

        def make():
            function = core.jaxpr_as_fun(jaxpr)
            function.__name__ = params["name"]  # what JAX names the lowered module
            return jax.jit(function, keep_unused=params["keep_unused"])

        return kernels.run(args, make, lambda *a: self.original_jit_impl(*a, jaxpr=jaxpr, **params))

    def python_jit_impl(self, *args, jaxpr, **params):
        """What `pjit._pjit_call_impl_python` does: run a jitted function eagerly outside any trace
        (as a custom_jvp runs jax.nn.relu's), with no executable for JAX's fast path."""
        if not self._jit_name(jaxpr, params) or not all(hasattr(arg, "aval") for arg in args):
            return self.original_python_jit_impl(*args, jaxpr=jaxpr, **params)  # (JAX's own way comes back here)
        return self.jit_impl(*args, jaxpr=jaxpr, **params), None, None, []

    def _jit_name(self, jaxpr, params) -> str:
        """The name of a jitted function's kernels, remembered for each jaxpr (a weak key: jaxprs
        come and go with the graphs): its jaxpr's text, digested; "" if it has none."""
        with contextlib.suppress(TypeError):  # TypeError: a jaxpr that cannot be a weak key
            if jaxpr in self.jitted:
                return self.jitted[jaxpr]
        name = self._name_jaxpr(jaxpr, params)
        with contextlib.suppress(TypeError):
            self.jitted[jaxpr] = name
        return name

    def _name_jaxpr(self, jaxpr, params) -> str:
        plain = (
            all(isinstance(s, pjit.UnspecifiedValue) for s in (*params["in_shardings"], *params["out_shardings"]))
            and all(layout is None for layout in (*params["in_layouts"], *params["out_layouts"]))
            and not any(params["donated_invars"]) and not params["compiler_options_kvs"] and params["ctx_mesh"].empty
        )  # fmt: skip
        if not plain:  # shardings, layouts, donations or compiler options of its own
            return ""
        try:
            text = f"{params['name']}|{params['keep_unused']}|{jaxpr_text(jaxpr)}"
        except Unstorable:
            return ""
        return f"jit:{params['name']}:{_digest(text.encode())}"

    # ---- kernels on disk -------------------------------------------------------------------------

    def kernel(self, name: str, make: Callable[[], Any], args) -> tuple[Callable, bool]:
        """The compiled kernel of `make()` (JAX's jit of a primitive or function) for operands like `args`,
        and whether it was loaded: from the disk if it holds it, else compiled now (once among the
        processes sharing the store)."""
        if name in self.by_name:
            return self.by_name[name], False
        kernel, loaded = self._find(name, make, args)
        self.by_name[name] = kernel
        return kernel, loaded

    def _find(self, name: str, make: Callable[[], Any], args) -> tuple[Callable, bool]:
        if self.folder is None:
            return self._compile(make(), args), False
        path = self._path(name)
        missing = not path.exists()
        found = None if missing else self._load(path, name, len(args))
        if found is not None:
            return found, True
        with self._lock(path):
            if missing and path.exists():  # another process compiled it while this one waited
                found = self._load(path, name, len(args))
                if found is not None:
                    return found, True
            compiled = self._compile(make(), args)  # and a damaged entry is written over
            self._save(path, name, compiled, len(args))
        return compiled, False

    def replace(self, name: str, make: Callable[[], Any], args) -> Callable:
        """A loaded kernel that did not run: compiled again, and its entry written over."""
        self.counts["rejected"] += 1
        compiled = self.by_name[name] = self._compile(make(), args)
        if self.folder is not None:
            path = self._path(name)
            with self._lock(path):
                self._save(path, name, compiled, len(args))
        return compiled

    def _path(self, name: str) -> Path:
        assert self.folder is not None
        digest = _digest(name.encode())
        return self.folder / digest[:2] / f"{digest}.kernel"

    def _compile(self, jitted, args):
        # Compiled here: JAX's persistent cache is off beside the store (see jax_backend.py).
        self.counts["compiled"] += 1
        return jitted.lower(*args).compile()

    def _load(self, path: Path, name: str, arity: int, reuse: bool = True):
        try:
            data = path.read_bytes()
        except OSError:
            return None  # not there (yet)
        try:
            header, _, payload = data.partition(b"\n")
            fields = json.loads(header)
            if fields.get("key") != name or fields.get("sha256") != _digest(payload) or fields.get("arity") != arity:
                raise ValueError("an entry for another kernel, or damaged")
            in_tree = jax.tree_util.tree_structure(((0,) * arity, {}))
            out_tree = jax.tree_util.tree_structure([0] * fields["outputs"] if fields["list"] else 0)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.counts["corrupt"] += 1
            return None  # compiled again, and written over
        same = (fields["sha256"], arity, fields["outputs"], fields["list"])
        if reuse and same in self.by_payload:  # this executable, under another name: loaded once
            return self.by_payload[same]
        try:
            loaded = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        except Exception:
            self.counts["rejected"] += 1
            return None
        self.counts["loaded"] += 1
        self.by_payload[same] = loaded
        return loaded

    def _save(self, path: Path, name: str, compiled, arity: int) -> None:
        try:
            payload, in_tree, out_tree = serialize_executable.serialize(compiled)
        except (ValueError, NotImplementedError):
            return  # a kernel JAX cannot serialize stays in this process only
        outputs = out_tree.num_leaves
        listed = out_tree != jax.tree_util.tree_structure(0)
        if in_tree != jax.tree_util.tree_structure(((0,) * arity, {})) or (
            listed and out_tree != jax.tree_util.tree_structure([0] * outputs)
        ):
            return  # not the shapes _load rebuilds: kept in this process only
        digest = _digest(payload)
        self.by_payload.setdefault((digest, arity, outputs, listed), compiled)
        header = json.dumps({"key": name, "sha256": digest, "arity": arity, "outputs": outputs,
                             "list": listed}).encode()  # fmt: skip
        with contextlib.suppress(OSError):  # a full disk costs the entry only: it is compiled again next time
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, header + b"\n" + payload)

    @contextlib.contextmanager
    def _lock(self, path: Path):
        """Held while the kernel of `path` is compiled: a process that misses it meanwhile waits."""
        assert self.folder is not None
        try:
            descriptor = os.open(self.folder / ".locks", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield  # no lock here: at worst two processes compile the same kernel
            return
        offset = int(_digest(path.name.encode())[:8], 16) % LOCK_BYTES
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX, 1, offset)
            yield
        finally:
            os.close(descriptor)  # releases the lock


class _Kernels:
    """A primitive with its parameters, or a jitted function: its kernel for each kind of operands
    met here. It keeps no jaxpr alive: `make` (JAX's jit of it) and `own_way` come with each call."""

    def __init__(self, store: KernelStore, name: str):
        self.store, self.name = store, name
        self.kernels: dict[tuple, Any] = {}

    def run(self, args, make: Callable[[], Any], own_way: Callable):
        try:
            avals = tuple(arg.aval for arg in args)
            kernel = self.kernels.get(avals)
        except (AttributeError, TypeError):  # an operand without a type JAX can key
            self.store.counts["plain"] += 1
            return own_way(*args)
        if kernel is None:
            name = f"{self.name}[{';'.join(aval_text(aval) for aval in avals)}]"
            kernel, loaded = self.store.kernel(name, make, args)
            if loaded:
                try:
                    result = kernel(*args)
                except Exception:  # an entry that loads but does not run (a damaged executable)
                    kernel = self.store.replace(name, make, args)
                else:
                    self.kernels[avals] = kernel
                    return result
            self.kernels[avals] = kernel
        return kernel(*args)


_installed: KernelStore | None = None
_make_ir_context: Any = mlir.make_ir_context if _MISSING is None else None
_contexts = threading.local()


def _shared_ir_context():
    """One MLIR context per thread instead of one per lowering (about 4 ms each), as JAX does
    itself after 0.11: a context holds dialects, not what is lowered in it."""
    context = getattr(_contexts, "context", None)
    if context is None:
        context = _contexts.context = _make_ir_context()
    return context


def install(cache: Path | None) -> str | None:
    """Serve JAX's eager primitives from a kernel store kept under `cache` (None: in memory only).
    Returns a line for the user when the store is not used (another JAX, turned off, or a CPU
    that rejects loaded kernels), else None."""
    if os.environ.get(ENVIRONMENT) == "off":
        return None  # asked for: nothing to say
    versions = (jax.__version__, jaxlib.__version__)
    if versions != WRITTEN_FOR or _MISSING is not None:
        return (
            f"the JAX reference runs plain JAX (slower, the same answers): its kernel store was written for jax "
            f"{WRITTEN_FOR[0]} and jaxlib {WRITTEN_FOR[1]}, and this is jax {versions[0]}, jaxlib {versions[1]}"
        )
    folder = None
    if cache is not None:
        key = json.dumps(environment_key(), sort_keys=True, default=str)
        folder = cache / "kernels" / _digest(key.encode())[:16]
    store = KernelStore(folder)
    if folder is not None and not _probe(store):
        store.folder = None
        note = (
            "this CPU rejects the JAX kernels it compiled when they are loaded again (jax issue 38445): each "
            "process compiles every kernel it meets, and a first audit stays slow"
        )
    else:
        note = None
    store.counts = dict.fromkeys(store.counts, 0)  # the probe's are not the audit's
    reinstall(store)
    return note


def _probe(store: KernelStore) -> bool:
    """Whether a kernel this store wrote loads again here (jax issue 38445 rejects it as it
    loads), with a kernel no graph meets (nextafter)."""
    x = jax.device_put(np.zeros((), np.float64))
    jitted = store.original(jax.lax.nextafter_p)
    assert store.folder is not None
    path, name = store.folder / "probe.kernel", "probe:nextafter[f8[];f8[]]"
    if store._load(path, name, 2) is not None:
        return True
    with store._lock(path):
        store._save(path, name, store._compile(jitted, (x, x)), 2)
    rejected = store.counts["rejected"]
    return store._load(path, name, 2, reuse=False) is not None or store.counts["rejected"] == rejected


def reinstall(store: KernelStore) -> None:
    """Serve JAX's eager primitives from `store` again (after `uninstall`)."""
    global _installed
    dispatch.xla_primitive_callable = store.callable_for
    pjit.jit_p.def_impl(store.jit_impl)
    pjit._pjit_call_impl_python = store.python_jit_impl
    mlir.make_ir_context = _shared_ir_context
    _installed = store


def uninstall() -> None:
    """Back to plain JAX (for the test that compares both)."""
    global _installed
    if _installed is not None:
        dispatch.xla_primitive_callable = _installed.original
        pjit.jit_p.def_impl(_installed.original_jit_impl)
        pjit._pjit_call_impl_python = _installed.original_python_jit_impl
        mlir.make_ir_context = _make_ir_context
        _installed = None


def installed() -> KernelStore | None:
    return _installed
