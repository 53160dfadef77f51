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
"""

from __future__ import annotations

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

REQUESTS = frozenset({AUTH, PURCHASE, ADVICE, ADVICE_REPEAT, REVERSAL, REVERSAL_REPEAT, STATUS_QUERY,
                      BATCH_UPLOAD, SETTLEMENT, SIGN_ON})
RESPONSES = frozenset({AUTH_RESPONSE, PURCHASE_RESPONSE, ADVICE_RESPONSE, REVERSAL_RESPONSE, STATUS_QUERY_RESPONSE,
                       BATCH_UPLOAD_RESPONSE, SETTLEMENT_RESPONSE, SIGN_ON_RESPONSE})
KNOWN = REQUESTS | RESPONSES

#: Human names for timelines and traces.
NAMES = {
    AUTH: "authorization",
    AUTH_RESPONSE: "authorization response",
    PURCHASE: "purchase",
    PURCHASE_RESPONSE: "purchase response",
    ADVICE: "completion advice",
    ADVICE_REPEAT: "completion advice (repeat)",
    ADVICE_RESPONSE: "completion response",
    REVERSAL: "reversal",
    REVERSAL_REPEAT: "reversal (repeat)",
    REVERSAL_RESPONSE: "reversal response",
    STATUS_QUERY: "status query",
    STATUS_QUERY_RESPONSE: "status answer",
    BATCH_UPLOAD: "batch upload",
    BATCH_UPLOAD_RESPONSE: "batch upload response",
    SETTLEMENT: "settlement",
    SETTLEMENT_RESPONSE: "settlement response",
    SIGN_ON: "sign-on",
    SIGN_ON_RESPONSE: "sign-on response",
}


def response_to(mti: str) -> str:
    """The response MTI for a request: third digit + 1, repeat flag cleared (0401 -> 0410).

    Every request and its answer pass here: possim's own MTIs are read from a table built once
    at import (a constant, like ``NAMES``); any other text is computed (and raises as before)."""
    got = _RESPONSES.get(mti)
    return got if got is not None else _response_to(mti)


def _response_to(mti: str) -> str:
    base = mti[:3] + "0"
    return base[:2] + str(int(base[2]) + 1) + "0"


#: ``response_to`` of every MTI possim knows.
_RESPONSES: dict[str, str] = {mti: _response_to(mti) for mti in KNOWN}
