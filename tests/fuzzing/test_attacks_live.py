"""The issue's attacks against real infrastructure: possim processes with keys over a secured
Mosquitto, and a running acquirer over TCP. Every wait is on a log line or an answer.

Ordering instead of sleeping: Mosquitto handles one client's packets in order and the acquirer
has one subscription, so when the acquirer logs the attacker's *later* marker message, an
earlier message had either been delivered (and logged) or refused by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost
from possim.acquirer_sim.ledger import Ledger
from possim.fuzzing.forgery import attacker_key
from possim.processes import keys
from possim.processes.broker import free_port
from possim.protocol import codec
from possim.protocol.framing import Deframer
from possim.protocol.latency import ZERO
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData
from possim.protocol.mqtt import requests_topic, responses_topic
from possim.protocol.transports import Endpoint, open_wire
from possim.running.realtime import serve_acquirer
from tests import procs
from tests.waiting import wait_until

VICTIM, ATTACKER = "POS00002", "POS00001"
SCENARIOS = Path(__file__).resolve().parent.parent.parent / "scenarios"


def _reversal(stan: str, tid: str = VICTIM) -> Message:
    return Message(mti="0400", stan=stan, transmission="1125100030", tid=tid, pan="4000000000000002",
                   processing_code="000000", amount=2500, currency="978",
                   original=OriginalData("0200", "000001", "1125100000"))


@pytest.mark.asyncio
async def test_mqtt_attacker_cannot_reverse_approve_or_read_with_keys_and_acl(tmp_path: Path) -> None:
    key_file, ledger, journal = tmp_path / "keys.json", tmp_path / "ledger.db", tmp_path / "journal.db"
    made = await procs.run("keys", "--out", str(key_file), "--terminal", ATTACKER, "--terminal", VICTIM)
    assert made.returncode == 0 and "key check value" in made.stdout and "mac_key" not in made.stdout
    ring = keys.load(key_file)
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    async with procs.running("broker", "--port", str(port), "--state-dir", str(tmp_path / "b"), "--keys",
                                 str(key_file)) as broker_cmd:
        await broker_cmd.wait_for_line(lambda line: line.startswith("mosquitto listening on"), "the broker's banner")
        async with procs.running("acquirer", "--broker", url, "--ledger", str(ledger), "--keys",
                                     str(key_file)) as acquirer:
            await acquirer.ready()
            publish = _attacker(port, ring.accounts()[ATTACKER])
            # 1. the victim's topic: refused by the broker's ACL (Mosquitto drops the connection)
            await publish(requests_topic(VICTIM), codec.encode(_reversal("900001")))
            # 2. a forged approval on the victim's response topic: refused by the ACL too
            await publish(responses_topic(VICTIM), b"0210forged")
            # 3. its own topic, naming the victim in field 41 with its own real key: identity mismatch
            await publish(requests_topic(ATTACKER), codec.encode(_reversal("900002"), ring.mac_key(ATTACKER)))
            # 4. the marker: its own topic and id, but no MAC: answered 63, nothing changed
            await publish(requests_topic(ATTACKER), codec.encode(_reversal("900003", ATTACKER)))
            await acquirer.wait_for_line(procs.is_event("security_violation", stan="900003"), "the marker")
            assert any(procs.is_event("identity_mismatch", stan="900002", sender=ATTACKER)(x)
                       for x in acquirer.lines)
            assert not any('"900001"' in x for x in acquirer.lines), "the ACL let the victim's topic through"
            term = await procs.run("terminal", str(SCENARIOS / "forged-reversal.toml"), "--broker", url,
                                       "--tid", VICTIM, "--policy", "reversal", "--journal", str(journal),
                                       "--keys", str(key_file), "--time-scale", "0.05")
            assert term.returncode == 0, term.stderr
            assert json.loads(term.stdout)["approved"] == 1
            assert await acquirer.stop(signal.SIGTERM) == 0, acquirer.log
        await broker_cmd.stop(signal.SIGTERM)
    assert "4000000000000002" not in acquirer.log + term.stderr  # card numbers masked in every log line
    with sqlite3.connect(ledger) as conn:
        kinds = conn.execute("SELECT kind, amount FROM entries ORDER BY id").fetchall()
    assert kinds == [("debit", 2500)]  # the forged reversal (wrong MAC) credited nothing
    check = await procs.run("check", "--journal", str(journal), "--ledger", str(ledger), "--json")
    summary = json.loads(check.stdout)
    assert (summary["approved"], summary["phantom_approvals"], summary["orphaned_debits"]) == (1, 0, 0)


def _attacker(port: int, password: str) -> Callable[[str, bytes], Awaitable[None]]:
    """Publish as the attacker's real account, one connection per message (a refused publish ends it)."""
    counter = iter(range(1000))

    async def publish(topic: str, payload: bytes) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, identifier=f"attacker-{next(counter)}", username=ATTACKER,
                                      password=password, protocol=aiomqtt.ProtocolVersion.V5) as client:
                await client.publish(topic, payload, qos=1)

    return publish


def _frame(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


async def _answer(reader: asyncio.StreamReader, deframer: Deframer) -> bytes:
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), 60)
        assert chunk, "connection closed"
        frames = deframer.feed(chunk)
        if frames:
            return frames[0]


@pytest.mark.asyncio
async def test_tcp_attacker_connection_never_takes_over_the_victims_replies() -> None:
    ring = keys.derive(5, [ATTACKER, VICTIM])
    ledger = Ledger(default_balance=HostConfig().default_balance)
    host = AcquirerHost(HostConfig(processing=ZERO, quick=ZERO), ledger, random.Random(0), ring.mac_keys())
    wire = open_wire("tcp", Endpoint("tcp://127.0.0.1:0"))
    stop = asyncio.Event()
    logs: list[tuple[str, dict[str, Any]]] = []

    def log(event: str, **fields: Any) -> None:
        logs.append((event, fields))

    server = asyncio.create_task(serve_acquirer(wire, host, log, stop, 3600))
    await wait_until(lambda: any(e == "acquirer_ready" for e, _ in logs), lambda: str(logs))
    port = int(wire.describe()["port"])  # type: ignore[call-overload]
    sale = Message(mti="0200", stan="000001", transmission="1125100000", tid=VICTIM, mid="MERCHANT0000001",
                   pan="4000000000000002", processing_code="000000", amount=2500, currency="978")
    vr, vw = await asyncio.open_connection("127.0.0.1", port)
    ar, aw = await asyncio.open_connection("127.0.0.1", port)
    try:
        vd, ad = Deframer(), Deframer()
        vw.write(_frame(codec.encode(sale, ring.mac_key(VICTIM))))
        assert codec.decode(await _answer(vr, vd), ring.mac_key(VICTIM)).response_code == "00"
        # the attacker names the victim: a wrong MAC is answered 63 on the attacker's own connection
        aw.write(_frame(codec.encode(_reversal("900001"), attacker_key(5))))
        assert codec.decode(await _answer(ar, ad)).response_code == "63"
        # the attacker's connection, bound to itself, cannot speak for the victim even with a valid victim frame
        own = replace(sale, tid=ATTACKER, stan="000009")
        aw.write(_frame(codec.encode(own, ring.mac_key(ATTACKER))))
        assert codec.decode(await _answer(ar, ad), ring.mac_key(ATTACKER)).response_code == "00"
        aw.write(_frame(codec.encode(replace(sale, stan="000003"), ring.mac_key(VICTIM))))  # replayed victim frame
        # the victim's next sale is answered to the victim, not to the attacker
        vw.write(_frame(codec.encode(replace(sale, stan="000002"), ring.mac_key(VICTIM))))
        answer = codec.decode(await _answer(vr, vd), ring.mac_key(VICTIM))
        assert (answer.stan, answer.response_code) == ("000002", "00")
        await wait_until(lambda: any(e == "identity_mismatch" for e, _ in logs), lambda: str(logs))
        assert ad.pending == 0
        debits = ledger.conn.execute("SELECT tid, stan FROM entries WHERE kind='debit' ORDER BY id").fetchall()
        assert debits == [(VICTIM, "000001"), (ATTACKER, "000009"), (VICTIM, "000002")]
    finally:
        vw.close()
        aw.close()
        stop.set()
        await server
        ledger.close()


_SLOW_HOST = """title = "A host that takes a second to answer a new sale"
description = "Only its [host] table is used: the acquirer's processing delay."
seed = 1

[host]
processing = { dist = "constant", value = 1.0 }

[[transactions]]
at = 0
amount = "12.00"
"""


@pytest.mark.asyncio
async def test_tcp_replayed_sale_never_becomes_the_victims_reply_route(tmp_path: Path) -> None:
    """A running acquirer process, real bytes over real sockets.

    The attacker captured the victim's first 0200 and replays it from its own connection: the
    stored 0210 comes back to the attacker (that much the capture already showed), but the replay
    binds nothing. Then the victim's link blips while its next sale is being processed (the sale
    and the close leave together, so the connection is gone before the 1 s answer): that answer
    has no route and is dropped, never sent to the attacker's socket; the victim, reconnected,
    asks again and gets it. The attacker's marker shows nothing else reached it.
    """
    key_file, ledger, scenario = tmp_path / "keys.json", tmp_path / "ledger.db", tmp_path / "slow.toml"
    scenario.write_text(_SLOW_HOST, encoding="utf-8")
    made = await procs.run("keys", "--out", str(key_file), "--terminal", ATTACKER, "--terminal", VICTIM)
    assert made.returncode == 0, made.stderr
    key = keys.load(key_file).mac_key(VICTIM)
    port = free_port()
    sale = Message(mti="0200", stan="000001", transmission="1125100000", tid=VICTIM, mid="MERCHANT0000001",
                   pan="4000000000000002", processing_code="000000", amount=1200, currency="978")
    first, second, third = (codec.encode(replace(sale, stan=f"00000{n}"), key) for n in (1, 2, 3))
    async with procs.running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}",
                                 "--ledger", str(ledger), "--keys", str(key_file), "--scenario", str(scenario)
                                 ) as acquirer:
        await acquirer.ready("acquirer_ready")
        vr, vw = await asyncio.open_connection("127.0.0.1", port)
        ar, aw = await asyncio.open_connection("127.0.0.1", port)
        vr2, vw2 = await asyncio.open_connection("127.0.0.1", port)
        try:
            vd, ad, vd2 = Deframer(), Deframer(), Deframer()
            vw.write(_frame(first))
            assert _ids(await _answer(vr, vd), key) == ("000001", "00")
            aw.write(_frame(first))  # the replay: answered where it came from, with the stored answer
            assert _ids(await _answer(ar, ad), key) == ("000001", "00")
            vw.write(_frame(second))
            vw.close()  # the blip: the sale and the close leave together
            await acquirer.wait_for_line(procs.is_event("msg_sent", side="host", stan="000002"),
                                         "the host's answer to the victim's second sale")
            # the marker, sent after that answer left: the next thing the attacker reads is its own replay's answer
            aw.write(_frame(first))
            assert _ids(await _answer(ar, ad), key) == ("000001", "00")
            await acquirer.wait_for_line(procs.is_event("tcp_no_route", tid=VICTIM), "the dropped answer")
            vw2.write(_frame(second))  # reconnected, the victim asks again: the stored answer, to the victim
            assert _ids(await _answer(vr2, vd2), key) == ("000002", "00")
            vw2.write(_frame(third))  # and its next sale is answered to the victim too
            assert _ids(await _answer(vr2, vd2), key) == ("000003", "00")
            aw.write(_frame(first))  # a last marker: still nothing of the victim's on the attacker's socket
            assert _ids(await _answer(ar, ad), key) == ("000001", "00")
            assert ad.pending == 0
        finally:
            for writer in (vw, aw, vw2):
                writer.close()
        assert await acquirer.stop(signal.SIGTERM) == 0, acquirer.log
    assert "4000000000000002" not in acquirer.log
    with sqlite3.connect(ledger) as conn:
        debits = conn.execute("SELECT stan, amount FROM entries WHERE kind = 'debit' ORDER BY id").fetchall()
    assert debits == [("000001", 1200), ("000002", 1200), ("000003", 1200)]  # each sale booked once


def _ids(frame: bytes, key: MacKey) -> tuple[str, str | None]:
    """The STAN and response code of an answer whose MAC is the victim's."""
    msg = codec.decode(frame, key)
    return msg.stan, msg.response_code


@pytest.mark.asyncio
async def test_tcp_a_stranger_cannot_have_the_host_sign_a_decline_of_the_victims_sale(tmp_path: Path) -> None:
    """A running acquirer process with keys, real bytes over real sockets.

    An on-path stranger without keys sees the victim's sale leave. It sends a copy with the MAC
    spoiled (and one with binary bitmaps and no MAC) from its own connection: the host answers
    63, with the victim's STAN, field 7 and amount. Were that answer MACed under the victim's key,
    the stranger would hand it to the victim in place of the approval: a debited sale shown
    DECLINED (63), and no policy reverses a decline. The answers carry no MAC, so the victim's
    terminal would take them as no answer; nothing is booked for them."""
    key_file, ledger = tmp_path / "keys.json", tmp_path / "ledger.db"
    made = await procs.run("keys", "--out", str(key_file), "--terminal", ATTACKER, "--terminal", VICTIM)
    assert made.returncode == 0, made.stderr
    key = keys.load(key_file).mac_key(VICTIM)
    port = free_port()
    seen = Message(mti="0200", stan="000001", transmission="1125100000", tid=VICTIM, mid="MERCHANT0000001",
                   pan="4000000000000002", processing_code="000000", amount=1200, currency="978")
    sale = codec.encode(seen, key)
    spoiled, binary = sale[:-16] + b"0" * 16, codec.encode_binary(seen)
    async with procs.running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}",
                                 "--ledger", str(ledger), "--keys", str(key_file)) as acquirer:
        await acquirer.ready("acquirer_ready")
        vr, vw = await asyncio.open_connection("127.0.0.1", port)
        ar, aw = await asyncio.open_connection("127.0.0.1", port)
        try:
            vd, ad = Deframer(), Deframer()
            vw.write(_frame(sale))
            assert _ids(await _answer(vr, vd), key) == ("000001", "00")
            for forged in (spoiled, binary):
                aw.write(_frame(forged))
                answer = await _answer(ar, ad)
                assert codec.decode(answer).response_code == "63"
                with pytest.raises(codec.MacMissingError):
                    codec.decode(answer, key)  # nothing the victim's terminal would take for an answer
        finally:
            for writer in (vw, aw):
                writer.close()
        assert await acquirer.stop(signal.SIGTERM) == 0, acquirer.log
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT stan, kind, amount FROM entries").fetchall() == [("000001", "debit", 1200)]
