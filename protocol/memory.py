"""The in-memory transport: hands bytes straight to the receiving side.

On its own it is a perfect wire; wrapped in the fault layer it becomes the lossy,
latent link of the virtual-time simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemoryTransport:
    deliver: Callable[[bytes], None]

    def send(self, data: bytes) -> None:
        self.deliver(data)
