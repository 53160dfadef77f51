"""The states of an original in the acquirer's ledger (``originals.state``) and their legal moves.

A module of its own because the host, a pure state machine, names them while the ledger that
stores them does I/O (``acquirer_sim.ledger``). The values are the text the
ledger column holds, so ledger files and the checker, which reads that text, see the same words.
"""

from __future__ import annotations

from enum import StrEnum

from possim.protocol.transitions import Transitions


class OriginalState(StrEnum):
    """Where the money of an original stands in the ledger (``originals.state``)."""

    #: Approved purchase: the amount left the card.
    DEBITED = "debited"
    #: Approved pre-authorization: the amount is held on the card.
    HELD = "held"
    #: A held pre-authorization completed: the hold released, the completion amount taken.
    CAPTURED = "captured"
    #: Declined by the issuer's decision (funds, limits); nothing moved.
    DECLINED = "declined"
    #: Refused because its key was closed first (a reversal or a not-found query came earlier).
    REFUSED = "refused"
    #: A debited or captured original given back (reversal, error handling).
    REVERSED = "reversed"
    #: A held pre-authorization's hold released (reversal, error handling).
    RELEASED = "released"
    #: CUP: the issuer has not answered yet; nothing moved.
    IN_PROGRESS = "in_progress"
    #: CUP: a reversal came while the issuer had not answered; the host reverses towards it when it does.
    CANCELLED = "cancelled"
    #: CUP: the issuer's answer came for a cancelled original, or never came (issuer timeout).
    ISSUER_REVERSED = "issuer_reversed"


_O = OriginalState
#: The legal moves of an original: booked approved, declined, refused or (CUP) in progress; an
#: approved one is given back once (reversed, released) or a hold captured once, then given back;
#: an in-progress one is settled by the issuer's answer or cancelled first. Everything else is final:
#: a reversed original is never debited again.
ORIGINAL_MOVES: Transitions[OriginalState] = Transitions(
    "ledger original", [_O.DEBITED, _O.HELD, _O.DECLINED, _O.REFUSED, _O.IN_PROGRESS], {
        _O.IN_PROGRESS: [_O.DEBITED, _O.HELD, _O.DECLINED, _O.CANCELLED, _O.ISSUER_REVERSED],
        _O.CANCELLED: [_O.ISSUER_REVERSED],
        _O.DEBITED: [_O.REVERSED],
        _O.HELD: [_O.CAPTURED, _O.RELEASED],
        _O.CAPTURED: [_O.REVERSED],
    })
#: States whose original still has the card's money (what a per-card limit counts).
TAKEN = (_O.DEBITED, _O.HELD, _O.CAPTURED)
