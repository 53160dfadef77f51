"""Key files: fresh keys are private (0600) and distinct, scenario keys repeat, bad files say why in one line."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from possim.processes import keys
from possim.processes.keys import KeyFileError
from possim.protocol import codec
from possim.protocol.mac import ALGORITHMS
from possim.protocol.messages import Message

TIDS = ["POS00001", "POS00002"]


def test_created_file_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = keys.create_key_file(path, TIDS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.permission_warning(path) is None
    assert keys.load(path) == ring
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_generated_keys_and_passwords_are_all_different() -> None:
    a, b = keys.generate(TIDS), keys.generate(TIDS)
    secrets = [t.mac_key.secret for r in (a, b) for t in r.terminals.values()]
    passwords = [p for r in (a, b) for p in r.accounts().values()]
    assert len(set(secrets)) == 4 and all(len(s) == 16 for s in secrets)
    assert len(set(passwords)) == 6


def test_accounts_are_the_host_and_each_terminal() -> None:
    ring = keys.generate(TIDS)
    assert sorted(ring.accounts()) == ["POS00001", "POS00002", "possim-host"]


def test_an_existing_file_is_not_replaced_without_force(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = keys.create_key_file(path, TIDS)
    with pytest.raises(KeyFileError, match="already exists"):
        keys.create_key_file(path, TIDS)
    assert keys.load(path) == first
    second = keys.create_key_file(path, TIDS, force=True)
    assert keys.load(path) == second != first


def test_derived_keys_depend_only_on_the_seed() -> None:
    assert keys.derive(7, TIDS) == keys.derive(7, TIDS)
    assert keys.derive(7, TIDS).mac_key("POS00001") != keys.derive(8, TIDS).mac_key("POS00001")
    assert keys.derive(7, TIDS).mac_key("POS00001") != keys.derive(7, TIDS).mac_key("POS00002")


def test_derived_keys_give_byte_identical_frames() -> None:
    msg = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001", amount=2500)
    frames = {codec.encode(msg, keys.derive(42, TIDS).mac_key("POS00001")) for _ in range(2)}
    assert len(frames) == 1


def test_x919_rings_work_with_the_codec() -> None:
    ring = keys.generate(TIDS, algorithm="x9.19")
    msg = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00002", amount=2500)
    assert codec.decode(codec.encode(msg, ring.mac_key("POS00002")), ring.mac_keys()) == msg


def test_summary_shows_no_secret() -> None:
    ring = keys.generate(TIDS)
    text = "\n".join(ring.summary())
    assert "POS00001: key check value" in text
    assert all(t.mac_key.secret.hex() not in text.lower() and t.password not in text for t in ring.terminals.values())


def test_loose_permissions_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys.create_key_file(path, TIDS)
    path.chmod(0o644)
    assert keys.permission_warning(path) == f"{path}: readable by others (mode 0644); chmod 600 it"


def _valid_doc() -> dict[str, object]:
    return json.loads(keys.generate(TIDS).to_json())  # type: ignore[no-any-return]


def _edit(doc: dict[str, object], path: str, value: object) -> dict[str, object]:
    *parents, last = path.split(".")
    node: dict[str, object] = doc
    for p in parents:
        node = node[p]  # type: ignore[assignment]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("format", "possim-keys/9", 'not a possim key file (expected "format": "possim-keys/1")'),
    ("algorithm", "des", f"unknown MAC algorithm 'des' (known: {', '.join(sorted(ALGORITHMS))})"),
    ("host", None, 'missing or invalid "host" (an object)'),
    ("host.password", "", 'missing or invalid "host.password" (a non-empty string without spaces)'),
    ("host.password", "a\nb", 'missing or invalid "host.password"'),
    ("terminals.POS00001.mac_key", "00ff", "terminals.POS00001.mac_key: aes-cmac key must be 16/24/32 bytes, not 2"),
    ("terminals.POS00001.mac_key", "zz" * 16, "terminals.POS00001.mac_key: non-hexadecimal number"),
    ("terminals.POS00001.password", None, 'missing or invalid "terminals.POS00001.password"'),
    ("terminals.POS00001", "x", "terminals.POS00001 must be an object"),
    ("terminals.POS/0001", {"mac_key": "00" * 16, "password": "p"}, "terminal id 'POS/0001' must be 8 letters"),
    ("terminals", {}, "no terminal ids given"),
])
def test_bad_files_fail_with_one_line(tmp_path: Path, path: str, value: object, reason: str) -> None:
    file = tmp_path / "keys.json"
    file.write_text(json.dumps(_edit(_valid_doc(), path, value)))
    with pytest.raises(KeyFileError) as err:
        keys.load(file)
    assert str(err.value).startswith(f"{file}: {reason}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ("[]", "not a possim key file"),
])
def test_unreadable_text_fails_with_one_line(tmp_path: Path, text: str, reason: str) -> None:
    file = tmp_path / "keys.json"
    file.write_text(text)
    with pytest.raises(KeyFileError, match=f"^{file}: {reason}"):
        keys.load(file)


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file \\(create one with: possim keys\\)"):
        keys.load(tmp_path / "nope.json")


@pytest.mark.parametrize(("tids", "reason"), [
    ([], "no terminal ids given"),
    (["POS1"], "terminal id 'POS1' must be 8"),
    (["POS0000+"], "terminal id 'POS0000\\+' must be 8"),
    (["POS00001", "POS00001"], "terminal ids must be unique"),
])
def test_bad_terminal_ids_are_refused(tids: list[str], reason: str) -> None:
    with pytest.raises(KeyFileError, match=reason):
        keys.generate(tids)


def test_unknown_terminal_key_is_one_line() -> None:
    with pytest.raises(KeyFileError, match="no key for terminal 'POS00009' \\(known: POS00001, POS00002\\)"):
        keys.generate(TIDS).mac_key("POS00009")


def test_default_tids() -> None:
    assert keys.default_tids(3) == ["POS00001", "POS00002", "POS00003"]


def test_create_or_load_creates_a_private_file_once_and_then_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "possim-keys.json"
    ring, created = keys.create_or_load(path, ["POS00001", "POS00002"])
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created = keys.create_or_load(path, ["POS00003"])
    assert not created and again == ring and sorted(again.terminals) == ["POS00001", "POS00002"]
    assert [p.name for p in tmp_path.iterdir()] == ["possim-keys.json"]  # nothing left aside


def test_add_terminals_keeps_every_key_and_adds_fresh_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = keys.create_key_file(path, ["POS00001"])
    added = keys.add_terminals(path, ["POS00001", "SHOP0001"])
    assert added.terminals["POS00001"] == ring.terminals["POS00001"]
    assert (added.host_username, added.host_password) == (ring.host_username, ring.host_password)
    assert keys.load(path) == added and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert added.terminals["SHOP0001"].mac_key != ring.terminals["POS00001"].mac_key


def test_host_shards_log_in_with_the_hosts_password() -> None:
    ring = keys.derive(1, ["POS00001"])
    assert keys.host_account(ring.host_username) == ring.host_username
    assert ring.password_of(keys.host_account(ring.host_username, 3, 4)) == ring.host_password
    assert ring.password_of("POS00001") == ring.terminals["POS00001"].password
    assert ring.password_of("POS00002") is None
