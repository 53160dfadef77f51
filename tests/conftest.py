"""Shared fixtures and Hypothesis profiles (``ci`` is the default; ``fuzz`` for make fuzz)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402

from possim.broker import Broker  # noqa: E402


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    """A real Mosquitto on a free loopback port, with possim's config, for the whole session."""
    b = Broker(state_dir=tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b  # type: ignore[misc]
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Broker:
    """A broker this test may kill and restart."""
    b = Broker(state_dir=tmp_path / "mosquitto")
    b.start()
    yield b  # type: ignore[misc]
    b.stop()
