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

It hooks into `jax._src.dispatch.xla_primitive_callable` and the implementation of `jit_p`,
internals of JAX, and makes one MLIR context per thread instead of one per lowering: it is used only
with the JAX version it was written against (WRITTEN_FOR). With any other, the reference runs
plain JAX, and `note` says so in one line.

On disk, under the JAX cache folder (`$AUTODIFF_AUDIT_JAX_CACHE`, see jax_backend.py), in
`kernels/<environment>/`: the environment is a digest of everything that can change a kernel
(the jax and jaxlib versions, XLA_FLAGS, JAX's configuration, the device, and the CPU's
features), so a kernel is only ever loaded where it was compiled. Each kernel is one file,
written whole or not at all (a temporary file, renamed), whose header holds its key and the
digest of its executable: an entry that is truncated, corrupt, or made for another key is
ignored and compiled again, never trusted. Processes that miss the same kernel at once compile
it once: the others wait for it (a lock on a byte of `.locks`, one per kernel).

Some x86 CPUs reject every executable loaded from a file (jax issue 38445: XLA's loader reads
tuning flags as features the host lacks). The store loads a probe kernel when it opens; if it
is rejected, the store turns itself off, and `note` says so, once.

Turn it off with AUTODIFF_AUDIT_JAX_KERNELS=off (the reference then runs plain JAX); clear it by
deleting the folder.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

try:  # internals of the JAX this was written for; another may not have them (install() says so)
    from jax._src import core, dispatch, pjit
    from jax._src.config import config as jax_config
    from jax._src.config import enable_compilation_cache, trace_context
    from jax._src.interpreters import mlir
    from jax.experimental import serialize_executable
except ImportError as error:
    _MISSING: str | None = f"{error}"
else:
    _MISSING = None

WRITTEN_FOR = ("0.10.2", "0.10.2")  # jax, jaxlib: the versions whose eager dispatch this hooks
FORMAT = "autodiff-audit jax kernel 1"  # the first line of every kernel file
LOCK_BYTES = 1 << 16  # kernels share a lock byte of `.locks` only by chance, and then just wait for each other
ENVIRONMENT = "AUTODIFF_AUDIT_JAX_KERNELS"


class _Unstorable(Exception):
    """Parameters that do not name a kernel by their text (a jaxpr, a function): JAX's own path."""


def _stable_text(value) -> str:
    """`value` as text that names it in every process, or _Unstorable."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, np.dtype):
        return f"dtype:{value.str}"
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__qualname__}({','.join(_stable_text(item) for item in value)})"
    raise _Unstorable(type(value).__name__)


def _jaxpr_text(closed) -> str:
    """A closed jaxpr as text that names its computation in every process: each equation's
    primitive, parameters (nested jaxprs the same way), operands and results, numbered by first
    appearance; literals by their exact bytes. _Unstorable if anything in it is not plain data (a
    function, say, whose text would not tell two apart) or it closes over constants."""
    names: dict = {}

    def atom(a) -> str:
        if isinstance(a, core.Literal):
            value = np.asarray(a.val)
            return f"lit:{_aval_text(a.aval)}:{value.dtype.str}:{value.tobytes().hex()}"
        if a not in names:
            names[a] = f"v{len(names)}:{_aval_text(a.aval)}"
        return names[a]

    def jaxpr(j) -> str:
        parts = ["(" + ",".join(map(atom, [*j.constvars, *j.invars])) + ")"]
        for eqn in j.eqns:
            ctx = eqn.ctx
            if ctx.xla_metadata:
                raise _Unstorable("xla_metadata")
            context = "/".join(
                map(str, (ctx.compute_type, ctx.threefry_partitionable, ctx.remove_size_one_mesh_axis,
                          ctx.cur_abstract_mesh))
            )  # fmt: skip
            params = ",".join(f"{k}={param(v)}" for k, v in sorted(eqn.params.items()))
            parts.append(f"{','.join(map(atom, eqn.outvars))}={eqn.primitive.name}[{params}|{context}]"
                         f"({','.join(map(atom, eqn.invars))})")  # fmt: skip
        parts.append("->" + ",".join(map(atom, j.outvars)))
        if j.effects:
            raise _Unstorable("effects")
        return ";".join(parts)

    def param(value) -> str:
        if isinstance(value, core.ClosedJaxpr):
            return closed_text(value)
        if isinstance(value, core.Jaxpr):
            return "{" + jaxpr(value) + "}"
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            return f"{type(value).__qualname__}({','.join(param(item) for item in value)})"
        return _stable_text(value)

    def closed_text(c) -> str:
        if c.consts:  # JAX passes them to the kernel as arguments, and jit would fold them in
            raise _Unstorable("constants")
        return "{" + jaxpr(c.jaxpr) + "}"

    return closed_text(closed)


def _aval_text(aval) -> str:
    extra = "".join(f":{getattr(aval, name)}" for name in ("vma", "memory_space") if hasattr(aval, name))
    return f"{aval.dtype.str}{list(aval.shape)}{'w' if aval.weak_type else ''}:{aval.sharding}{extra}"


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def environment_key() -> dict:
    """Everything that can change a compiled kernel, as the store's folder is named by it."""
    device = jax.devices()[0]
    configuration = {
        name: value for name, value in sorted(jax_config.values.items())
        if isinstance(value, (bool, int, float, str, type(None))) and "cache" not in name and "log" not in name
    }  # fmt: skip
    return {
        "format": FORMAT, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "config": configuration,
        "device": [device.platform, device.device_kind, device.client.platform_version],
        "cpu": _cpu_features(), "python": sys.version_info[:2],
    }  # fmt: skip


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class KernelStore:
    """The kernels of one process, and those on disk in `folder` (None: in memory only)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.original = dispatch.xla_primitive_callable
        self.primitives: dict[tuple, _PrimitiveKernels | Callable] = {}
        # By name, every kernel this process holds: one is never loaded twice (the same
        # executable loaded twice in one process does not run the second time, jax 0.10.2).
        self.by_name: dict[str, Callable] = {}
        self.original_jit_impl = pjit.jit_p.impl
        # The kernels of each jaxpr met (a weak key: jaxprs come and go with the graphs).
        self.jitted: weakref.WeakKeyDictionary | None = weakref.WeakKeyDictionary()
        self.counts = {"loaded": 0, "compiled": 0, "rejected": 0, "corrupt": 0, "plain": 0}

    # ---- the hook ---------------------------------------------------------------------------------

    def callable_for(self, primitive, **params):
        """What `dispatch.xla_primitive_callable(primitive, **params)` gives: a callable that runs
        the primitive on its operands."""
        try:
            key = (primitive, trace_context(), tuple(sorted(params.items())))
            hash(key)
        except TypeError:
            return self.original(primitive, **params)
        found = self.primitives.get(key)
        if found is None:
            try:
                name = f"{primitive.name}({','.join(f'{k}={_stable_text(v)}' for k, v in sorted(params.items()))})"
            except _Unstorable:
                found = self.original(primitive, **params)
            else:
                found = _PrimitiveKernels(self, name, self.original(primitive, **params))
            self.primitives[key] = found
        return found

    def jit_impl(self, *args, jaxpr, **params):
        """What `jit_p`'s implementation does (run a jitted function, as jax.nn's softmax and jnp's
        reductions are, eagerly): the same kernel, from the store, keyed on the jaxpr's text. A
        jitted function with shardings, layouts, donations or compiler options of its own, or a
        jaxpr that is not plain data, goes JAX's own way."""
        found = self.jitted.get(jaxpr) if self.jitted is not None else None
        if found is None:
            found = self._jit_kernels(jaxpr, params)
            with contextlib.suppress(TypeError):
                self.jitted[jaxpr] = found
        if found is False:
            return self.original_jit_impl(*args, jaxpr=jaxpr, **params)
        return found(*args)

    def _jit_kernels(self, jaxpr, params):
        plain = (
            all(isinstance(s, pjit.UnspecifiedValue) for s in (*params["in_shardings"], *params["out_shardings"]))
            and all(layout is None for layout in (*params["in_layouts"], *params["out_layouts"]))
            and not any(params["donated_invars"]) and not params["compiler_options_kvs"] and params["ctx_mesh"].empty
        )  # fmt: skip
        try:
            if not plain:
                raise _Unstorable("shardings, layouts, donations or compiler options")
            text = f"{params['name']}|{params['keep_unused']}|{_jaxpr_text(jaxpr)}"
        except _Unstorable:
            return False
        function = core.jaxpr_as_fun(jaxpr)
        function.__name__ = params["name"]  # what JAX names the lowered module
        jitted = jax.jit(function, keep_unused=params["keep_unused"])
        return _PrimitiveKernels(self, f"jit:{params['name']}:{_digest(text.encode())}", jitted)

    # ---- kernels on disk -------------------------------------------------------------------------

    def kernel(self, name: str, jitted, args) -> tuple[Callable, bool]:
        """The compiled kernel of `jitted` (JAX's jit of one primitive) for operands like `args`,
        and whether it was loaded: from the disk if it holds it, else compiled now (once among the
        processes sharing the store)."""
        if name in self.by_name:
            return self.by_name[name], False
        kernel, loaded = self._find(name, jitted, args)
        self.by_name[name] = kernel
        return kernel, loaded

    def _find(self, name: str, jitted, args) -> tuple[Callable, bool]:
        if self.folder is None:
            return self._compile(jitted, args), False
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
            compiled = self._compile(jitted, args)  # and a damaged entry is written over
            self._save(path, name, compiled, len(args))
        return compiled, False

    def replace(self, name: str, jitted, args) -> Callable:
        """A loaded kernel that did not run: compiled again, and its entry written over."""
        self.counts["rejected"] += 1
        compiled = self.by_name[name] = self._compile(jitted, args)
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
        self.counts["compiled"] += 1
        # Compiled here, never taken from JAX's persistent cache: an executable loaded from it
        # and saved again loads without its code (jax 0.10.2: "Function wrapped_add not found"
        # when it runs). This store holds the eager kernels; JAX's cache keeps the rest.
        with enable_compilation_cache(False):
            return jitted.lower(*args).compile()

    def _load(self, path: Path, name: str, arity: int):
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
        try:
            loaded = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        except Exception:
            self.counts["rejected"] += 1
            return None
        self.counts["loaded"] += 1
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
        header = json.dumps({"key": name, "sha256": _digest(payload), "arity": arity, "outputs": outputs,
                             "list": listed}).encode()  # fmt: skip
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


def write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all; a failure (a full disk) only costs the entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


class _PrimitiveKernels:
    """One primitive with its parameters: its kernel for each kind of operands met in this process."""

    def __init__(self, store: KernelStore, name: str, jitted):
        self.store, self.name, self.jitted = store, name, jitted
        self.kernels: dict[tuple, Any] = {}

    def __call__(self, *args):
        try:
            avals = tuple(arg.aval for arg in args)
            kernel = self.kernels.get(avals)
        except (AttributeError, TypeError):  # an operand without a type JAX can key
            self.store.counts["plain"] += 1
            return self.jitted(*args)
        if kernel is None:
            name = f"{self.name}[{';'.join(_aval_text(aval) for aval in avals)}]"
            kernel, loaded = self.store.kernel(name, self.jitted, args)
            if loaded:
                try:
                    result = kernel(*args)
                except Exception:  # an entry that loads but does not run (a damaged executable)
                    kernel = self.store.replace(name, self.jitted, args)
                else:
                    self.kernels[avals] = kernel
                    return result
            self.kernels[avals] = kernel
        return kernel(*args)


_installed: KernelStore | None = None
_make_ir_context = mlir.make_ir_context if _MISSING is None else None
_contexts = threading.local()


def _shared_ir_context():
    """One MLIR context per thread, made once, instead of one per lowering (about 4 ms each):
    what JAX does itself after 0.11. The kernels that are still lowered here (the jitted
    functions in jax.nn and jax.scipy, and the first meeting of each eager kernel) come out the
    same: a context holds dialects, not the modules' content."""
    context = getattr(_contexts, "context", None)
    if context is None:
        context = _contexts.context = _make_ir_context()
    return context


def install(cache: Path | None) -> str | None:
    """Serve JAX's eager primitives from a kernel store kept under `cache` (None: in memory only).
    Returns a line for the user when the store is not used (another JAX, turned off, or a CPU
    that rejects loaded kernels), else None."""
    global _installed
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
    """Whether a kernel this store wrote loads again here (jax issue 38445 rejects it as it loads).
    The probe is a kernel no graph meets (nextafter): the same executable loaded twice in one
    process does not run the second time (jax 0.10.2: "Function ... not found")."""
    x = jax.device_put(np.zeros((), np.float64))
    jitted = store.original(jax.lax.nextafter_p)
    assert store.folder is not None
    path, name = store.folder / "probe.kernel", "probe:nextafter[f8[];f8[]]"
    if store._load(path, name, 2) is not None:
        return True
    with store._lock(path):
        store._save(path, name, store._compile(jitted, (x, x)), 2)
    rejected = store.counts["rejected"]
    return store._load(path, name, 2) is not None or store.counts["rejected"] == rejected


def reinstall(store: KernelStore) -> None:
    """Serve JAX's eager primitives from `store` again (after `uninstall`)."""
    global _installed
    dispatch.xla_primitive_callable = store.callable_for
    pjit.jit_p.def_impl(store.jit_impl)
    mlir.make_ir_context = _shared_ir_context
    _installed = store


def uninstall() -> None:
    """Back to plain JAX (for the test that compares both)."""
    global _installed
    if _installed is not None:
        dispatch.xla_primitive_callable = _installed.original
        pjit.jit_p.def_impl(_installed.original_jit_impl)
        mlir.make_ir_context = _make_ir_context
        _installed = None


def installed() -> KernelStore | None:
    return _installed
