"""Field checks: every valid message passes, every kind of damage is named in one line."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import iso8583
import pytest
from hypothesis import given
from hypothesis import strategies as st

from possim.pos_sim.terminal import RESPONSE_TIMER
from possim.protocol import codec, cup
from possim.protocol import mti as M
from possim.protocol.cup import BatchTotals
from possim.protocol.messages import Message, OriginalData
from possim.protocol.validation import (
    ALLOWED_CODES,
    CURRENCIES,
    PROCESSING_CODES,
    REQUIRED,
    _real_date_time_by_datetime,
    identify,
    luhn_ok,
    real_date_time,
    validate,
)
from tests.conftest import ROOT, SCENARIOS
from tests.helpers import new_host, new_terminal, purchase, replies, sends

digits = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


pans = st.integers(11, 18).flatmap(digits).map(_with_check_digit)
times = st.builds("{:02d}{:02d}{:02d}".format, st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
dates = st.dates().map(lambda d: d.strftime("%m%d"))
date_times = st.tuples(dates, times).map("".join)
originals = st.builds(OriginalData, mti=st.sampled_from(["0100", "0200"]), stan=digits(6), transmission=date_times)


@st.composite
def valid_messages(draw: st.DrawFn) -> Message:
    """Any MTI with exactly what ``validate`` requires plus a random selection of optional fields."""
    mti = draw(st.sampled_from(sorted(M.KNOWN)))
    codes = sorted(ALLOWED_CODES.get(mti, {"000000", "030000", "970000"}))
    optional: dict[str, st.SearchStrategy[Any]] = {
        "pan": pans, "processing_code": st.sampled_from(codes), "amount": st.integers(1, 10**12 - 1),
        "currency": st.sampled_from(sorted(CURRENCIES)), "original": originals, "local_time": times,
        "local_date": dates, "response_code": st.sampled_from(["00", "05", "30", "63", "A0"]),
        "mid": st.just("MERCHANT0000001"), "batch_totals": st.just(BatchTotals(2500, 1).to_field48()),
        "life": digits(6),
    }
    fields = {a: draw(s) for a, s in optional.items() if a in REQUIRED[mti] or draw(st.booleans())}
    return Message(mti=mti, stan=draw(digits(6)), transmission=draw(date_times), tid=draw(st.sampled_from(
        ["POS00001", "POS00002", "T 000042"])), **fields)


@given(valid_messages())
def test_valid_messages_pass_and_survive_the_wire(msg: Message) -> None:
    assert validate(msg) is None
    assert validate(codec.decode(codec.encode(msg))) is None


def _without_field_7(msg: Message, dialect: str) -> bytes:
    """``msg``'s bytes in ``dialect`` with field 7 taken out: what a tool that never sends it puts on the wire."""
    if dialect == "cup":  # CUP has no field 7: 13 and 12 carry the date and time, so they go
        fields = cup.decode_fields(cup.encode(replace(msg, local_time=None, local_date=None)))
        del fields["12"], fields["13"]
        return cup.encode_fields(fields)
    doc, _ = iso8583.decode(bytearray(codec.encode(msg)), codec.SPEC)
    del doc["7"], doc["p"]
    doc.pop("1", None)
    return bytes(iso8583.encode(doc, codec.SPEC)[0])


@given(valid_messages(), st.sampled_from(["iso", "cup"]))
def test_a_request_without_field_7_is_still_identified_by_what_reads(msg: Message, dialect: str) -> None:
    data = _without_field_7(msg, dialect)
    with pytest.raises(codec.ProtocolError):
        codec.decode(data)
    got = identify(data, "1207093000")
    if msg.mti not in M.REQUESTS:
        assert got is None  # an answer is nobody's request
        return
    assert got is not None
    assert (got.mti, got.tid, got.stan, got.transmission) == (msg.mti, msg.tid, msg.stan, "1207093000")
    assert (got.pan, got.amount, got.processing_code, got.original) == (msg.pan, msg.amount, msg.processing_code,
                                                                        msg.original)
    assert codec.decode(codec.encode(got.response("30"), dialect=dialect)).response_code == "30"


def test_frames_that_name_nobody_are_not_identified() -> None:
    good = codec.encode(Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001", amount=1))
    assert identify(b"", "1125100000") is None
    assert identify(good[:-3], "1125100000") is None  # truncated: the fields do not split
    assert identify(good.replace(b"POS00001", b"POS\x010001"), "1125100000") is None  # field 41 unreadable
    assert identify(good, "1125100000") is not None


#: (mutation name, field to set, value, expected start of the one-line reason)
MUTATIONS: list[tuple[str, str, object, str]] = [
    ("pan letters", "pan", "40000000000000AB", "field 2: card number must be 12 to 19 digits"),
    ("pan short", "pan", "42424242424", "field 2: card number must be 12 to 19 digits"),
    ("pan long", "pan", "4" * 20, "field 2: card number must be 12 to 19 digits"),
    ("stan letters", "stan", "00004A", "field 11: '00004A' is not 6 digits"),
    ("stan short", "stan", "42", "field 11: '42' is not 6 digits"),
    ("processing code letters", "processing_code", "00000X", "field 3: '00000X' is not 6 digits"),
    ("processing code unknown", "processing_code", "123456", "field 3: unknown processing code '123456'"),
    ("amount zero", "amount", 0, "field 4: amount 0 must be more than 0"),
    ("amount negative", "amount", -1, "field 4: amount -1 must be more than 0"),
    ("amount too big", "amount", 10**12, "field 4: amount 1000000000000 does not fit in 12 digits"),
    ("currency unknown", "currency", "999", "field 49: unknown currency '999'"),
    ("currency letters", "currency", "EUR", "field 49: 'EUR' is not 3 digits"),
    ("field 7 all nines", "transmission", "9999999999", "field 7: '9999999999' is not a real date and time"),
    ("field 7 month 13", "transmission", "1301120000", "field 7: '1301120000' is not a real date and time"),
    ("field 7 30 February", "transmission", "0230120000", "field 7: '0230120000' is not a real date and time"),
    ("field 7 31 April", "transmission", "0431120000", "field 7: '0431120000' is not a real date and time"),
    ("field 7 hour 24", "transmission", "1125240000", "field 7: '1125240000' is not a real date and time"),
    ("field 7 second 60", "transmission", "1125100060", "field 7: '1125100060' is not a real date and time"),
    ("field 7 short", "transmission", "112510", "field 7: '112510' is not a real date and time"),
    ("field 12 minute 60", "local_time", "106000", "field 12: '106000' is not a real time"),
    ("field 13 day 0", "local_date", "1100", "field 13: '1100' is not a real date"),
    ("field 41 short", "tid", "POS1", "field 41: 'POS1' is not 8 printable characters"),
    ("field 90 bad MTI", "original", OriginalData("0800", "000001", "1125100000"),
     "field 90: original MTI '0800' is not an authorization or purchase"),
    ("field 90 bad time", "original", OriginalData("0200", "000001", "1199100000"),
     "field 90: original transmission '1199100000' is not a real date and time"),
    ("field 90 bad STAN", "original", OriginalData("0200", "1", "1125100000"),
     "field 90: original STAN '1' is not 6 digits"),
]


@pytest.mark.parametrize(("field", "value", "reason"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
@given(msg=valid_messages())
def test_each_mutation_fails_with_its_reason(msg: Message, field: str, value: object, reason: str) -> None:
    damaged = replace(msg, **{field: value})  # type: ignore[arg-type]
    if getattr(msg, field) is None and field not in ("stan", "transmission", "tid"):
        damaged = replace(damaged, mti=_needing(field))  # make sure the mutated field is checked
        damaged = _complete(damaged, field)
    problem = validate(damaged)
    assert problem is not None and problem.startswith(reason), problem
    assert "\n" not in problem


@given(msg=valid_messages(), data=st.data())
def test_a_missing_required_field_is_named(msg: Message, data: st.DataObject) -> None:
    attr = data.draw(st.sampled_from(["transmission", "stan", "tid", *REQUIRED[msg.mti]]))
    problem = validate(replace(msg, **{attr: None}))  # type: ignore[arg-type]
    assert problem is not None
    assert re.fullmatch(rf"MTI {msg.mti}: missing field \d+ \({attr.replace('_', ' ')}\)", problem)


@given(msg=valid_messages(), digit=st.integers(1, 9))
def test_a_changed_card_digit_fails_luhn(msg: Message, digit: int) -> None:
    msg = _complete(replace(msg, mti=M.PURCHASE, processing_code="000000"), keep="")
    assert msg.pan is not None
    pan = msg.pan[:-1] + str((int(msg.pan[-1]) + digit) % 10)
    assert validate(replace(msg, pan=pan)) == "field 2: card number fails the Luhn check"


@pytest.mark.parametrize(("mti", "code"), [(M.PURCHASE, "970000"), (M.PURCHASE, "030000"),
                                           (M.STATUS_QUERY, "000000"), (M.REVERSAL, "970000")])
def test_processing_code_must_fit_the_message(mti: str, code: str) -> None:
    msg = Message(mti=mti, stan="000001", transmission="1125100000", tid="POS00001", pan="4000000000000002",
                  processing_code=code, amount=2500, currency="978",
                  original=OriginalData("0200", "000001", "1125100000"))
    assert validate(msg) == f"field 3: processing code {code} ({_name(code)}) is not allowed in MTI {mti}"


def test_unknown_mti() -> None:
    assert validate(Message(mti="0900", stan="000001", transmission="1125100000", tid="POS00001")) == \
        "MTI '0900' is not a possim message"


@pytest.mark.parametrize(("value", "layout", "ok"), [
    ("0229235959", "MMDDhhmmss", True), ("1231000000", "MMDDhhmmss", True), ("0000000000", "MMDDhhmmss", False),
    ("235959", "hhmmss", True), ("240000", "hhmmss", False), ("0229", "MMDD", True), ("0230", "MMDD", False),
    ("\uff11\uff1125", "MMDD", False),  # full-width digits are digits to str.isdigit, not to ISO 8583
])
def test_real_date_time(value: str, layout: str, ok: bool) -> None:
    assert real_date_time(value, layout) is ok


@pytest.mark.parametrize("layout", ["MMDDhhmmss", "hhmmss", "MMDD"])
@given(data=st.data())
def test_real_date_time_is_what_datetime_accepts(layout: str, data: st.DataObject) -> None:
    """The range checks per layout accept exactly the values ``datetime`` accepts in a leap year."""
    pairs = [data.draw(st.integers(0, 99) | st.sampled_from([0, 1, 2, 4, 12, 13, 23, 24, 28, 29, 30, 31, 32, 59, 60]))
             for _ in range(len(layout) // 2)]
    value = "".join(f"{n:02d}" for n in pairs)
    assert real_date_time(value, layout) is _real_date_time_by_datetime(value, layout)


def test_every_month_and_day_is_judged_as_datetime_does() -> None:
    for value in (f"{n:04d}" for n in range(10_000)):
        assert real_date_time(value, "MMDD") is _real_date_time_by_datetime(value, "MMDD"), value
        assert real_date_time(value + "235959", "MMDDhhmmss") is _real_date_time_by_datetime(value, "MMDD"), value


@given(st.text("0123456789", max_size=20))
def test_luhn_is_the_textbook_sum(pan: str) -> None:
    total = 0
    for i, ch in enumerate(reversed(pan)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    assert luhn_ok(pan) is (bool(pan) and total % 10 == 0)


@pytest.mark.parametrize(("pan", "ok"), [("4000000000000002", True), ("4111111111111111", True),
                                         ("4111111111111112", False), ("79927398713", True), ("", False)])
def test_luhn(pan: str, ok: bool) -> None:
    assert luhn_ok(pan) is ok


def test_every_card_number_shipped_passes_luhn() -> None:
    """Card numbers in scenarios, the fuzzer's cards and the scenario default: all must be valid."""
    sources = [*sorted(SCENARIOS.rglob("*.toml")), ROOT / "pos_sim" / "testing.py", ROOT / "possim" / "scenario.py"]
    found = {(p.name, pan) for p in sources for pan in re.findall(r"(?<!\d)\d{12,19}(?!\d)", p.read_text())}
    assert found, "no card numbers found: the pattern is broken"
    assert [f for f in found if not luhn_ok(f[1])] == []


def test_what_the_terminal_and_host_send_passes() -> None:
    """Every message of a purchase that times out and is reversed, and the host's answers, is valid."""
    terminal, host = new_terminal("reversal"), new_host()
    out = sends(terminal.request_payment(0.0, purchase()))
    out += sends(terminal.timer_fired(31.0, RESPONSE_TIMER))
    assert [s.mti for s in out] == ["0200", "0400"]
    answers = [r.data for s in out for r in replies(host.receive(1.0, s.data))]
    assert len(answers) == 2
    for data in [s.data for s in out] + answers:
        assert validate(codec.decode(data)) is None


def _needing(field: str) -> str:
    """An MTI that requires ``field`` (so a mutation of an absent optional field is checked)."""
    return {"local_time": M.PURCHASE, "local_date": M.PURCHASE, "response_code": M.PURCHASE_RESPONSE}.get(
        field, M.REVERSAL)


def _complete(msg: Message, keep: str) -> Message:
    """Fill the fields ``msg.mti`` requires that are absent (leaving ``keep`` as it is) with valid values."""
    valid = {"pan": "4000000000000002", "processing_code": "000000", "amount": 2500, "currency": "978",
             "original": OriginalData("0200", "000001", "1125100000"), "response_code": "00"}
    fill = {a: v for a, v in valid.items() if a != keep and a in REQUIRED[msg.mti] and getattr(msg, a) is None}
    allowed = ALLOWED_CODES.get(msg.mti, {msg.processing_code})
    if msg.processing_code is not None and msg.processing_code not in allowed and keep != "processing_code":
        fill["processing_code"] = sorted(ALLOWED_CODES[msg.mti])[0]
    return replace(msg, **fill)  # type: ignore[arg-type]


def _name(code: str) -> str:
    return PROCESSING_CODES[code]


def test_date_and_time_checks_agree_with_datetime_for_every_value() -> None:
    """The text comparisons of ``real_date_time`` accept exactly what ``datetime`` does (year 2000,
    so 29 February is real): every MMDD and hhmmss, and MMDDhhmmss around every boundary."""
    from itertools import product

    from possim.protocol.validation import _real_date_time_by_datetime, real_date_time

    two = [f"{i:02d}" for i in range(100)]
    for layout, values in (("MMDD", product(two, two)), ("hhmmss", product(two, two, two)),
                           ("MMDDhhmmss", product(two[:14], two[:33], ("00", "23", "24", "99"), ("00", "59", "60"),
                                                  ("00", "59", "60", "99")))):
        for parts in values:
            value = "".join(parts)
            assert real_date_time(value, layout) == _real_date_time_by_datetime(value, layout), (value, layout)


class _Text(str):
    """A ``str`` of another type: the fast path leaves it to the checks."""


#: Values any field may be damaged with: absent, empty, of another type.
_ANY: list[object] = [None, "", 0, 1, True, 1.5, b"000001", _Text("000001")]
#: Near misses and good values for each field the checks read (non-ASCII digits, boundaries).
_NEAR: dict[str, list[object]] = {
    "stan": ["000001", "00000\u0661", "\uff10" * 6, "00004A", "42", "0000001"],
    "transmission": ["1125100000", "0229235959", "0230120000", "1125240000", "1125100060", "112510", "11251000000",
                     "\uff11125100000"],
    "tid": ["POS00001", "POS 0001", "POS\t0001", "POS\x7f0001", "POS0001", "POS000001", "POS0000\u00e9"],
    "pan": ["4000000000000002", "4000000000000003", "40000000000000AB", "42424242424", "4" * 20, "424242424242",
            "\u0664000000000000002", _Text("4000000000000002"), "4111111111111111"],
    "processing_code": ["000000", "030000", "970000", "123456", "00000X", "\uff10" * 6],
    "amount": [-1, 1, 2500, 10**12 - 1, 10**12, False],
    "local_time": ["235959", "240000", "106000", "23595", "\uff12\uff13" * 3],
    "local_date": ["0229", "0230", "1100", "1231", "1301", "\uff11\uff1125"],
    "currency": ["978", "999", "EUR", "97", "\u0669\u0667\u0668"],
    "life": ["000001", "00001", "00000A"],
    "response_code": ["00", "A0", "a0", "000"],
    "original": [OriginalData("0200", "000001", "1125100000"), OriginalData("0100", "000001", "0229235959"),
                 OriginalData("0800", "000001", "1125100000"), OriginalData("0200", "1", "1125100000"),
                 OriginalData("0200", "000001", "1199100000"), OriginalData(_Text("0200"), "000001", "1125100000"),
                 OriginalData("0200", _Text("000001"), 1125100000), "0200000001"],  # type: ignore[arg-type]
    "uploads": ["0001"], "batch_totals": [BatchTotals(2500, 1).to_field48()],
}
_DAMAGE = st.sampled_from(sorted(_NEAR)).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(_NEAR[f] + _ANY)))


def _checked_one_by_one(msg: Message) -> str | None:
    """``validate`` without its fast path: the checks of the module docstring, in order."""
    from possim.protocol.validation import _CHECKS

    if msg.mti not in M.KNOWN:
        return f"MTI {msg.mti!r} is not a possim message"
    return next((p for p in (check(msg) for check in _CHECKS) if p is not None), None)


def _full_request(mti: str) -> Message:
    """A valid ``mti`` request carrying every field the checks read."""
    code = sorted(ALLOWED_CODES.get(mti, {"000000"}))[0]
    return Message(mti=mti, stan="000001", transmission="1125100000", tid="POS00001", pan="4000000000000002",
                   processing_code=code, amount=2500, currency="978", local_time="100000", local_date="1125",
                   original=OriginalData("0200", "000001", "1125100000"), life="000001",
                   batch_totals=BatchTotals(2500, 1).to_field48())


def test_the_fast_path_answers_as_the_checks_for_each_damaged_field() -> None:
    """Every near miss and odd value in every field of every request: ``validate`` answers as the
    checks one by one do, and its fast path says fine only where they find nothing."""
    from possim.protocol.validation import _request_fine

    compared = 0
    for mti in sorted(M.REQUESTS):
        base = _full_request(mti)
        assert validate(base) is None and _request_fine(base), mti
        for field, values in _NEAR.items():
            for value in values + _ANY:
                damaged = replace(base, **{field: value})  # type: ignore[arg-type]
                try:
                    expected = _checked_one_by_one(damaged)
                except TypeError:
                    continue
                assert validate(damaged) == expected, (mti, field, value)
                assert not _request_fine(damaged) or expected is None, (mti, field, value)
                compared += 1
    assert compared > 1000


@given(msg=valid_messages(), damage=st.lists(_DAMAGE, min_size=1, max_size=2))
def test_the_fast_path_answers_as_the_checks_one_by_one(msg: Message, damage: list[tuple[str, object]]) -> None:
    """``validate`` skips the checks only for a request that passes them all: whatever the damage,
    its answer is theirs, and its fast path never says fine where one of them finds a problem."""
    from possim.protocol.validation import _request_fine

    damaged = replace(msg, **dict(damage))  # type: ignore[arg-type]
    try:
        expected = _checked_one_by_one(damaged)
    except TypeError:  # a value no check can even compare (none reaches a host from the codec)
        return
    assert validate(damaged) == expected
    if _request_fine(damaged):
        assert expected is None


@given(msg=valid_messages())
def test_the_fast_path_takes_every_valid_request(msg: Message) -> None:
    """A valid request is judged fine without running the checks one by one (or the fast path is dead)."""
    from possim.protocol.validation import _request_fine

    packed = msg.mti == M.BATCH_UPLOAD and msg.uploads is not None
    assert _request_fine(msg) is (msg.mti in M.REQUESTS and not packed)
