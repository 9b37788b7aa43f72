"""What names a kernel of the JAX reference's store (jax_kernels.py), as text that means the same
in every process: a primitive's parameters, an operand's type, a jitted function's jaxpr, and
the environment a kernel was compiled in (versions, flags, configuration, device, CPU).

A value that its text would not tell apart from another (a function, an object without a
plain value) is Unstorable: what holds it is not kept in the store, and runs JAX's own way.
"""

from __future__ import annotations

import enum
import os
import platform
import sys

import jax
import jaxlib
import numpy as np

try:  # internals of the JAX the store was written for (jax_kernels.WRITTEN_FOR)
    from jax._src import core, pjit
    from jax._src import mesh as meshes
    from jax._src.config import config as jax_config
except ImportError:  # another JAX: the store is not used, and nothing here is called
    core = pjit = meshes = jax_config = None  # type: ignore[assignment]

FORMAT = "autodiff-audit jax kernel 1"  # the first line of every kernel file


class Unstorable(Exception):
    """Parameters that do not name a kernel by their text (a jaxpr, a function): JAX's own path."""


def stable_text(value) -> str:
    """`value` as text that names it in every process, or Unstorable."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":  # a numpy scalar: typed, as JAX keeps it
        return f"{type(value).__name__}:{value.item()!r}"
    if isinstance(value, np.dtype):
        return f"dtype:{value.str}"
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__qualname__}({','.join(stable_text(item) for item in value)})"
    if isinstance(value, core.Primitive) and getattr(jax.lax, f"{value.name}_p", None) is value:
        # One of lax's own primitives (select_and_scatter_add, max_pool1d's gradient, takes
        # `ge`): its name names it. Any other primitive could share a name, so it does not.
        return f"lax.{value.name}_p"
    raise Unstorable(type(value).__name__)


def jaxpr_text(closed) -> str:
    """A closed jaxpr as text that names its computation in every process: each equation's
    primitive, parameters (nested jaxprs the same way), operands and results, numbered by first
    appearance; literals by their exact bytes. Unstorable if anything in it is not plain data (a
    function, say, whose text would not tell two apart) or it closes over constants."""
    names: dict = {}

    def atom(a) -> str:
        if isinstance(a, core.Literal):
            value = np.asarray(a.val)
            return f"lit:{aval_text(a.aval)}:{value.dtype.str}:{value.tobytes().hex()}"
        if a not in names:
            names[a] = f"v{len(names)}:{aval_text(a.aval)}"
        return names[a]

    def jaxpr(j) -> str:
        parts = ["(" + ",".join(map(atom, [*j.constvars, *j.invars])) + ")"]
        for eqn in j.eqns:
            ctx = eqn.ctx
            if ctx.xla_metadata:
                raise Unstorable("xla_metadata")
            context = "/".join(
                map(str, (ctx.compute_type, ctx.threefry_partitionable, ctx.remove_size_one_mesh_axis,
                          ctx.cur_abstract_mesh))
            )  # fmt: skip
            params = ",".join(f"{k}={param(v)}" for k, v in sorted(eqn.params.items()))
            parts.append(f"{','.join(map(atom, eqn.outvars))}={eqn.primitive.name}[{params}|{context}]"
                         f"({','.join(map(atom, eqn.invars))})")  # fmt: skip
        parts.append("->" + ",".join(map(atom, j.outvars)))
        if j.effects:
            raise Unstorable("effects")
        return ";".join(parts)

    def param(value) -> str:
        if isinstance(value, core.ClosedJaxpr):
            return closed_text(value)
        # A jit nested in the jaxpr (jnp.take's jnp.where) with JAX's defaults: no sharding, and
        # the empty mesh. Any other sharding or mesh is not plain data.
        if isinstance(value, pjit.UnspecifiedValue):
            return "unspecified"
        if isinstance(value, (meshes.Mesh, meshes.AbstractMesh)) and value.empty:
            return "mesh:empty"
        if isinstance(value, core.Jaxpr):
            return "{" + jaxpr(value) + "}"
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            return f"{type(value).__qualname__}({','.join(param(item) for item in value)})"
        return stable_text(value)

    def closed_text(c) -> str:
        if c.consts:  # JAX passes them to the kernel as arguments, and jit would fold them in
            raise Unstorable("constants")
        return "{" + jaxpr(c.jaxpr) + "}"

    return closed_text(closed)


def aval_text(aval) -> str:
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
