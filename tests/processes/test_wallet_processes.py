"""Wallet payments between separate processes: ``possim acquirer`` serves the wallet gateway over its
ledger file, ``possim terminal`` runs QR payments, ``possim check`` judges journal and ledger."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from possim.processes import keys
from possim.processes.broker import free_port
from possim.protocol import wallet as W
from possim.protocol.mqtt import requests_topic
from tests import procs
from tests.conftest import SCENARIOS
from tests.fuzzing.test_attacks_live import _attacker
from tests.procs import POSSIM, check, fleet, query

SCALE = "0.1"


def test_a_slow_customer_over_tcp_between_processes_loses_nothing(tmp_path: Path) -> None:
    """qr-user-paying-timeout under query-then-reversal: USERPAYING, queries, the cancel at the limit
    closes the order, the customer's late confirmation is refused; no money lost."""
    url = f"tcp://127.0.0.1:{free_port()}"
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    scenario = str(SCENARIOS / "qr-user-paying-timeout.toml")
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--scenario", scenario, "--time-scale", SCALE], tmp_path / "acquirer.log")
        acquirer.start().wait_event("acquirer_ready")
        terminal = make("terminal", ["terminal", scenario, "--transport", "tcp", "--connect", url, "--tid",
                                     "POS00001", "--policy", "query-then-reversal", "--journal", str(journal),
                                     "--time-scale", SCALE], tmp_path / "terminal.log")
        code, out = terminal.start().finish(timeout=120)
        assert code == 0, terminal.tail()
        summary = json.loads(out)
        assert summary["transactions"] == 1 and summary["failed"] == 1 and summary["quiescent"]
        # the gateway woke for the customer after the cancel closed the order: the confirmation was refused
        acquirer.wait_event("wallet_confirm_refused", timeout=60, state="CLOSED")
        assert acquirer.logged("wallet_trade_closed")
        assert not acquirer.logged("wallet_charged")
        assert acquirer.stop() == 0

    code, verdict, err = check(journal, ledger)
    assert code == 0, err
    assert verdict["settled"] is True
    for key in ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds"):
        assert verdict[key] == 0, key
    assert verdict["customer_loss"] == verdict["merchant_loss"] == "0.00"
    assert query(ledger, "SELECT state FROM wallet_trades") == [("CLOSED",)]
    assert query(journal, "SELECT COUNT(*) FROM wallet_journal") == [(1,)]


def test_without_recovery_the_split_run_shows_the_wallet_keeping_the_money(tmp_path: Path) -> None:
    """The same payment under ``none``: the checker of the split run finds the orphaned wallet charge,
    so the check above can fail."""
    url = f"tcp://127.0.0.1:{free_port()}"
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    scenario = str(SCENARIOS / "qr-user-paying-timeout.toml")
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--scenario", scenario, "--time-scale", SCALE], tmp_path / "acquirer.log")
        acquirer.start().wait_event("acquirer_ready")
        terminal = make("terminal", ["terminal", scenario, "--transport", "tcp", "--connect", url, "--tid",
                                     "POS00001", "--policy", "none", "--journal", str(journal), "--time-scale",
                                     SCALE], tmp_path / "terminal.log")
        code, _ = terminal.start().finish(timeout=120)
        assert code == 0, terminal.tail()
        acquirer.wait_event("wallet_charged", timeout=60)  # the customer confirms after the screen said failed
        assert acquirer.stop() == 0

    code, verdict, err = check(journal, ledger)
    assert code == 1, err
    assert verdict["orphaned_debits"] == 1 and verdict["customer_loss"] == "25.00"


VICTIM, ATTACKER, GHOST = "POS00002", "POS00001", "GHOST001"
QR_SALE = """
title = "One wallet sale of 88.00"
description = "The customer pays at once (no password)."
[terminal]
currency = "156"
[[transactions]]
at = 0
amount = "88.00"
card_type = "qr_wallet"
count = {count}
"""


class _RawClient:
    """A stranger's TCP connection to the acquirer: length-prefixed frames, no credentials."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("tcp://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)

    def ask(self, data: bytes) -> dict[str, Any]:
        """Send one frame; the answer (the acquirer answers a stranger on its own connection)."""
        self.sock.sendall(struct.pack(">H", len(data)) + data)
        head = self._read(2)
        return dict(json.loads(self._read(struct.unpack(">H", head)[0])))

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "the acquirer closed the connection"
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()


def _wallet_sale(make: Any, tmp_path: Path, url: str, key_file: Path, journal: Path, txn: int) -> str:
    """The victim's terminal process sells its ``txn``-th 88.00 by wallet (resuming its journal); the
    order number (the sale must be approved)."""
    scenario = tmp_path / f"qr-sales-{txn}.toml"
    scenario.write_text(QR_SALE.format(count=txn), encoding="utf-8")
    terminal = make(f"terminal-{txn}", ["terminal", str(scenario), "--transport", "tcp", "--connect", url, "--tid",
                                        VICTIM, "--policy", "reversal", "--journal", str(journal), "--keys",
                                        str(key_file), "--time-scale", SCALE], tmp_path / f"terminal-{txn}.log")
    code, out = terminal.start().finish(timeout=120)
    assert code == 0, terminal.tail()
    assert json.loads(out)["approved"] == txn, out  # the journal's sales so far, all approved
    [(order, status)] = query(journal, "SELECT out_trade_no, status FROM wallet_journal WHERE txn_id = ?", txn)
    assert status == "approved"
    return str(order)


def test_wallet_attacks_on_a_secured_acquirer_over_tcp_move_nothing(tmp_path: Path) -> None:
    """The issue's attacks from a raw TCP client against ``possim acquirer --keys``: (a) cancel, refund
    and query the victim's paid 88.00 order, (b) pre-cancel its next order by every number a stranger
    could guess, (c) charge 999.00 for a terminal without a key. All refused, 0.00 moved; the
    victim's next sale is approved."""
    key_file, ledger, journal = tmp_path / "keys.json", tmp_path / "ledger.db", tmp_path / "journal.db"
    made = subprocess.run([*POSSIM, "keys", "--out", str(key_file), "--terminal", ATTACKER, "--terminal", VICTIM],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    ring = keys.load(key_file)
    url = f"tcp://127.0.0.1:{free_port()}"
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--keys", str(key_file)], tmp_path / "acquirer.log")
        acquirer.start().wait_event("acquirer_ready")
        paid = _wallet_sale(make, tmp_path, url, key_file, journal, 1)
        day = paid[:8]
        stranger = _RawClient(url)
        try:
            answers = []
            for kind, amount in (("cancel", None), ("refund", 8800), ("query", None)):  # (a)
                for key in (None, ring.mac_key(ATTACKER)):
                    msg = W.WalletRequest(kind=kind, tid=VICTIM, out_trade_no=paid,  # type: ignore[arg-type]
                                          request_id="x-1", amount=amount)
                    answers.append(stranger.ask(W.encode(msg, key)))
            guesses = [f"{day}{VICTIM}00000002", f"{day}{VICTIM}000002"]
            for guess in guesses:  # (b): the old format's next numbers, the new one's readable prefix
                msg = W.WalletRequest(kind="cancel", tid=VICTIM, out_trade_no=guess, request_id="x-2")
                answers.append(stranger.ask(W.encode(msg)))
            for key in (None, ring.mac_key(ATTACKER)):  # (c)
                msg = W.WalletRequest(kind="pay", tid=GHOST, out_trade_no=f"{day}{GHOST}000001", request_id="x-3",
                                      auth_code="280000000000000009", amount=99900)
                answers.append(stranger.ask(W.encode(msg, key)))
            # the attacker's own account and key, naming the victim's order number: not its order
            own = W.WalletRequest(kind="cancel", tid=ATTACKER, out_trade_no=paid, request_id="x-4")
            not_yours = stranger.ask(W.encode(own, ring.mac_key(ATTACKER)))
        finally:
            stranger.close()
        assert [(a["code"], a["sub_code"]) for a in answers] == (
            [("40002", W.INVALID_SIGNATURE)] * 8 + [("40002", W.UNKNOWN_TERMINAL)] * 2)
        assert not any("sign" in a for a in answers)
        assert (not_yours["code"], not_yours["sub_code"], "sign" in not_yours) == ("40004", W.TRADE_NOT_EXIST, True)
        later = _wallet_sale(make, tmp_path, url, key_file, journal, 2)  # the same terminal, resumed
        assert later not in guesses and later[:22] == f"{day}{VICTIM}000002"
        assert acquirer.stop() == 0
    assert sum(1 for e in acquirer.events() if e.get("event") == "security_violation") == 10

    entries = query(ledger, "SELECT tid, out_trade_no, kind, amount FROM wallet_entries ORDER BY id")
    assert entries == [(VICTIM, paid, "charge", 8800), (VICTIM, later, "charge", 8800)]  # no refund, no 999.00
    assert query(ledger, "SELECT tid, state FROM wallet_trades ORDER BY rowid") == [(VICTIM, "SUCCESS")] * 2
    code, verdict, err = check(journal, ledger)
    assert code == 0, (verdict, err)
    assert (verdict["approved"], verdict["customer_loss"], verdict["merchant_loss"]) == (2, "0.00", "0.00")


@pytest.mark.asyncio
async def test_an_mqtt_account_on_its_own_topic_cannot_touch_another_terminals_wallet_orders(tmp_path: Path) -> None:
    """A real terminal account (the attacker's) publishing on its own request topic, behind the broker's
    ACL: naming the victim is dropped (the topic vouches for the attacker), naming itself reaches only
    its own orders. The victim's paid order keeps its money and its next sale is approved."""
    key_file, ledger, journal = tmp_path / "keys.json", tmp_path / "ledger.db", tmp_path / "journal.db"
    made = await procs.run("keys", "--out", str(key_file), "--terminal", ATTACKER, "--terminal", VICTIM)
    assert made.returncode == 0, made.stderr
    ring = keys.load(key_file)
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    sales = []
    for count in (1, 2):
        sales.append(tmp_path / f"qr-sales-{count}.toml")
        sales[-1].write_text(QR_SALE.format(count=count), encoding="utf-8")
    terminal = ("--broker", url, "--tid", VICTIM, "--policy", "reversal", "--journal", str(journal), "--keys",
                str(key_file), "--time-scale", SCALE)
    async with procs.running("broker", "--port", str(port), "--state-dir", str(tmp_path / "b"), "--keys",
                                 str(key_file)) as broker:
        await broker.wait_for_line(lambda line: line.startswith("mosquitto listening on"), "the broker's banner")
        async with procs.running("acquirer", "--broker", url, "--ledger", str(ledger), "--keys",
                                     str(key_file)) as acquirer:
            await acquirer.ready()
            first = await procs.run("terminal", str(sales[0]), *terminal)
            assert first.returncode == 0 and json.loads(first.stdout)["approved"] == 1, first.stderr
            [(paid,)] = query(journal, "SELECT out_trade_no FROM wallet_journal")
            publish = _attacker(port, ring.accounts()[ATTACKER])
            own_key = ring.mac_key(ATTACKER)
            for kind, amount in (("cancel", None), ("refund", 8800)):  # (a), signed with its own real key
                msg = W.WalletRequest(kind=kind, tid=VICTIM, out_trade_no=paid,  # type: ignore[arg-type]
                                      request_id="x-1", amount=amount)
                await publish(requests_topic(ATTACKER), W.encode(msg, own_key))
            ghost = W.WalletRequest(kind="pay", tid=GHOST, out_trade_no="GHOST-ORDER", request_id="x-2",
                                    auth_code="280000000000000009", amount=99900)
            await publish(requests_topic(ATTACKER), W.encode(ghost, own_key))  # (c)
            # the marker, after them on the same topic: its own id and key, the victim's order number
            mine = W.WalletRequest(kind="cancel", tid=ATTACKER, out_trade_no=paid, request_id="x-3")
            await publish(requests_topic(ATTACKER), W.encode(mine, own_key))
            await acquirer.wait_for_line(procs.is_event("wallet_answered", tid=ATTACKER, code="40004"),
                                         "the marker's refusal")
            mismatches = [x for x in acquirer.lines if procs.is_event("identity_mismatch", sender=ATTACKER)(x)]
            assert len(mismatches) == 3, acquirer.log
            second = await procs.run("terminal", str(sales[1]), *terminal)  # the victim resumes: its next sale
            assert second.returncode == 0 and json.loads(second.stdout)["approved"] == 2, second.stderr
            assert await acquirer.stop(signal.SIGTERM) == 0, acquirer.log
        await broker.stop(signal.SIGTERM)
    [(later,)] = query(journal, "SELECT out_trade_no FROM wallet_journal WHERE txn_id = 2")
    entries = query(ledger, "SELECT tid, out_trade_no, kind, amount FROM wallet_entries ORDER BY id")
    assert entries == [(VICTIM, paid, "charge", 8800), (VICTIM, later, "charge", 8800)]
    assert query(ledger, "SELECT COUNT(*) FROM wallet_trades WHERE tid <> ?", VICTIM) == [(0,)]
    code, verdict, err = check(journal, ledger)
    assert code == 0 and verdict["approved"] == 2, (verdict, err)
