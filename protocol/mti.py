"""Message type indicators used by possim, and the ISO 8583 rules that relate them.

The status query has no universal ISO 8583 message. possim uses the administrative
class: 0600 (request) / 0610 (response), processing code 970000, with field 90 naming
the original. Administrative messages never move money, so a host that does not know
the query cannot mistake it for a financial request.

Settlement at the end of the day: 0500 carries the terminal's batch totals in field 48
(``protocol.cup.BatchTotals``) and the 0510 says balanced (1) or out of balance (2); out of
balance, the terminal uploads each sale it approved as a 0320 (answered 0330) and settles again.

Sign-on: a terminal process signs on when it starts (0800, answered 0810), carrying its life
number (``Message.life``: field 60 under ``iso``; under ``cup`` after 60.1-60.3, where 60.2 is
the batch number). possim's only network-management message is the sign-on, so it needs no
field 70 (network management code 001).

Message kinds: each request/response pair is one ``MessageKind`` in ``KINDS``, the only table of
what possim knows about it: its MTIs, its names for people (English, which is also the message
id of the catalogue, ``possim/locale``), the fields its request must carry, the processing codes
it may carry, and the labels of its trace events. ``REQUESTS``, ``RESPONSES``, ``KNOWN``,
``NAMES``, ``REQUIRED`` and ``ALLOWED_CODES`` are live views of it: a kind registered later
(a plugin, a test) is known to the codec, the field checks, the host and the timeline at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from typing import TypeVar, overload

from possim.protocol.registry import Registry

AUTH = "0100"
AUTH_RESPONSE = "0110"
PURCHASE = "0200"
PURCHASE_RESPONSE = "0210"
ADVICE = "0220"
ADVICE_REPEAT = "0221"
ADVICE_RESPONSE = "0230"
REVERSAL = "0400"
REVERSAL_REPEAT = "0401"
REVERSAL_RESPONSE = "0410"
STATUS_QUERY = "0600"
STATUS_QUERY_RESPONSE = "0610"
BATCH_UPLOAD = "0320"
BATCH_UPLOAD_RESPONSE = "0330"
SETTLEMENT = "0500"
SETTLEMENT_RESPONSE = "0510"
SIGN_ON = "0800"
SIGN_ON_RESPONSE = "0810"


@dataclass(frozen=True, slots=True)
class MessageKind:
    """One request/response pair: everything possim's tables know about it, in one place."""

    #: The registry key (``"sign_on"``).
    name: str
    #: Request and response MTIs; ``repeat`` the request's repeat (0401), if it has one.
    request: str
    response: str
    #: Names for people, in English: the catalogue's message ids (the zh catalogue translates them).
    label: str
    response_label: str
    #: Fields the request must carry (``Message`` attribute names), besides 7, 11 and 41.
    required: tuple[str, ...] = ()
    repeat: str | None = None
    repeat_label: str | None = None
    #: Processing codes (field 3) the request may carry; None: any known code.
    codes: frozenset[str] | None = None
    #: Trace events of this kind's exchange by trace name, with the English timeline label of each
    #: (``{field}`` placeholders are the event's fields; empty: the event's name and MTI). The
    #: timeline shows an event it has no row of its own for with this label, so a new kind's
    #: events are never dropped silently.
    events: Mapping[str, str] = field(default_factory=dict)

    @property
    def requests(self) -> tuple[str, ...]:
        """The request MTIs: the request and its repeat."""
        return (self.request,) if self.repeat is None else (self.request, self.repeat)

    @property
    def mtis(self) -> tuple[str, ...]:
        """Every MTI of the pair."""
        return (*self.requests, self.response)

    def names(self) -> dict[str, str]:
        """MTI -> name for people."""
        out = {self.request: self.label, self.response: self.response_label}
        if self.repeat is not None:
            out[self.repeat] = self.repeat_label or f"{self.label} (repeat)"
        return out


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class _LiveSet(Set[str]):
    """A set of MTIs rebuilt whenever ``KINDS`` changes; ``in`` costs a frozenset lookup."""

    def __init__(self) -> None:
        self._items: frozenset[str] = frozenset()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @classmethod
    def _from_iterable(cls, it: Iterable[str]) -> frozenset[str]:  # type: ignore[override]
        """``|``, ``&``, ``-`` give a plain frozenset (a snapshot), not another live view."""
        return frozenset(it)

    def issuperset(self, other: object) -> bool:
        """As ``frozenset.issuperset``."""
        return self._items.issuperset(other)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self._items)})"


class _LiveMap(Mapping[K, V]):
    """A mapping rebuilt whenever ``KINDS`` changes."""

    def __init__(self, build: Callable[[tuple[MessageKind, ...]], dict[K, V]]) -> None:
        self._build = build
        self._items: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...

    def get(self, key: K, default: object = None, /) -> object:
        return self._items.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class _KindRegistry(Registry[MessageKind]):
    """``KINDS``: a ``Registry`` that rebuilds the views below whenever an entry comes or goes."""

    def register(self, entry: MessageKind) -> MessageKind:
        clash = set(entry.mtis) & set(KNOWN)
        if clash:
            raise ValueError(f"message kind {entry.name!r}: MTI {', '.join(sorted(clash))} belongs to another kind")
        super().register(entry)
        _rebuild()
        return entry

    def unregister(self, name: str) -> None:
        super().unregister(name)
        _rebuild()

    def of(self, mti: str) -> MessageKind | None:
        """The kind ``mti`` (a request, its repeat or its response) belongs to, if any."""
        return _BY_MTI.get(mti)

    def event_label(self, event: str) -> str | None:
        """The timeline label a registered kind gives trace event ``event`` (English), if any."""
        return _EVENT_LABELS.get(event)


KINDS = _KindRegistry("message kind", lambda k: k.name)

REQUESTS = _LiveSet()
RESPONSES = _LiveSet()
KNOWN = _LiveSet()
#: Human names for timelines and traces (catalogue message ids).
NAMES: _LiveMap[str, str] = _LiveMap(lambda kinds: {m: n for k in kinds for m, n in k.names().items()})
#: Fields each MTI must carry (Message attribute names), besides transmission, stan and tid.
REQUIRED: _LiveMap[str, tuple[str, ...]] = _LiveMap(
    lambda kinds: {m: k.required for k in kinds for m in k.requests}
    | {k.response: ("response_code",) for k in kinds})
#: Processing codes each request MTI may carry (kinds that restrict them).
ALLOWED_CODES: _LiveMap[str, frozenset[str]] = _LiveMap(
    lambda kinds: {m: k.codes for k in kinds if k.codes is not None for m in k.requests})
#: MTI -> its kind (``KINDS.of``).
_BY_MTI: dict[str, MessageKind] = {}
#: ``response_to`` of every MTI possim knows.
_RESPONSES: dict[str, str] = {}
#: Trace event name -> the label its kind gives it (``KINDS.event_label``).
_EVENT_LABELS: dict[str, str] = {}


def _rebuild() -> None:
    """Refresh every view from ``KINDS`` (in place: modules that imported a view keep seeing it live)."""
    kinds = KINDS.values()
    REQUESTS._items = frozenset(m for k in kinds for m in k.requests)
    RESPONSES._items = frozenset(k.response for k in kinds)
    KNOWN._items = REQUESTS._items | RESPONSES._items
    for view in (NAMES, REQUIRED, ALLOWED_CODES):
        view._items = view._build(kinds)
    _BY_MTI.clear()
    _BY_MTI.update({m: k for k in kinds for m in k.mtis})
    _RESPONSES.clear()
    _RESPONSES.update({m: _response_to(m) for m in KNOWN})
    _EVENT_LABELS.clear()
    _EVENT_LABELS.update({name: label for k in kinds for name, label in k.events.items()})


def response_to(mti: str) -> str:
    """The response MTI for a request: third digit + 1, repeat flag cleared (0401 -> 0410).

    Every request and its answer pass here: possim's own MTIs are read from a table rebuilt when
    ``KINDS`` changes (like ``NAMES``); any other text is computed (and raises as before)."""
    got = _RESPONSES.get(mti)
    return got if got is not None else _response_to(mti)


def _response_to(mti: str) -> str:
    base = mti[:3] + "0"
    return base[:2] + str(int(base[2]) + 1) + "0"


_FINANCIAL = ("pan", "processing_code", "amount", "currency")
_FINANCIAL_CODES = frozenset({"000000", "030000"})

for _kind in (
    MessageKind("authorization", AUTH, AUTH_RESPONSE, "authorization", "authorization response",
                required=_FINANCIAL, codes=_FINANCIAL_CODES),
    MessageKind("purchase", PURCHASE, PURCHASE_RESPONSE, "purchase", "purchase response",
                required=_FINANCIAL, codes=frozenset({"000000"})),  # a purchase is never a pre-authorization
    MessageKind("advice", ADVICE, ADVICE_RESPONSE, "completion advice", "completion response",
                required=(*_FINANCIAL, "original"), repeat=ADVICE_REPEAT, repeat_label="completion advice (repeat)",
                codes=_FINANCIAL_CODES),
    # A reversal names its original by field 90 (ISO) or, as CUP terminals do, by being a copy
    # of it (same STAN and field 7): field 90 is optional.
    MessageKind("reversal", REVERSAL, REVERSAL_RESPONSE, "reversal", "reversal response",
                required=_FINANCIAL, repeat=REVERSAL_REPEAT, repeat_label="reversal (repeat)",
                codes=_FINANCIAL_CODES),
    MessageKind("status_query", STATUS_QUERY, STATUS_QUERY_RESPONSE, "status query", "status answer",
                required=("processing_code", "original"), codes=frozenset({"970000"})),
    # A batch upload is one approved sale, naming it in field 90.
    MessageKind("batch_upload", BATCH_UPLOAD, BATCH_UPLOAD_RESPONSE, "batch upload", "batch upload response",
                required=(*_FINANCIAL, "original"), codes=_FINANCIAL_CODES),
    # Settlement: the batch totals in field 48.
    MessageKind("settlement", SETTLEMENT, SETTLEMENT_RESPONSE, "settlement", "settlement response",
                required=("batch_totals",)),
    # Sign-on: the terminal's life number in field 60, nothing else.
    MessageKind("sign_on", SIGN_ON, SIGN_ON_RESPONSE, "sign-on", "sign-on response", required=("life",)),
):
    KINDS.register(_kind)
