"""Shared fixtures and Hypothesis profiles (``ci`` is the default; ``fuzz`` for make fuzz)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings

from possim.processes.broker import Broker
from possim.protocol.mqtt import BrokerAddress, MqttEndpoint

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Process commands are secure by default: without --keys they create and use ./possim-keys.json.
# Tests that do not test that get the old anonymous behaviour, as `--insecure` gives it, and
# leave no key file in the folder they run in; tests/processes/test_secure_default.py removes this.
os.environ["POSSIM_INSECURE"] = "1"
# A suite started in the background by a non-interactive shell (a CI script, `make test &`)
# inherits an ignored SIGINT, and so would every possim process it starts: the Ctrl-C tests
# would then test nothing. Restore the default here; children get it on exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

OnMessage = Callable[[str, bytes], None]
Connect = Callable[..., Coroutine[Any, Any, MqttEndpoint]]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port, with possim's config, for the whole session.

    A plain fixture: ``Broker.start()`` blocks until the port accepts connections (its
    readiness signal), and a session-wide broker must not be tied to one test's event loop.
    """
    b = Broker(state_dir=tmp_path_factory.mktemp("mosquitto"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker this test may kill and restart."""
    b = Broker(state_dir=tmp_path / "mosquitto")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest_asyncio.fixture
async def connect(broker: Broker) -> AsyncIterator[Connect]:
    """Connect MQTT endpoints to the session broker; every one is stopped when the test ends.

    ``await connect(prefix, subscriptions, on_message, identifier=None)`` returns a started
    endpoint (connected and subscribed); a fixed ``identifier`` resumes that client's session.
    """
    made: list[MqttEndpoint] = []

    async def make(prefix: str, subscriptions: list[str] | None = None, on_message: OnMessage | None = None,
                   identifier: str | None = None) -> MqttEndpoint:
        ep = MqttEndpoint(BrokerAddress.parse(broker.url), identifier or f"{prefix}-{uuid.uuid4().hex[:6]}",
                          subscriptions or [], on_message or (lambda *_: None))
        made.append(ep)
        await ep.start()
        return ep

    try:
        yield make
    finally:
        for ep in reversed(made):
            await ep.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module's tests (tests/layout.py, ``chromium``); each opens its own pages."""
    from tests.layout import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page(browser: Any) -> Any:
    """One page of the module's Chromium, for tests that load file after file into the same tab."""
    return browser.new_page()
