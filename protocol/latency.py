"""Latency models: how long a message spends on the wire, drawn from the fault layer's RNG."""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass
from typing import Literal

Distribution = Literal["constant", "uniform", "normal", "lognormal"]


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency distribution in seconds, plus uniform jitter of +/- ``jitter``.

    ``value`` is the constant, the normal mean, or the lognormal *median*; ``low``/``high``
    bound the uniform; ``sigma`` is the normal standard deviation or the lognormal shape.
    Samples never go below zero.
    """

    dist: Distribution = "constant"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    sigma: float = 0.0
    jitter: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.dist == "constant":
            base = self.value
        elif self.dist == "uniform":
            base = rng.uniform(self.low, self.high)
        elif self.dist == "normal":
            base = rng.gauss(self.value, self.sigma)
        else:
            base = _lognormal(rng, self.value, self.sigma) if self.value > 0 else 0.0
        if self.jitter:
            base += rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


#: The largest exponent ``math.exp`` takes without overflowing.
_MAX_EXPONENT = math.log(sys.float_info.max)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    """``rng.lognormvariate`` (the same draw), but a far tail saturates instead of raising OverflowError."""
    return math.exp(min(rng.normalvariate(math.log(median), sigma), _MAX_EXPONENT))


ZERO = Latency()
