"""Field checks per message type: is this a request a host may act on at all?

The codec only makes sure a frame *parses* (field formats, lengths). A frame can parse and
still be nonsense a careless host would act on: a purchase with no card number (debited
against an empty PAN), no amount or a zero amount (approved at 0.00), a field 7 of
9999999999. ``validate`` finds the first such problem and says it in one line, so a host
can answer ISO 8583 response code 30 (format error) and change nothing.

Checks, in order (the first failing one is reported):

1. MTI: one possim knows.
2. Required fields for the MTI (``REQUIRED``), on top of 7, 11 and 41 which every message has.
3. Numeric fields numeric and of their ISO 8583 length: 3, 11, 12, 13, 49, and field 90's parts.
4. Field 7 a real date and time (MMDDhhmmss), field 12 a real time (hhmmss) and field 13 a
   real date (MMDD) when present. There is no year, so 29 February is always accepted.
5. Field 2: 12 to 19 digits passing the Luhn check.
6. Field 3: a known processing code (``PROCESSING_CODES``) allowed for the MTI.
7. Field 4: more than 0 and at most 12 digits of minor units.
8. Field 49: a known ISO 4217 numeric currency (``CURRENCIES``).
9. Field 90: names a known request MTI, a numeric STAN and a real transmission time.
10. Responses: field 39 two upper-case letters or digits.

Pure function: no clock (a transmission time far from "now" is a policy question for the
host, not a format error), no I/O.

``identify`` is for frames the codec refuses outright (a request without field 7, a field
that breaks its format): which request, from which terminal, it still names, so a host can
answer 30 instead of leaving the sender to its own timeout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from operator import attrgetter

from possim.protocol import codec, dialects
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.messages import Message, OriginalData

#: Fields each MTI must carry (Message attribute names), besides transmission, stan and tid: a live
#: view of the message kinds (``protocol.mti.KINDS``), so a kind registered later is checked too.
REQUIRED = M.REQUIRED
#: ISO 8583 field numbers, for messages people can look up.
FIELD_NUMBERS = {"pan": 2, "processing_code": 3, "amount": 4, "transmission": 7, "stan": 11, "local_time": 12,
                 "local_date": 13, "response_code": 39, "tid": 41, "batch_totals": 48, "currency": 49, "life": 60,
                 "original": 90}

PROCESSING_CODES = {"000000": "purchase / authorization", "030000": "pre-authorization", "970000": "status query"}
#: Processing codes each request MTI may carry (a view of ``protocol.mti.KINDS``); a purchase is
#: never a pre-authorization.
ALLOWED_CODES = M.ALLOWED_CODES
#: ISO 4217 numeric codes possim accepts in field 49.
CURRENCIES = {"978": "EUR", "840": "USD", "156": "CNY", "826": "GBP", "392": "JPY", "036": "AUD", "124": "CAD",
              "756": "CHF", "344": "HKD"}
MAX_AMOUNT = 10**12 - 1
_ORIGINAL_MTIS = frozenset({M.AUTH, M.PURCHASE})
_TID = re.compile(r"[ -~]{8}")
_RESPONSE_CODE = re.compile(r"[0-9A-Z]{2}")


def validate(msg: Message) -> str | None:
    """The first problem that makes ``msg`` unfit to act on, as one line; ``None`` if it is fine."""
    if msg.mti not in M.KNOWN:
        return f"MTI {msg.mti!r} is not a possim message"
    if _request_fine(msg):
        return None
    for check in _CHECKS:
        problem = check(msg)
        if problem is not None:
            return problem
    return None


def luhn_ok(pan: str) -> bool:
    """The Luhn (mod 10) check every card number's last digit satisfies."""
    if not pan.isdigit() or not pan.isascii():
        return False
    # From the right: digits at even positions count as they are, the others doubled (minus 9 above 9).
    backwards = pan[::-1]
    total = sum(map(int, backwards[0::2])) + sum(map(_DOUBLED.__getitem__, backwards[1::2]))
    return total % 10 == 0


#: A digit's contribution when the Luhn check doubles it.
_DOUBLED = {str(d): 2 * d - 9 if 2 * d > 9 else 2 * d for d in range(10)}


def real_date_time(value: str, layout: str) -> bool:
    """Whether ``value`` (all digits) is a real ``MMDDhhmmss``, ``hhmmss`` or ``MMDD``; 29 Feb always is."""
    if len(value) != len(layout) or not (value.isdigit() and value.isascii()):
        return False
    check = _LAYOUTS.get(layout)
    return check(value) if check is not None else _real_date_time_by_datetime(value, layout)


#: The last day of each month (``"01"``..``"12"``) in a leap year, as two digits (there is no year in
#: these fields, so 29 February is real). The checks below compare two-digit texts, already known
#: to be ASCII digits, as text: "07" < "24" as 7 < 24, without converting each to an int.
_LAST_DAY = {f"{m:02d}": f"{d:02d}" for m, d in enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1)}


def _month_day(value: str) -> bool:
    last = _LAST_DAY.get(value[0:2])
    return last is not None and "01" <= value[2:4] <= last


def _time(value: str) -> bool:
    return value[0:2] < "24" and value[2:4] < "60" and value[4:6] < "60"


def _date_time(value: str) -> bool:
    last = _LAST_DAY.get(value[0:2])
    return (last is not None and "01" <= value[2:4] <= last
            and value[4:6] < "24" and value[6:8] < "60" and value[8:10] < "60")


#: The layouts possim's fields use, checked without building a datetime (ranges as ``datetime`` has them).
_LAYOUTS: dict[str, Callable[[str], bool]] = {
    "MMDDhhmmss": _date_time,
    "hhmmss": _time,
    "MMDD": _month_day,
}


def _real_date_time_by_datetime(value: str, layout: str) -> bool:
    """Any layout of MM, DD, hh, mm, ss (two digits each): what ``datetime`` accepts, in the year 2000."""
    parts = {layout[i:i + 2]: int(value[i:i + 2]) for i in range(0, len(layout), 2)}
    try:
        datetime(2000, parts.get("MM", 1), parts.get("DD", 1), parts.get("hh", 0), parts.get("mm", 0),
                 parts.get("ss", 0))
    except ValueError:
        return False
    return True


def _label(attr: str) -> str:
    return f"field {FIELD_NUMBERS[attr]}"


def _required(msg: Message) -> str | None:
    packed = msg.mti == M.BATCH_UPLOAD and msg.uploads is not None  # CUP: the sales are in field 48
    for attr in _PACKED_UPLOAD if packed else (*_PACKED_UPLOAD, *REQUIRED[msg.mti]):
        if getattr(msg, attr) in (None, ""):
            return f"MTI {msg.mti}: missing {_label(attr)} ({attr.replace('_', ' ')})"
    return None


_PACKED_UPLOAD = ("transmission", "stan", "tid")


def _digits(value: object, n: int) -> bool:
    return isinstance(value, str) and len(value) == n and value.isdigit() and value.isascii()


def _numeric(msg: Message) -> str | None:
    for attr, n in _NUMERIC:
        value = getattr(msg, attr)
        if value is not None and not _digits(value, n):
            return f"{_label(attr)}: {value!r} is not {n} digits"
    if not (isinstance(msg.tid, str) and _TID.fullmatch(msg.tid)):
        return f"field 41: {msg.tid!r} is not 8 printable characters"
    return None


_NUMERIC = (("stan", 6), ("processing_code", 6), ("currency", 3), ("life", 6))
_TIMES = (("transmission", "MMDDhhmmss", "date and time"), ("local_time", "hhmmss", "time"),
          ("local_date", "MMDD", "date"))


def _times(msg: Message) -> str | None:
    for attr, layout, what in _TIMES:
        value = getattr(msg, attr)
        if value is not None and not (isinstance(value, str) and real_date_time(value, layout)):
            return f"{_label(attr)}: {value!r} is not a real {what} ({layout})"
    return None


def _pan(msg: Message) -> str | None:
    pan = msg.pan
    if pan is None:
        return None
    if not (isinstance(pan, str) and 12 <= len(pan) <= 19 and pan.isdigit() and pan.isascii()):
        return "field 2: card number must be 12 to 19 digits"
    if not luhn_ok(pan):
        return "field 2: card number fails the Luhn check"
    return None


def _processing_code(msg: Message) -> str | None:
    code = msg.processing_code
    if code is None:
        return None
    if code not in PROCESSING_CODES:
        return f"field 3: unknown processing code {code!r}"
    allowed = ALLOWED_CODES.get(msg.mti)
    if allowed is not None and code not in allowed:
        return f"field 3: processing code {code} ({PROCESSING_CODES[code]}) is not allowed in MTI {msg.mti}"
    return None


def _amount(msg: Message) -> str | None:
    amount = msg.amount
    if amount is None:
        return None
    if isinstance(amount, bool) or not isinstance(amount, int):
        return f"field 4: amount {amount!r} is not a whole number of minor units"
    if amount <= 0:
        return f"field 4: amount {amount} must be more than 0"
    if amount > MAX_AMOUNT:
        return f"field 4: amount {amount} does not fit in 12 digits"
    return None


def _currency(msg: Message) -> str | None:
    if msg.currency is not None and msg.currency not in CURRENCIES:
        return f"field 49: unknown currency {msg.currency!r} (ISO 4217 numeric)"
    return None


def _original(msg: Message) -> str | None:
    return _original_problem(msg.original)


def _original_problem(o: object) -> str | None:
    if o is None:
        return None
    if not isinstance(o, OriginalData):
        return "field 90: not original data elements"
    if o.mti not in _ORIGINAL_MTIS:
        return f"field 90: original MTI {o.mti!r} is not an authorization or purchase"
    if not _digits(o.stan, 6):
        return f"field 90: original STAN {o.stan!r} is not 6 digits"
    if not (isinstance(o.transmission, str) and real_date_time(o.transmission, "MMDDhhmmss")):
        return f"field 90: original transmission {o.transmission!r} is not a real date and time (MMDDhhmmss)"
    return None


def _response_code(msg: Message) -> str | None:
    rc = msg.response_code
    if msg.mti in M.RESPONSES and not (isinstance(rc, str) and _RESPONSE_CODE.fullmatch(rc)):
        return f"field 39: response code {rc!r} is not 2 upper-case letters or digits"
    return None


#: ``validate``'s checks, in the order of the module docstring (the first failing one is reported).
_CHECKS: tuple[Callable[[Message], str | None], ...] = (
    _required, _numeric, _times, _pan, _processing_code, _amount, _currency, _original, _response_code)


# -- the fast path: a request that passes every check, proved in one pass ---------------------------
# A host validates every request it gets, and nearly all of them are fine. ``_request_fine`` says
# True only when each check of ``_CHECKS`` would return None, reading each field once, with no
# regular expression and no per-check call; anything unusual (a response, a CUP packed upload, a
# value of another type, any failing value) makes it say False, and the checks above then run one
# by one and word the first problem. So ``validate``'s answers are the checks' answers:
# ``tests/protocol/test_validation.py`` holds both paths to each other. Over ASCII text
# ``str.isdigit`` is ``[0-9]`` and ``str.isprintable`` is ``[ -~]`` (field 41's pattern).

#: ``attrgetter`` of the fields each MTI must carry (``_PACKED_UPLOAD`` first), by the required
#: tuple of ``REQUIRED`` (a live view: a kind registered later brings a tuple of its own).
_REQUIRED_GETTERS: dict[tuple[str, ...], Callable[[Message], tuple[object, ...]]] = {}


def _required_values(required: tuple[str, ...]) -> Callable[[Message], tuple[object, ...]]:
    getter = _REQUIRED_GETTERS.get(required)
    if getter is None:
        getter = _REQUIRED_GETTERS[required] = attrgetter(*_PACKED_UPLOAD, *required)
    return getter


def _ascii_digits(value: object, n: int) -> bool:
    """``_digits`` for a plain ``str`` only (another type is left to the checks)."""
    return type(value) is str and len(value) == n and value.isdigit() and value.isascii()


def _request_fine(msg: Message) -> bool:
    """Whether ``msg`` (an MTI ``validate`` knows) is a request every check of ``_CHECKS`` passes."""
    mti = msg.mti
    if mti in M.RESPONSES or (mti == M.BATCH_UPLOAD and msg.uploads is not None):
        return False  # field 39 to check, or CUP's packed sales: the checks decide
    values = _required_values(REQUIRED[mti])(msg)
    if None in values or "" in values:
        return False
    tid, code, life, pan = msg.tid, msg.processing_code, msg.life, msg.pan
    if not (_ascii_digits(msg.stan, 6) and _ascii_digits(msg.transmission, 10) and _date_time(msg.transmission)
            and type(tid) is str and len(tid) == 8 and tid.isascii() and tid.isprintable()):
        return False
    if code is not None:
        allowed = ALLOWED_CODES.get(mti)
        if not (_ascii_digits(code, 6) and code in PROCESSING_CODES and (allowed is None or code in allowed)):
            return False
    if life is not None and not _ascii_digits(life, 6):
        return False
    if pan is not None and not (type(pan) is str and 12 <= len(pan) <= 19 and _luhn_ok_cached(pan)):
        return False
    return _rest_fine(msg)


def _rest_fine(msg: Message) -> bool:
    """``_request_fine`` for the fields a sale seldom carries or that are cheap to check."""
    amount, currency, local_time, local_date = msg.amount, msg.currency, msg.local_time, msg.local_date
    if amount is not None and not (type(amount) is int and 0 < amount <= MAX_AMOUNT):
        return False
    if currency is not None and not (_ascii_digits(currency, 3) and currency in CURRENCIES):
        return False
    if local_time is not None and not (_ascii_digits(local_time, 6) and _time(local_time)):
        return False
    if local_date is not None and not (_ascii_digits(local_date, 4) and _month_day(local_date)):
        return False
    o = msg.original
    return o is None or (type(o) is OriginalData and type(o.mti) is str and o.mti in _ORIGINAL_MTIS
                         and _ascii_digits(o.stan, 6) and _ascii_digits(o.transmission, 10)
                         and _date_time(o.transmission))


#: Card numbers that passed the Luhn check lately: a host sees the same cards again and again.
_LUHN_PASSED: set[str] = set()
#: How many ``_LUHN_PASSED`` keeps before it starts over (a bound on its memory, not on correctness).
_LUHN_REMEMBERED = 4096


def _luhn_ok_cached(pan: str) -> bool:
    """``luhn_ok`` of a plain ``str``, remembering the numbers that passed."""
    if pan in _LUHN_PASSED:
        return True
    if not luhn_ok(pan):
        return False
    if len(_LUHN_PASSED) >= _LUHN_REMEMBERED:
        _LUHN_PASSED.clear()
    _LUHN_PASSED.add(pan)
    return True


# -- frames the codec refuses: who sent them, if anyone can tell ----------------------------------

#: (field, Message attribute, pattern) of the fields ``identify`` echoes when they read well; the
#: patterns are the codec's own, so an echoed value always encodes.
_ECHO: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (f, a, re.compile(p)) for f, a, p in (
        ("2", "pan", r"\d{12,19}"), ("3", "processing_code", r"\d{6}"), ("7", "transmission", r"\d{10}"),
        ("11", "stan", r"\d{6}"), ("12", "local_time", r"\d{6}"), ("13", "local_date", r"\d{4}"),
        ("37", "rrn", r"[0-9A-Za-z]{12}"), ("38", "auth_code", r"[0-9A-Za-z ]{6}"), ("42", "mid", r"[ -~]{15}"),
        ("49", "currency", r"\d{3}"), ("4", "amount", r"\d{12}"), ("90", "original", r"\d{42}")))
#: The STAN an answer carries when the request's field 11 is missing or unreadable.
NO_STAN = "000000"


def identify(data: bytes, transmission: str) -> Message | None:
    """The request a frame that failed decoding still names, for a 30 (format error) answer; None
    when it names nobody: the bytes do not parse into fields at all, the MTI is not a request
    possim answers, or field 41 is not 8 printable characters.

    Every field that reads well (the codec's own patterns) is kept, to be echoed as hosts do; a
    missing or unreadable field 11 becomes ``NO_STAN`` and a missing or unreadable field 7 becomes
    ``transmission`` (the host's own transmission time: an answer always carries field 7). Field
    90 is kept only when it is real original data, so the answer encodes whatever the request held.
    A CUP frame has neither: its date and time are fields 13 + 12 and its original field 61
    (``Dialect.readable_identity``), read the same way.
    """
    fields = _raw_fields(data)
    if fields is None:
        return None
    mti, tid = fields.get("t"), fields.get("41")
    if mti not in M.REQUESTS or not (isinstance(tid, str) and _TID.fullmatch(tid)):
        return None
    values: dict[str, object] = {"stan": NO_STAN, "transmission": transmission}
    for field, attr, pattern in _ECHO:
        value = fields.get(field)
        if isinstance(value, str) and pattern.fullmatch(value):
            values[attr] = value
    if "amount" in values:
        values["amount"] = int(str(values["amount"]))
    raw = values.pop("original", None)
    if isinstance(raw, str):
        original = OriginalData(mti=raw[:4], stan=raw[4:10], transmission=raw[10:20])
        if _original_problem(original) is None:
            values["original"] = original
    # a dialect without field 7 or 90 (CUP: the date and time in 13 + 12, the original in 61)
    texts = {k: v for k, v in fields.items() if isinstance(v, str)}
    own = dialects.get(codec.dialect_of(data)).readable_identity(texts)
    if _original_problem(own.get("original")) is not None:
        own.pop("original", None)
    values.update(own)
    return Message(mti=mti, tid=tid, **values)  # type: ignore[arg-type]


def _raw_fields(data: bytes) -> Mapping[str, object] | None:
    """The frame's fields as its dialect's layout reads them, before any of possim's rules; None if
    the bytes do not even split into fields (a bad bitmap, a wrong length, a truncated frame)."""
    try:
        return dialects.get(codec.dialect_of(data)).raw_fields(data)
    except ProtocolError:
        return None
