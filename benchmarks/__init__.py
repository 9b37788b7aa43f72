"""Benchmarks: forward and forward+backward cost of our engine against the notebook's, PyTorch and JAX.

    pytest benchmarks --benchmark-enable                      # the quick sweep, about half a minute
    pytest benchmarks --benchmark-enable --bench-sweep full   # every size, about a minute
    python -m benchmarks.chains                               # the two node engines, no pytest

workloads.py describes each workload once as graph dicts; backends.py derives every backend's
code from them; test_bench.py checks that the backends agree and times them; conftest.py fixes
the thread counts and records versions and threads in the JSON's machine info.
"""
