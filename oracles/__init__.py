"""oracles: the verification side. Generates random graphs of the op table's ops, evaluates
each with the engine under test and independent references (JAX, PyTorch, finite
differences), compares values and vector-Jacobian products under a stated error model, and
blames the backend that the others outvote."""
