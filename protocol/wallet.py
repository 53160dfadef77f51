"""The wallet message family: QR payment-code (付款码) requests and answers, as JSON.

The wallet gateways (Alipay face-to-face barcode pay, WeChat Pay micropay) speak JSON over
HTTPS, not ISO 8583, so possim's wallet messages are JSON too, with the gateways' own field
names where they exist (docs/wallet.md maps every field to the providers' documents):

- ``out_trade_no``: the merchant's order number, the gateway's idempotency key. Every repeat
  of a pay, query or cancel for one order carries the same number, so a repeat can never
  charge twice.
- ``auth_code``: the payment code the cashier scanned from the customer's phone.
- ``total_amount``: decimal yuan as Alipay writes it ("25.00"); inside possim amounts are
  minor units, as for cards.
- ``life``: possim's own field, not the providers': the life number a signed-on terminal carries in
  field 60 of its card messages (docs/architecture.md, "Terminal lives"), sent in its wallet requests
  too, so the acquirer's gateway can refuse a request from a life that is not the current one.
- ``trade_state``: WeChat's names: SUCCESS, USERPAYING, NOTPAY, CLOSED, REVOKED (cancelled
  after payment, so refunded), PAYERROR.

The bytes travel over the same links and fault layer as card messages. ``peek_kind`` names a
frame for the fault layer and the logs: a wallet kind (``QR_PAY``, ``QR_PAY_RESP``, ...) for a
JSON frame, the MTI for an ISO 8583 one. Parsing is strict: bad JSON, a missing or unknown
field, a wrong type or value raises ``ProtocolError``, as a bad ISO 8583 frame does.

Authentication (``sign``), as the gateways sign their parameters (Alipay's ``sign``, WeChat
Pay's ``sign``): ``encode(msg, key)`` adds a ``sign`` field holding the terminal's MAC
(``protocol.mac``, the key of the same key file card MACs use, 8 bytes as 16 upper-case hex
digits) over the message's canonical JSON without the ``sign`` field (keys sorted, compact,
ASCII: exactly what ``encode`` writes). ``decode(data, keys)`` recomputes it over the canonical
form of what it parsed, so the MAC covers every field the receiver acts on. A card frame's MAC
input starts with its MTI, a wallet's with ``{``: a MAC of one never verifies as the other's.
Without keys both behave as before (no ``sign`` written, one on the wire ignored). Failures are
``SignError`` subclasses of ``ProtocolError`` with the unauthenticated ``message`` attached, as
``codec.MacError`` is for cards.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from possim.protocol import codec
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MAC_LEN, MacKey

RequestKind = Literal["pay", "query", "cancel", "refund"]
Provider = Literal["alipay", "wechat"]
TradeState = Literal["SUCCESS", "USERPAYING", "NOTPAY", "CLOSED", "REVOKED", "PAYERROR"]
#: Alipay's gateway codes: success, waiting for the user, business failure, unknown (system error),
#: invalid arguments (the request's ``sign`` or terminal could not be verified: nothing was done).
Code = Literal["10000", "10003", "40004", "20000", "40002"]
CancelAction = Literal["close", "refund", "none"]
#: A cancel answer's "call me again": Alipay's ``retry_flag``, WeChat Pay's ``recall`` (Y or N).
Flag = Literal["Y", "N"]

REQUEST_KINDS: tuple[RequestKind, ...] = get_args(RequestKind)
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
TRADE_STATES: tuple[TradeState, ...] = get_args(TradeState)
#: States no later event changes (an unpaid order ends CLOSED, a paid one SUCCESS or REVOKED).
FINAL_STATES: frozenset[str] = frozenset({"SUCCESS", "CLOSED", "REVOKED", "PAYERROR"})

#: Request kind -> the name the fault layer, the trace and fault rules use for it.
WIRE_KINDS: dict[str, str] = {"pay": "QR_PAY", "query": "QR_QUERY", "cancel": "QR_CANCEL", "refund": "QR_REFUND"}
#: Request kind -> the name of its answer.
ANSWER_KINDS: dict[str, str] = {k: f"{v}_RESP" for k, v in WIRE_KINDS.items()}
#: Every wallet kind a fault rule may target.
KINDS: frozenset[str] = frozenset(WIRE_KINDS.values()) | frozenset(ANSWER_KINDS.values())
#: Human names for timelines.
NAMES: dict[str, str] = {
    "QR_PAY": "wallet pay (scanned code)", "QR_PAY_RESP": "wallet pay answer",
    "QR_QUERY": "wallet order query", "QR_QUERY_RESP": "wallet query answer",
    "QR_CANCEL": "wallet cancel (撤销)", "QR_CANCEL_RESP": "wallet cancel answer",
    "QR_REFUND": "wallet refund", "QR_REFUND_RESP": "wallet refund answer",
}

_TID = re.compile(r"[ -~]{8}")
_ORDER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_AUTH_CODE = re.compile(r"\d{16,24}")
_AMOUNT = re.compile(r"\d{1,10}\.\d{2}")
_TRADE_NO = re.compile(r"[A-Za-z0-9]{1,64}")
_SUB_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SIGN = re.compile(f"[0-9A-F]{{{2 * MAC_LEN}}}")
_LIFE = re.compile(r"\d{6}")

#: The refusals of a request the gateway cannot authenticate (Alipay's code 40002 sub codes).
INVALID_SIGNATURE = "isv.invalid-signature"
UNKNOWN_TERMINAL = "isv.invalid-app-id"
#: The answer to a request for an order the sender does not own (or nobody has).
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
#: The acquirer gateway's own sub code (no provider's) for a request that is not from its terminal
#: id's current life (docs/architecture.md, "Terminal lives"): the card host's 77, "sign on again".
#: It comes with code 20000 (outcome unknown to the sender: nothing was done, ask again after
#: signing on), so a client that knows no such sub code still takes it for no answer about the order.
SIGN_ON_AGAIN = "ACQ.SIGN_ON_AGAIN"
#: A system error (code 20000): the gateway may or may not have done the work; ask again (query).
#: Alipay's ``ACQ.SYSTEM_ERROR``; WeChat Pay's ``SYSTEMERROR`` and ``BANKERROR`` (the bank's side).
SYSTEM_ERRORS: dict[str, frozenset[str]] = {"alipay": frozenset({"ACQ.SYSTEM_ERROR"}),
                                            "wechat": frozenset({"SYSTEMERROR", "BANKERROR"})}
#: A cancel refused because the order is past the provider's cancel window: a paid Alipay trade can be
#: cancelled only on the Beijing business day it was created, a WeChat Pay order within 7 days; after
#: that only a refund returns the money. WeChat Pay's ``REVERSE_EXPIRE``; possim names Alipay's
#: refusal ``ACQ.TRADE_CANCEL_TIME_OUT``.
CANCEL_EXPIRED: dict[str, str] = {"alipay": "ACQ.TRADE_CANCEL_TIME_OUT", "wechat": "REVERSE_EXPIRE"}

#: What ``decode`` verifies against: one terminal's key, or every terminal's keys by ``tid``.
Keys = MacKey | Mapping[str, MacKey]


@dataclass(frozen=True, slots=True, kw_only=True)
class WalletRequest:
    """A terminal's request to the wallet gateway. ``amount`` is minor units (pay, refund)."""

    kind: RequestKind
    tid: str
    out_trade_no: str
    request_id: str
    provider: Provider = "alipay"
    auth_code: str | None = None
    amount: int | None = None
    #: The life number of a signed-on terminal (as field 60 of its card messages), or None.
    life: str | None = None

    @property
    def wire_kind(self) -> str:
        return WIRE_KINDS[self.kind]

    def answer(self, code: Code, trade_state: TradeState, **fields: Any) -> WalletResponse:
        """The gateway's answer: order number and request id echoed back, as the gateways do."""
        return WalletResponse(kind=self.kind, tid=self.tid, out_trade_no=self.out_trade_no,
                              request_id=self.request_id, code=code, trade_state=trade_state, **fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class WalletResponse:
    """The gateway's answer to one request: the order's trade state when it answered."""

    kind: RequestKind
    tid: str
    out_trade_no: str
    request_id: str
    code: Code
    trade_state: TradeState
    amount: int | None = None
    trade_no: str | None = None
    action: CancelAction | None = None
    sub_code: str | None = None
    #: Alipay's cancel answer: Y, call cancel again (the cancel did not finish).
    retry_flag: Flag | None = None
    #: WeChat Pay's reverse answer: Y, call reverse again.
    recall: Flag | None = None

    @property
    def wire_kind(self) -> str:
        return ANSWER_KINDS[self.kind]

    @property
    def call_again(self) -> bool | None:
        """What the answer's ``retry_flag`` / ``recall`` says: True (Y), False (N), None (not said)."""
        flag = self.retry_flag or self.recall
        return None if flag is None else flag == "Y"


WalletMessage = WalletRequest | WalletResponse


def is_wallet(data: bytes) -> bool:
    """A wallet frame is a JSON object; an ISO 8583 frame starts with its four-digit MTI."""
    return data[:1] == b"{"


class SignError(ProtocolError):
    """The frame parses but its ``sign`` does not prove who built it; ``message`` is unauthenticated."""

    def __init__(self, reason: str, message: WalletMessage) -> None:
        super().__init__(reason)
        self.message = message


class SignMissingError(SignError):
    """Keys are in use but the frame carries no ``sign``."""


class SignMismatchError(SignError):
    """The ``sign`` is there but is not the MAC of the message under its terminal's key."""


class UnknownTerminalError(SignError):
    """No key for the frame's ``tid``: it cannot be verified, nor answered with a ``sign``."""


def encode(msg: WalletMessage, key: MacKey | None = None) -> bytes:
    """The JSON bytes of a message (compact, keys sorted, so a run's bytes repeat exactly), signed with ``key``."""
    body = _body(msg)
    if key is not None:
        body["sign"] = key.compute(_canonical(body)).hex().upper()
    return _canonical(body)


def _canonical(body: Mapping[str, Any]) -> bytes:
    """The one byte form of a message: what is sent, and what a ``sign`` is computed over."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _body(msg: WalletMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"msg": msg.wire_kind, "tid": msg.tid, "out_trade_no": msg.out_trade_no,
                            "request_id": msg.request_id}
    if isinstance(msg, WalletRequest):
        body["provider"] = msg.provider
        if msg.auth_code is not None:
            body["auth_code"] = msg.auth_code
        if msg.amount is not None:
            body["total_amount"] = _yuan(msg.amount)
        if msg.life is not None:
            body["life"] = msg.life
    else:
        body["code"], body["trade_state"] = msg.code, msg.trade_state
        if msg.amount is not None:
            body["total_amount"] = _yuan(msg.amount)
        for name in ("trade_no", "action", "sub_code", "retry_flag", "recall"):
            if getattr(msg, name) is not None:
                body[name] = getattr(msg, name)
    return body


def decode(data: bytes, keys: Keys | None = None) -> WalletMessage:
    """Parse a wallet frame; anything but a well-formed wallet message raises ``ProtocolError``.

    With ``keys`` the frame must also carry the right ``sign`` for its ``tid``, else a
    ``SignError`` (with the parsed, unauthenticated message) is raised.
    """
    body = _object(data)
    sign = body.pop("sign", None)
    if sign is not None and (not isinstance(sign, str) or not _SIGN.fullmatch(sign)):
        raise ProtocolError(f"wallet frame: field sign: invalid value {sign!r}")
    msg = _message(body)
    if keys is not None:
        _verify(msg, body, sign, keys)
    return msg


def _message(body: dict[str, Any]) -> WalletMessage:
    kind = body.get("msg")
    request = {v: k for k, v in WIRE_KINDS.items()}
    answer = {v: k for k, v in ANSWER_KINDS.items()}
    if kind in request:
        return _request(body, request[kind])
    if kind in answer:
        return _response(body, answer[kind])
    raise ProtocolError(f"wallet frame: unknown msg {kind!r}")


def _verify(msg: WalletMessage, body: dict[str, Any], sign: str | None, keys: Keys) -> None:
    """The ``sign`` must be the MAC of the canonical body under the key of the terminal it names."""
    key = keys if isinstance(keys, MacKey) else keys.get(msg.tid)
    if key is None:
        raise UnknownTerminalError(f"wallet frame: no key for terminal {msg.tid!r}", msg)
    if sign is None:
        raise SignMissingError("wallet frame: no sign", msg)
    if not key.verify(_canonical(body), bytes.fromhex(sign)):
        raise SignMismatchError("wallet frame: sign is not the terminal's", msg)


_REQUEST_FIELDS = {"pay": {"auth_code", "total_amount"}, "query": set(), "cancel": set(), "refund": {"total_amount"}}
_COMMON = {"msg", "tid", "out_trade_no", "request_id"}
_RESPONSE_OPTIONAL = {"total_amount", "trade_no", "action", "sub_code", "retry_flag", "recall"}


def _request(body: dict[str, Any], kind: str) -> WalletRequest:
    needed = _COMMON | {"provider"} | _REQUEST_FIELDS[kind]
    _exact_keys(body, needed, needed | {"life"})
    provider = _choice(body, "provider", PROVIDERS)
    auth_code = _text(body, "auth_code", _AUTH_CODE) if "auth_code" in body else None
    amount = _amount(body["total_amount"]) if "total_amount" in body else None
    life = _text(body, "life", _LIFE) if "life" in body else None
    return WalletRequest(kind=kind, provider=provider, auth_code=auth_code,  # type: ignore[arg-type]
                         amount=amount, life=life, **_common(body))


def _response(body: dict[str, Any], kind: str) -> WalletResponse:
    needed = _COMMON | {"code", "trade_state"}
    _exact_keys(body, needed, needed | _RESPONSE_OPTIONAL)
    fields: dict[str, Any] = {
        "code": _choice(body, "code", get_args(Code)),
        "trade_state": _choice(body, "trade_state", TRADE_STATES),
        "amount": _amount(body["total_amount"]) if "total_amount" in body else None,
        "trade_no": _text(body, "trade_no", _TRADE_NO) if "trade_no" in body else None,
        "action": _choice(body, "action", get_args(CancelAction)) if "action" in body else None,
        "sub_code": _text(body, "sub_code", _SUB_CODE) if "sub_code" in body else None,
        "retry_flag": _choice(body, "retry_flag", get_args(Flag)) if "retry_flag" in body else None,
        "recall": _choice(body, "recall", get_args(Flag)) if "recall" in body else None,
    }
    return WalletResponse(kind=kind, **_common(body), **fields)  # type: ignore[arg-type]


def _object(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"wallet frame: not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("wallet frame: nested too deeply") from None
    if not isinstance(body, dict):
        raise ProtocolError("wallet frame: not a JSON object")
    return body


def _exact_keys(body: dict[str, Any], required: set[str], allowed: set[str]) -> None:
    missing = sorted(required - body.keys())
    if missing:
        raise ProtocolError(f"wallet frame: missing field {missing[0]!r}")
    extra = sorted(body.keys() - allowed)
    if extra:
        raise ProtocolError(f"wallet frame: unknown field {extra[0]!r}")


def _common(body: dict[str, Any]) -> dict[str, str]:
    return {"tid": _text(body, "tid", _TID), "out_trade_no": _text(body, "out_trade_no", _ORDER),
            "request_id": _text(body, "request_id", _REQUEST_ID)}


def _text(body: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = body[name]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProtocolError(f"wallet frame: field {name}: invalid value {value!r}")
    return value


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = body[name]
    if value not in choices:
        raise ProtocolError(f"wallet frame: field {name}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _amount(value: object) -> int:
    """'25.00' -> 2500; more or fewer than two decimals, a sign or a number type is refused."""
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        raise ProtocolError(f"wallet frame: field total_amount: invalid value {value!r}")
    whole, cents = value.split(".")
    return int(whole) * 100 + int(cents)


def _yuan(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def peek_kind(data: bytes) -> str:
    """What a frame is, without trusting it: its wallet kind, its MTI, or '????'.

    The fault layer matches rules on this name and the drivers log it, so it must never
    raise: a JSON frame that does not parse is '????' like an unreadable ISO 8583 one.
    """
    if not is_wallet(data):
        return codec.peek_mti(data)
    match = re.search(rb'"msg":"([A-Z_]{1,20})"', data[:1024])
    if match is None:
        return "????"
    kind = match.group(1).decode("ascii")
    return kind if kind in KINDS else "????"


def wire_fields(data: bytes) -> dict[str, object]:
    """The trace keys of a wallet frame: ``tid``, ``stan`` (the order number), ``mti`` (its kind)."""
    try:
        msg = decode(data)
    except ProtocolError:
        return {"mti": peek_kind(data), "malformed": True}
    return {"tid": msg.tid, "stan": msg.out_trade_no, "mti": msg.wire_kind}


def frame_tid(data: bytes) -> str:
    """The terminal id of a card or wallet frame (a TCP host routes replies by it); ``ProtocolError`` if unreadable."""
    return decode(data).tid if is_wallet(data) else codec.decode(data).tid
