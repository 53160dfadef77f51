"""Magic amounts: the cents pick the host's behaviour; one table, printed in English and Chinese.

Against a real ``possim acquirer --magic`` process over TCP, with real terminal processes: a .05
sale is declined 05, a .01 sale's answer is lost while its debit stays in the ledger.
"""

from __future__ import annotations

import json
import random
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from possim.acquirer_sim.config import BehaviourRule, HostConfig
from possim.acquirer_sim.host import AwaitIssuer, Crashed
from possim.acquirer_sim.ledger import Ledger
from possim.acquirer_sim.magic import TABLE, MagicHost
from possim.processes.broker import Broker, free_port
from possim.processes.keys import generate
from possim.protocol import codec
from possim.protocol.latency import ZERO
from possim.protocol.messages import Message, OriginalData
from tests.helpers import replies
from tests.procs import POSSIM, query, run, running

SCENARIO = """
title = "one sale"
description = "One purchase of a magic amount."
policy = "none"
[terminal]
response_timeout = 1.5
[[transactions]]
amount = "{amount}"
"""


def _table(*args: str) -> str:
    out = subprocess.run([*POSSIM, "acquirer", "--magic-table", *args], capture_output=True, text=True, timeout=60,
                         check=True)
    return out.stdout


def test_the_magic_table_is_printed_in_english_and_chinese() -> None:
    en, zh = _table(), _table("--lang", "zh")
    for row in TABLE:
        assert f".{row.cents:02d}" in en and row.name in en and row.name in zh
    assert "declined 05" in en and "拒绝 05" in zh and "拒绝 05" not in en


def test_a_scenario_behaviour_with_an_unknown_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.format(amount="12.00") + '[[host.behaviours]]\namount = "12.00"\n'
                    'behaviour = "answer-eaten"\n', encoding="utf-8")
    out = subprocess.run([*POSSIM, "acquirer", "--magic", "--scenario", str(path), "--transport", "tcp"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "answer-eaten" in out.stderr and "behaviours" in out.stderr


async def _sale(tmp_path: Path, url: str, amount: str, tid: str) -> dict[str, object]:
    path = tmp_path / f"sale-{tid}.toml"
    path.write_text(SCENARIO.format(amount=amount), encoding="utf-8")
    done = await run("terminal", str(path), "--transport", "tcp", "--connect", url, "--tid", tid,
                     "--journal", str(tmp_path / f"{tid}.db"), "--no-log")
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


@pytest.mark.asyncio
async def test_magic_amounts_over_tcp_decline_05_and_lose_the_answer_after_the_debit(tmp_path: Path) -> None:
    ledger, url = tmp_path / "ledger.db", f"tcp://127.0.0.1:{free_port()}"
    async with running("acquirer", "--magic", "--transport", "tcp", "--listen", url, "--ledger",
                       str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        declined = await _sale(tmp_path, url, "12.05", "MAGIC005")
        lost = await _sale(tmp_path, url, "12.01", "MAGIC001")
        assert await acquirer.stop() == 0
    assert declined["declined"] == 1
    assert query(ledger, "SELECT response_code, state FROM originals WHERE tid='MAGIC005'") == [("05", "declined")]
    assert lost["approved"] == 0 and lost["declined"] == 0
    assert query(ledger, "SELECT response_code, state, amount FROM originals WHERE tid='MAGIC001'") == [
        ("00", "debited", 1201)]
    assert query(ledger, "SELECT kind, amount FROM entries WHERE tid='MAGIC001'") == [("debit", 1201)]


# -- the host itself, sans IO: real bytes, a real (in-memory) ledger ---------------------------------

def _host(profile: str = "iso", keys: bool = False, **config: object) -> MagicHost:
    cfg = HostConfig(profile=profile, processing=ZERO, quick=ZERO, **config)  # type: ignore[arg-type]
    ring = generate(["POS00001"]) if keys else None
    return MagicHost(cfg, Ledger(default_balance=cfg.default_balance), random.Random(0),
                     ring.mac_keys() if ring else None)


def _request(amount: int, stan: str = "000001") -> Message:
    return Message(mti="0200", stan=stan, transmission="1207100000", tid="POS00001", mid="MERCHANT0000001",
                   pan="4000000000000002", processing_code="000000", amount=amount, local_time="100000",
                   local_date="1207", currency="978")


def _answers(host: MagicHost, msg: Message, now: float = 1.0) -> list[Message]:
    actions = host.receive(now, codec.encode(msg, host.keys.get(msg.tid) if host.keys else None))
    for action in actions:
        if isinstance(action, AwaitIssuer):
            actions += host.issuer_answered(now + action.delay, action.key)
    return [codec.decode(r.data) for r in replies(actions)]


@pytest.mark.parametrize(("profile", "code"), [("iso", "91"), ("cup", "98")])
def test_issuer_timeout_answers_the_profile_code_and_debits_nothing(profile: str, code: str) -> None:
    host = _host(profile)
    (answer,) = _answers(host, _request(1291))
    assert answer.response_code == code
    assert host.ledger.available("4000000000000002") == host.config.default_balance


def test_crash_after_commit_keeps_the_debit_and_drops_what_arrives_while_down() -> None:
    host = _host()
    actions = host.receive(1.0, codec.encode(_request(1203)))
    assert not replies(actions) and any(isinstance(a, Crashed) and a.until == 91.0 for a in actions)
    assert host.ledger.find(_request(1203).key()).state == "debited"  # type: ignore[union-attr]
    assert _answers(host, _request(1200, "000002"), now=50.0) == []


def test_query_in_progress_three_times_then_the_ledger_answer() -> None:
    host = _host()
    assert _answers(host, _request(1206)) == []  # the answer is lost
    query = Message(mti="0600", stan="000002", transmission="1207100001", tid="POS00001", mid="MERCHANT0000001",
                    processing_code="970000", original=OriginalData("0200", "000001", "1207100000"))
    statuses = [_answers(host, replace(query, stan=f"00000{i}"))[0].status for i in range(2, 6)]
    assert statuses == ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "APPROVED"]


def test_wrong_mac_answer_fails_the_terminal_check_and_twice_sends_two() -> None:
    host = _host(keys=True)
    data = replies(host.receive(1.0, codec.encode(_request(1263), host.keys["POS00001"])))[0].data  # type: ignore[index]
    with pytest.raises(codec.MacError):
        codec.decode(data, host.keys)
    assert len(_answers(host, _request(1222, "000002"))) == 2


def test_a_scenario_rule_by_terminal_comes_before_the_cents() -> None:
    host = _host(behaviours=(BehaviourRule("decline-51", tid="POS00001"),))
    assert [a.response_code for a in _answers(host, _request(1201))] == ["51"]
    plain = MagicHost(HostConfig(processing=ZERO, quick=ZERO), Ledger(), random.Random(0), magic=False)
    assert [a.response_code for a in _answers(plain, _request(1205))] == ["00"]  # no --magic: cents mean nothing


@pytest.mark.asyncio
async def test_magic_over_mqtt_and_cup_declines_51(broker: Broker, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    async with running("acquirer", "--magic", "--profile", "cup", "--broker", broker.url, "--ledger", str(ledger),
                       "--client-id", "magic-mqtt-acquirer") as acquirer:
        await acquirer.ready("acquirer_ready")
        path = tmp_path / "sale.toml"
        path.write_text(SCENARIO.format(amount="12.51"), encoding="utf-8")
        done = await run("terminal", str(path), "--broker", broker.url, "--tid", "MAGIC051", "--profile", "cup",
                         "--journal", str(tmp_path / "t.db"), "--no-log")
        assert await acquirer.stop() == 0
    assert json.loads(done.stdout)["declined"] == 1
    assert query(ledger, "SELECT response_code FROM originals WHERE tid='MAGIC051'") == [("51",)]
