"""A broker for one run keeps nothing; the default broker keeps sessions across a restart.

``possim load`` and the bench start a private Mosquitto that dies with the run: it must not save
(each save writes and fsyncs every session from Mosquitto's one thread, stalling every client).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from possim.processes.broker import Broker
from possim.protocol.mqtt import BrokerAddress, MqttEndpoint


async def _open_session(broker: Broker, ident: str) -> None:
    ep = MqttEndpoint(BrokerAddress("127.0.0.1", broker.port), ident, ["possim-test/keep"], lambda _t, _d: None)
    await ep.start()
    await ep.stop()


@pytest.mark.parametrize("persistent", [True, False])
def test_only_a_persistent_broker_saves_its_state(tmp_path: Path, persistent: bool) -> None:
    broker = Broker(state_dir=tmp_path / "state", persistent=persistent)
    broker.start()
    try:
        asyncio.run(_open_session(broker, "possim-test-persist"))
    finally:
        broker.stop()  # SIGTERM: a persistent broker saves here
    saved = (tmp_path / "state" / "mosquitto.db").exists()
    assert saved is persistent
    assert ("persistence true" in broker.config.read_text()) is persistent
