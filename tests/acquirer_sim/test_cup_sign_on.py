"""CUP sign-on key exchange, on the bytes: the 0810 hands out working keys in field 62 (PIK and MAK,
each encrypted under the terminal master key and followed by its check value) and the batch number
in 60.2; the terminal checks the check values, MACs later messages under the MAK, and takes the
batch number; the host checks those MACs with the keys it handed out to that terminal.

The check values and the decryption are computed here with ``cryptography`` itself, not with the
code under test: the test says what CUP terminals compute, independently of possim.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from possim.acquirer_sim.host import AcquirerHost, AwaitIssuer, Reply
from possim.pos_sim.actions import CloseBatch, Send, WriteJournal
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.terminal import Terminal
from possim.processes.broker import free_port
from possim.processes.keys import create_key_file
from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message
from tests.helpers import new_host, purchase, replies, sends
from tests.procs import query, run, running

TID = "POS00001"
#: The terminal master key from the key file (two-key 3DES, as a CUP TMK).
TMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
MASTER = MacKey("cup-ecb", TMK)


def _des3(key: bytes) -> Cipher[modes.ECB]:
    """Two-key 3DES (K1 K2 K1) in ECB, as CUP terminals decrypt working keys."""
    return Cipher(TripleDES(key + key[:8]), modes.ECB())


def _decrypt(key: bytes, block: bytes) -> bytes:
    d = _des3(key).decryptor()
    return d.update(block) + d.finalize()


def _check_value(key: bytes) -> bytes:
    e = _des3(key).encryptor()
    return (e.update(bytes(8)) + e.finalize())[:4]


def _pair(life: str = "000001") -> tuple[Terminal, AcquirerHost]:
    term = Terminal(TerminalConfig(profile="cup", tid=TID, life=life), MASTER)
    host = new_host(profile="cup")
    host.keys = {TID: MASTER}
    return term, host


def _reply(actions: Sequence[object]) -> Reply:
    [reply] = replies(actions)
    return reply


def _sign_on(term: Terminal, host: AcquirerHost) -> tuple[bytes, bytes]:
    """The terminal's 0800 bytes and the host's 0810 bytes."""
    [request] = sends(term.start(0.0))
    return request.data, _reply(host.receive(0.1, request.data)).data


def _keys_of(answer: bytes) -> tuple[bytes, bytes]:
    """(PIK, MAK) from field 62 of the 0810 bytes, each checked against its check value here."""
    field62 = bytes.fromhex(cup.decode_fields(answer)["62"])
    assert len(field62) == 40  # PIK 16 + check value 4, MAK 16 + check value 4
    keys = []
    for at in (0, 20):
        clear = _decrypt(TMK, field62[at:at + 16])
        assert field62[at + 16:at + 20] == _check_value(clear)
        keys.append(clear)
    assert keys[0] != keys[1]
    return keys[0], keys[1]


def _sell(term: Terminal, host: AcquirerHost, now: float = 1.0) -> tuple[Send, list[object]]:
    [sale] = sends(term.request_payment(now, purchase()))
    actions = host.receive(now + 0.1, sale.data)
    waits = [a for a in actions if isinstance(a, AwaitIssuer)]
    if waits:
        actions = host.issuer_answered(now + 0.2, waits[0].key)
    return sale, list(actions)


def test_the_0810_hands_out_working_keys_under_the_master_key_and_the_batch_number() -> None:
    term, host = _pair()
    request, answer = _sign_on(term, host)
    assert cup.decode_fields(request)["60"][8:11] == "001"  # 60.3: sign-on
    assert MASTER.verify(answer[:-8], answer[-8:])  # the 0810 itself is under the master key
    pik, mak = _keys_of(answer)
    assert cup.decode_fields(answer)["60"][2:8] == "000001"  # 60.2: the batch to use
    actions = term.receive(0.2, answer)
    installed = [a for a in actions if isinstance(a, ev.WorkingKeysInstalled)]
    assert installed == [ev.WorkingKeysInstalled(TID, "000001", _check_value(mak).hex().upper(), "000001")]
    assert term.mac_key == MacKey("cup-ecb", mak) and pik not in (TMK, mak)


def test_later_messages_carry_the_mak_and_the_host_checks_them_with_it() -> None:
    term, host = _pair()
    _, answer = _sign_on(term, host)
    _, mak = _keys_of(answer)
    term.receive(0.2, answer)
    sale, actions = _sell(term, host)
    working = MacKey("cup-ecb", mak)
    assert working.verify(sale.data[:-8], sale.data[-8:]) and not MASTER.verify(sale.data[:-8], sale.data[-8:])
    reply = _reply(actions)
    assert codec.decode(reply.data, working).response_code == "00"  # answered under the MAK too
    assert any(isinstance(a, ev.LedgerDebit) for a in actions)
    outcome = term.receive(1.5, reply.data)
    assert term.records[1].status == "approved", outcome


def test_a_sale_under_the_master_key_after_the_sign_on_is_refused_as_a_security_violation() -> None:
    term, host = _pair()
    _, answer = _sign_on(term, host)
    term.receive(0.2, answer)
    forged = Message(mti="0200", stan="000009", transmission="0101000009", tid=TID, mid=term.config.mid,
                     pan="4000000000000002", processing_code="000000", amount=100, currency="156", life="000001",
                     batch="000001")
    actions = host.receive(1.0, codec.encode(forged, MASTER, "cup"))
    assert [a for a in actions if isinstance(a, ev.SecurityViolation)]
    assert codec.decode(_reply(actions).data).response_code == "63"
    assert not host.ledger.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]


def test_a_tampered_check_value_fails_the_sign_on_and_nothing_is_sold() -> None:
    term, host = _pair()
    _, answer = _sign_on(term, host)
    fields = cup.decode_fields(answer)
    raw = bytearray(bytes.fromhex(fields["62"]))
    raw[39] ^= 0x01  # the MAK's check value
    fields["62"] = raw.hex().upper()
    fields["64"] = "00" * 8
    body = cup.encode_fields(fields)[:-8]
    tampered = body + MASTER.compute(body)  # a genuine MAC: only the check value is wrong
    actions = term.receive(0.2, tampered)
    failed = [a for a in actions if isinstance(a, ev.SignOnFailed)]
    assert len(failed) == 1 and "MAK does not match its check value" in failed[0].reason
    assert not [a for a in actions if isinstance(a, ev.TerminalSignedOn | ev.WorkingKeysInstalled)]
    assert term.halted is not None and term.mac_key is MASTER
    later = term.request_payment(1.0, purchase())
    assert not sends(later) and not [a for a in later if isinstance(a, WriteJournal)] and not term.records


def test_the_terminal_takes_the_batch_number_the_host_hands_out() -> None:
    term, host = _pair()
    earlier = Message(mti="0200", stan="000001", transmission="0101000001", tid=TID, mid=term.config.mid,
                      pan="4000000000000002", processing_code="000000", amount=100, currency="156", batch="000003")
    [wait] = [a for a in host.receive(0.0, codec.encode(earlier, MASTER, "cup")) if isinstance(a, AwaitIssuer)]
    host.issuer_answered(0.0, wait.key)
    assert host.ledger.close_batch(0.0, TID, "000003") == 1  # the host closed batch 3 of this terminal before
    _, answer = _sign_on(term, host)
    assert cup.decode_fields(answer)["60"][2:8] == "000004"
    actions = term.receive(0.2, answer)
    assert CloseBatch(4, 0) in actions  # journaled: a restarted terminal opens batch 4 too
    sale, _ = _sell(term, host)
    assert cup.decode_fields(sale.data)["60"][2:8] == "000004"


def test_a_restarted_host_checks_the_mac_of_the_life_that_signed_on() -> None:
    term, host = _pair()
    _, answer = _sign_on(term, host)
    term.receive(0.2, answer)
    restarted = AcquirerHost(host.config, host.ledger, host.rng, {TID: MASTER})
    _, actions = _sell(term, restarted)
    assert codec.decode(_reply(actions).data, term.mac_key).response_code == "00"


#: One sale at a China UnionPay terminal process.
CUP_SALE = """
title = "one CUP sale"
description = "A China UnionPay terminal signs on and sells once."
policy = "reversal"
[terminal]
profile = "cup"
[[transactions]]
kind = "purchase"
amount = "88.00"
"""


@pytest.mark.asyncio
async def test_terminal_and_acquirer_processes_exchange_working_keys_over_tcp(tmp_path: Path) -> None:
    """Real processes, a real key file: the terminal installs the MAK the acquirer handed out and its
    sale, MACed under it, is approved and debited."""
    toml, ledger, keys = tmp_path / "cup.toml", tmp_path / "ledger.db", tmp_path / "keys.json"
    toml.write_text(CUP_SALE, encoding="utf-8")
    create_key_file(keys, ["POS00077"])
    url = f"tcp://127.0.0.1:{free_port()}"
    async with running("acquirer", "--transport", "tcp", "--profile", "cup", "--listen", url, "--ledger",
                       str(ledger), "--keys", str(keys)) as acquirer:
        await acquirer.ready("acquirer_ready")
        day = await run("terminal", str(toml), "--transport", "tcp", "--connect", url, "--tid", "POS00077",
                        "--journal", str(tmp_path / "journal.db"), "--keys", str(keys), "--profile", "cup",
                        "--trace", str(tmp_path / "trace.jsonl"), "--no-log", "--time-scale", "0.05")
        assert await acquirer.stop() == 0
    assert day.returncode == 0, day.stderr
    assert json.loads(day.stdout)["approved"] == 1
    events = [json.loads(line)["event"] for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert events.count("working_keys_installed") == 1
    assert query(ledger, "SELECT kind, amount FROM entries") == [("debit", 8800)]
