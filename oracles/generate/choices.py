"""Where every random decision of the generator comes from: a numpy Generator for audits,
Hypothesis draws for property tests (so a failing property test shrinks the same kind of
graph an audit produces)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class ChoiceSource(ABC):
    """Where every random decision of the generator comes from."""

    @abstractmethod
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], both included."""

    @abstractmethod
    def boolean(self, p: float) -> bool:
        """True with probability about p."""

    @abstractmethod
    def normal(self, shape: tuple) -> np.ndarray:
        """A float64 array of `shape`, roughly standard normal."""

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]


class NumpyChoices(ChoiceSource):
    def __init__(self, rng: np.random.Generator):
        # rng.random() is several times cheaper than rng.integers() per call, and a graph makes dozens.
        self._random = rng.random
        self._standard_normal = rng.standard_normal

    def integer(self, lo: int, hi: int) -> int:
        return lo + int(self._random() * (hi - lo + 1))

    def boolean(self, p: float) -> bool:
        return self._random() < p

    def normal(self, shape: tuple) -> np.ndarray:
        return np.asarray(self._standard_normal(shape))


class HypothesisChoices(ChoiceSource):
    """Choices drawn through Hypothesis, which records them and can shrink them."""

    def __init__(self, draw):
        from hypothesis import strategies as st  # a test-time dependency; the audit needs only numpy
        from hypothesis.extra import numpy as hnp

        self._draw, self._st, self._hnp = draw, st, hnp

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def boolean(self, p: float) -> bool:
        # A percentile rather than st.booleans() keeps rare features rare; it shrinks to 0, i.e. False.
        return self._draw(self._st.integers(0, 99)) >= 100 - round(100 * p)

    def normal(self, shape: tuple) -> np.ndarray:
        # Multiples of 1/64 in [-3, 3]: exact in float32 too, and they shrink toward 0.
        steps = self._draw(self._hnp.arrays(np.int16, shape, elements=self._st.integers(-192, 192)))
        return np.asarray(steps, dtype=np.float64) / 64
