"""Terminal and host profiles: the one place a payment scheme's rules are written down.

A profile is what a scenario's ``profile = "cup"`` or ``--profile cup`` picks: the wire it speaks
(``protocol.dialects``), the defaults of a terminal's settings, how a terminal recovers a sale
whose answer did not come, and how a host answers. ``Profile`` is possim's generic ISO 8583
terminal and host (``iso``); ``CupProfile`` a China UnionPay POS terminal and its acquirer
(``cup``, ``docs/cup-wire.md``). The terminal (``pos_sim.terminal``), the host
(``acquirer_sim.host``) and the tools around them ask their profile, never its name, so a scheme
is one class registered in ``REGISTRY`` (``REGISTRY.added(MyProfile())`` for a block, in tests).

Pure module: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from possim.protocol import cup, dialects
from possim.protocol.dialects import Dialect
from possim.protocol.registry import Registry


@dataclass(frozen=True, slots=True)
class TerminalRules:
    """How a terminal of the profile's family runs its day, where that differs between families.

    The defaults are possim's generic terminal; ``CupProfile.rules`` what CUP terminals do.
    """

    #: Messages carry a batch number (CUP 60.2) and the batch closes (the number advances) after
    #: each settlement; without, the batch is every approved sale the journal holds.
    batch_numbers: bool = False
    #: Reversal reason (field 39) once a try was refused (CUP: 98 becomes 06); None keeps it.
    reason_after_refusal: str | None = None
    #: Sales one batch upload packs (CUP: 8 in field 48, then a batch-end upload, no second 0500,
    #: and the upload runs even when the batch balanced); 0: one 0320 per sale named by field 90,
    #: only when out of balance, then the totals once more.
    sales_per_upload: int = 0
    #: Completion advices still owed or given up are tried once more before the settlement.
    trickles_advices: bool = False
    #: Answer codes that mean "sign on again" (CUP: 77, and A0 for a MAC the host could not check).
    sign_on_again: frozenset[str] = frozenset({"77"})


ISO_RULES = TerminalRules()


class Profile:
    """possim's generic ISO 8583 terminal and host (``iso``); a scheme subclasses it and changes
    what differs.

    Reversal timeout under ``iso``: a reversal is a new message (new STAN, 0400 then 0401) naming
    the original in field 90; it is tried ``reversal_attempts`` times (6) with doubling backoff, then
    parked: still owed, shown as pending, sent again before the next sale.
    """

    #: The name scenarios and ``--profile`` use.
    name: str = "iso"
    #: The wire dialect (``protocol.dialects``) its terminal sends and its host answers in.
    dialect: str = "iso"

    # -- the defaults of a terminal's settings (a scenario or a command line that names one wins)
    #: ISO 4217 numeric currency of the terminal's sales.
    currency: str = "978"
    #: Reversal tries, the first included.
    reversal_attempts: int = 6
    #: The test card a scenario's sales use unless they name one (Luhn-valid).
    card: str = "4000000000000002"

    # -- terminal rules
    #: Where the terminal runs its day differently (batch numbers, packed uploads, sign on again...).
    rules: TerminalRules = ISO_RULES
    #: A reversal is a copy of the message it cancels (same STAN and time, reason in field 39);
    #: otherwise a new message naming it in field 90, repeated as 0401.
    reversal_copies_original: bool = False
    #: Field 39 of a reversal sent because no answer came, and because the answer's MAC failed;
    #: None: a reversal carries no reason.
    reason_no_answer: str | None = None
    reason_mac_error: str | None = None
    #: After the last try a reversal is handed to the acquirer (escalated, nothing more sent);
    #: otherwise it is parked, still owed.
    escalates_after_tries: bool = False
    #: A reversal still owed goes out before any other online message, due or not, every time.
    reversal_before_anything: bool = False
    #: A pre-authorization's completion is an online 0200 reversed when its answer does not come
    #: (the terminal's ``completion_advice`` setting can still ask for an advice); otherwise an advice.
    online_completion: bool = False
    #: The answer code that says "a copy of a request still in progress" and nothing about the sale:
    #: the terminal keeps waiting for the real answer. None: every answer is one.
    duplicate_in_progress: str | None = None
    #: Processing code (field 3) of a pre-authorization.
    preauth_processing_code: str = "000000"
    #: The sign-on answer hands out working keys (field 62) and the batch number (60.2), and the
    #: life's working MAK MACs every later message, both ways.
    working_keys: bool = False

    # -- host rules
    #: The answer to a request whose key (terminal, STAN, time) names another sale.
    key_conflict_code: str = "94"
    #: The answer when the issuer does not answer the acquirer.
    issuer_timeout_code: str = "91"
    #: The host records an original as in progress and debits when the issuer answers, and
    #: answers a repeated original ``duplicate_in_progress``; otherwise it debits on arrival and
    #: answers a repeat with the stored answer.
    waits_for_issuer: bool = False

    @property
    def wire(self) -> Dialect:
        """The dialect object: encode, decode, framing."""
        return dialects.get(self.dialect)

    def defaults(self) -> dict[str, object]:
        """The terminal settings this profile changes, for whatever builds a configuration."""
        return {"currency": self.currency, "reversal_attempts": self.reversal_attempts}

    def answer_dialect(self, request: str) -> str:
        """The dialect a host of this profile answers a request in ``request`` (``codec.dialect_of``) with."""
        return dialects.answer_like(self.dialect, request)

    def __repr__(self) -> str:
        return f"<profile {self.name}>"


class CupProfile(Profile):
    """A China UnionPay POS terminal and its acquirer (``docs/cup-wire.md``).

    What happens when a reversal times out under CUP: the reversal is the sale itself, copied
    (same STAN, same date and time in fields 13 and 12, card and amount), with the reason in field
    39: 98 when the sale's answer did not come, A0 when it came with a wrong MAC, and 06 once a
    try was refused (``rules.reason_after_refusal``). It is tried 3 times in all (冲正重发次数),
    the first included, with doubling backoff, and goes out before any other online message.
    When the third try times out or is refused the terminal stops: the reversal is escalated to
    the acquirer's error handling (``REVERSAL FAILED - CONTACT ACQUIRER``, journaled as
    ``escalated``) and nothing more is sent for it.

    Otherwise: CNY (156) and UnionPay cards, pre-authorization as 030000 completed online (0200),
    94 answers a copy still in progress, sign-on hands out working keys and the batch number.
    The host waits for the issuer before it debits, answers a key used by another sale 30 (a CUP
    terminal takes 94 as "keep waiting") and an issuer timeout 98.
    """

    name = "cup"
    dialect = "cup"
    currency = "156"
    reversal_attempts = 3
    card = "6212345678901232"
    rules = TerminalRules(batch_numbers=True, reason_after_refusal=cup.REASON_AFTER_REFUSAL,
                          sales_per_upload=cup.SALES_PER_UPLOAD, trickles_advices=True,
                          sign_on_again=cup.SIGN_ON_AGAIN_CODES)
    reversal_copies_original = True
    reason_no_answer = "98"
    reason_mac_error = "A0"
    escalates_after_tries = True
    reversal_before_anything = True
    online_completion = True
    duplicate_in_progress = "94"
    preauth_processing_code = "030000"
    working_keys = True
    key_conflict_code = "30"
    issuer_timeout_code = "98"
    waits_for_issuer = True


#: Every profile by name, ``iso`` (the default) first.
REGISTRY: Registry[Profile] = Registry("profile", lambda p: p.name)
REGISTRY.register(Profile())
REGISTRY.register(CupProfile())
#: The name the design uses for the same registry.
PROFILES = REGISTRY
DEFAULT = "iso"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` naming the choices for anything else."""
    return REGISTRY.get(name)
