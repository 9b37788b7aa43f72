"""Adapters for real autodiff engines, written here against each engine's public API only (its
own value and its own gradient: no numpy fallback, no help from the references), so that
`autodiff-audit audit --engine <short name>` audits the engine, not the adapter.

Each adapter is a plug-in like any other (graph-format.md): it declares the ops the engine
has, and declines, with a reason, graphs the engine cannot express. Install an engine with
its extra, `pip install -e '.[<name>]'` (pinned versions, see pyproject.toml).
"""

# Short names for --engine: these adapters, not the engines' own packages (which are no plug-ins).
SHORT_NAMES = {
    "autograd": "oracles.engines.autograd_adapter",
    "mygrad": "oracles.engines.mygrad_adapter",
    "tensorflow": "oracles.engines.tensorflow_adapter",
    "tinygrad": "oracles.engines.tinygrad_adapter",
    "micrograd": "oracles.engines.micrograd_adapter",
    "mlx": "oracles.engines.mlx_adapter",
    "pytensor": "oracles.engines.pytensor_adapter",
    "torch": "oracles.engines.torch_adapter",
    "jax": "oracles.engines.jax_adapter",
}

# The engines that are one of the references' own library (module -> that reference): an engine
# audited against itself would agree with itself, so that reference is left out (check/core.py).
REFERENCE_TWINS = {
    "oracles.engines.torch_adapter": "torch",
    "oracles.engines.jax_adapter": "jax",
    "oracles.backends.torch_backend": "torch",
    "oracles.backends.jax_backend": "jax",
}


def reference_twin(engine_spec: str) -> str | None:
    """The reference that is the engine's own library (`--engine torch` is PyTorch), or None."""
    return REFERENCE_TWINS.get(SHORT_NAMES.get(engine_spec, engine_spec).partition(":")[0])
