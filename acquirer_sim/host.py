"""The acquirer host as a sans-IO state machine over its ledger.

Theory of operation: ``receive(now, bytes)`` handles one request and returns actions:
``Reply`` (bytes to send after a processing delay), trace events (``protocol.events``) and
``Crashed`` (the host is down until a time). The host never reads a clock or sleeps.

Rules kept here:
1. Idempotency on terminal id + STAN + transmission time: a duplicate original gets the
   stored response bytes again, never a second debit.
2. A reversal or a "not found" status answer for an original the host has not seen
   closes that key: the late original is refused, not debited.
3. Repeated reversals and advices are one operation: credited or captured once.
4. Crash after commit: the debit is stored, no reply leaves, requests arriving while the
   host is down are lost; after the restart everything is answered from the ledger.
5. Nobody can act for another terminal (``keys``: every terminal's MAC key). A request with a
   missing or wrong MAC is answered 63 (security violation) and changes nothing; a request
   whose field 41 is not the terminal the transport vouches for (``sender``: the MQTT topic's
   id, the id a TCP connection is bound to) is dropped unanswered. So only a terminal itself
   can debit, reverse, query or close one of its keys.
6. Field checks (``protocol.validation``) before anything else: a request that fails them, or
   that the codec cannot even decode (a missing field 7, a malformed field), is answered 30
   (format error) when it still names a request and a terminal, else dropped with an event; a
   reversal whose amount is not its original's is answered 13 and credits nothing. Either
   way nothing is written to the ledger.
7. A key is one sale: an original under a key already booked for another amount, card or MTI
   is answered 94 (30 under ``cup``), never with the stored answer, and books nothing.
8. Terminal lives. A terminal process signs on (0800) with its life number (field 60), a new
   one whenever it starts on a new journal; the host answers 00, remembers the life as the
   terminal id's current one, and says in field 48 (63 under ``cup``) whether the id had an
   earlier life (``EARLIER_LIFE``) or not (``FIRST_LIFE``). Once an id has signed on, a request
   without its current life (a restarted terminal that did not sign on, a copy from a dead
   earlier life) is answered 77 ("sign on again", CUP practice) and books nothing; an original
   under a key an earlier life booked is refused like rule 7, never answered with that life's
   stored answer; an answer that falls due after a newer life signed on is withheld
   (``withheld``). Ids that never signed on are served as before. The wallet gateway applies the
   same rule to wallet requests, from the same ``lives`` table (``acquirer_sim.wallet``, rule 6).
   Under ``cup`` with keys the sign-on answer also hands out the life's working keys in field 62
   (``protocol.cup.WorkingKeys``, encrypted under the terminal's key from the key file, its master
   key) and the batch number the terminal is to use in 60.2 (the one after the last batch it closed
   here, or its own when later); every later request of that life is checked, and answered, with
   the ``cup-ecb`` MAC under that life's MAK (``protocol.cup.derive_working_keys``: derived, not
   stored, so a restarted host knows them). The sign-on itself stays under the master key.
9. Every reply says whether its request was fresh (``Reply.fresh``): a request the host acted on
   for the first time. A copy of a request already answered (a duplicate original, reversal,
   advice or upload, a sign-on of the current life), a refusal and a status query or settlement (which the
   host keeps no record of) are not: a TCP connection is bound to a terminal only by a fresh one.

Under the ``cup`` profile (``HostConfig.profile``) the acquirer waits for the issuer: an
original is recorded ``in_progress`` on arrival and the host returns ``AwaitIssuer``; its
driver calls ``issuer_answered`` after the processing delay, and only then is the debit
committed and the answer sent. A status query meanwhile answers IN_PROGRESS; a reversal
meanwhile cancels it (the host reverses towards the issuer when it answers). A copy of an
original is answered 94 (duplicate transmission). In an issuer timeout window the answer is
98 (or 68) and the host reverses towards the issuer itself: no money moves.

Settlement (every profile): a 0500's batch totals are compared with the ledger's (answer 1
balanced, 2 out of balance, in field 48 of the 0510); each 0320 of the batch upload names a
sale, and a pre-authorization still held is captured then: its completion never got through.
A CUP terminal's batch is settled by the batch number each sale carried (60.2): a 0500 of batch
N counts the open sales that carried N or earlier (one that carried a later number waits for its
batch), and the batch end settles those that 0500 compared and those the terminal uploaded. A sale
the issuer approved after the 0500 (its answer late or lost, the terminal settled without it) stays
open for the batch the terminal puts it in once it learns of it (``Ledger.close_batch``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from possim.acquirer_sim.config import CrashRule, HostConfig
from possim.acquirer_sim.ledger_states import OriginalState
from possim.protocol import codec, cup, dialects
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol.cup import BatchTotals
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Key, Message
from possim.protocol.profiles import get_profile
from possim.protocol.registry import Registry
from possim.protocol.validation import identify, validate

if TYPE_CHECKING:  # the ledger is injected: the host never opens files or reads clocks itself
    from possim.acquirer_sim.ledger import Ledger, Original


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    delay: float
    mti: str
    stan: str
    rrn: str | None
    tid: str
    #: The request's MAC (or, without keys, its frame) proved its sender: a TCP connection may be
    #: bound to ``tid`` by it. False for a 63 answer, which goes back only where the request came from.
    authenticated: bool = True
    #: The host acted on the request for the first time (rule 9); a replay of an answered request is
    #: answered where it came from but binds no TCP connection to ``tid``.
    fresh: bool = True
    #: The key of the original whose booked answer this is (its first answer or a repeat of it),
    #: None for every other reply: the driver records in the ledger whether the transport took it.
    answers: Key | None = None


@dataclass(frozen=True, slots=True)
class Crashed:
    until: float


@dataclass(frozen=True, slots=True)
class AwaitIssuer:
    """CUP profile: call ``AcquirerHost.issuer_answered(now, key)`` after ``delay`` (the issuer's answer)."""

    delay: float
    key: Key


HostAction = Reply | Crashed | AwaitIssuer | ev.Event

#: Per-card limits (``HostConfig.card_amount_limit``, ``card_count_limit``): exceeds withdrawal
#: amount limit, exceeds withdrawal frequency limit.
AMOUNT_LIMIT, COUNT_LIMIT = "61", "65"
#: CUP profile: the answer to a copy of an original (duplicate transmission).
DUPLICATE_TRANSMISSION = "94"
#: Ledger states of a CUP original whose issuer has not answered yet (``cancelled``: a
#: reversal came first; the host reverses towards the issuer when it answers).
IN_PROGRESS, CANCELLED = OriginalState.IN_PROGRESS, OriginalState.CANCELLED

#: Ledger movements of an approved original and reversal outcomes, as trace events.
_MOVEMENT: dict[str, type[ev.LedgerMovement]] = {"hold": ev.LedgerHold, "debit": ev.LedgerDebit}
_REVERSAL: dict[str, type[ev.LedgerReversal]] = {
    "credited": ev.LedgerReversalCredited, "released": ev.LedgerReversalReleased,
    "nothing_to_reverse": ev.LedgerReversalNothingToReverse, "before_original": ev.LedgerReversalBeforeOriginal}

#: How far from an hour's edge (seconds) ``AcquirerHost._day_hour`` trusts the hour it worked out.
_EDGE_S = 0.001
#: ISO 8583 "invalid amount": the answer to a reversal whose field 4 is not its original's amount.
AMOUNT_MISMATCH = "13"
#: ISO 8583 "format error": the answer to a request that fails decoding or the field checks.
FORMAT_ERROR = "30"
#: "Sign on again" (CUP hosts answer 77 to a terminal that must sign on before it may go on;
#: ISO 8583:1987 leaves 77 to private use): a request from a life that is not the current one.
SIGN_ON_AGAIN = "77"
#: The sign-on answer's field 48 (63 under ``cup``): the terminal id had an earlier life, or not.
EARLIER_LIFE, FIRST_LIFE = "EARLIER_LIFE", "FIRST_LIFE"

#: status query answers (field 48) by ledger state.
_STATUS = {OriginalState.DEBITED: "APPROVED", OriginalState.HELD: "APPROVED", OriginalState.CAPTURED: "APPROVED",
           OriginalState.DECLINED: "DECLINED", OriginalState.REFUSED: "DECLINED", OriginalState.REVERSED: "REVERSED",
           OriginalState.RELEASED: "REVERSED", IN_PROGRESS: "IN_PROGRESS", CANCELLED: "REVERSED",
           OriginalState.ISSUER_REVERSED: "DECLINED"}
#: The state an original is booked in, by the money it moves (None: nothing, a decline).
_BOOKED = {"hold": OriginalState.HELD, "debit": OriginalState.DEBITED, None: OriginalState.DECLINED}


class AcquirerHost:
    """Sans-IO acquirer host. See the module docstring for its rules."""

    def __init__(self, config: HostConfig, ledger: Ledger, rng: random.Random,
                 keys: Mapping[str, MacKey] | None = None) -> None:
        self.config = config
        #: Every terminal's MAC key by terminal id; ``None`` runs without MACs (as before keys existed).
        self.keys = keys
        self.ledger = ledger
        self.rng = rng
        self.down_until = -1.0
        self.counts: Counter[str] = Counter()
        self._refusals = iter(config.reversal_answers)
        self._seq = ledger.original_count()
        #: Each terminal id's current life as last read or signed on (None: never signed on).
        self._lives: dict[str, str | None] = {}
        #: The dialect the answers to the request being handled are encoded in (``_answering``).
        #: The profile (``protocol.profiles``): how this host's scheme answers.
        self.profile = get_profile(config.profile)
        self._answer_in = self.profile.dialect
        #: CUP working MAKs by (terminal id, life), derived once each (``_working_mak``).
        self._working: dict[tuple[str, str], MacKey | None] = {}
        #: The hour ``_day_hour`` worked out last: (epoch, first and last ``now`` it covers, DDDhh).
        self._hour: tuple[datetime | None, float, float, str] = (None, 0.0, -1.0, "")
        for pan, balance in config.accounts.items():
            ledger.open_account(pan, balance)

    def receive(self, now: float, data: bytes, sender: str | None = None) -> list[HostAction]:
        """Handle one request. ``sender``: the terminal id the transport vouches for, if any."""
        self._answering(data)
        if now < self.down_until:
            return [ev.HostDownDrop(codec.peek_mti(data))]
        try:
            msg = codec.decode(data, self.checking_keys(data))
        except codec.MacError as exc:
            return self._security(exc, sender)
        except ProtocolError as exc:  # not decodable: answer 30 if the frame still names its sender
            return self._undecodable(now, data, str(exc), sender)
        if sender is not None and msg.tid != sender:
            return [ev.IdentityMismatch(*_f(msg), sender=sender)]
        if msg.mti not in M.REQUESTS:
            return [ev.UnexpectedMessage(msg.mti, msg.stan)]
        problem = validate(msg)
        if problem is not None:
            return [ev.FormatErrorAnswered(*_f(msg), reason=problem), self._reply(msg, FORMAT_ERROR)]
        return self._request(now, msg)

    def _undecodable(self, now: float, data: bytes, reason: str, sender: str | None) -> list[HostAction]:
        """A frame the codec refuses (a missing field 7, a field that breaks its format).

        When it still names a request and a terminal (``validation.identify``) it is answered 30
        (format error), so the sender is not left to its own timeout; nothing is booked either way.
        The answer goes back only where the frame came from (``authenticated=False``: a frame the
        host could not read proves nobody, and binds no TCP connection). It carries no MAC
        (``_unsigned_reply``: its fields are the sender's choice), so a terminal with keys takes it
        as no answer and recovers as after silence; tools without keys read it. With keys, a frame
        naming a terminal without a key is dropped, as a frame with a wrong MAC from such a
        terminal is (``_security``). Garbage that names nobody is dropped with a
        ``malformed_frame`` event.
        """
        msg = identify(data, self._transmission(now))
        if msg is None:
            return [ev.MalformedFrame("host", reason)]
        if sender is not None and msg.tid != sender:
            return [ev.IdentityMismatch(*_f(msg), sender=sender)]
        if self.keys is not None and msg.tid not in self.keys:
            return [ev.RequestDropped(msg.mti, f"{reason}; no MAC key for terminal {msg.tid!r}: cannot answer",
                                      tid=msg.tid, stan=msg.stan)]
        return [ev.FormatErrorAnswered(*_f(msg), reason=reason), self._unsigned_reply(msg, FORMAT_ERROR)]

    def _request(self, now: float, msg: Message) -> list[HostAction]:
        """Hand a request that passed the checks to its MTI's handler (``HANDLERS``).

        A request MTI without a handler (a message kind registered without one) is dropped on
        purpose, with a ``request_dropped`` event saying so: no answer, nothing booked."""
        handler = HANDLERS.get(msg.mti) if msg.mti in HANDLERS else None
        if handler is None:
            return [ev.RequestDropped(msg.mti, f"no host handler for MTI {msg.mti}", tid=msg.tid, stan=msg.stan)]
        if handler.checks_life:
            current = self._current_life(msg.tid)
            if current is not None and msg.life != current:
                return self._life_refused(msg, current)
        return handler.handle(self, now, msg)

    def reply(self, msg: Message, rc: str, **fields: object) -> Reply:
        """The answer to ``msg`` with response code ``rc`` (and ``fields``), encoded and MACed as
        every answer is: for host handlers registered from outside this module."""
        return self._reply(msg, rc, **fields)

    def _upload(self, now: float, msg: Message) -> list[HostAction]:
        """A batch upload: CUP's packed sales or batch end, or one sale named by field 90."""
        if msg.uploads is not None:
            return self._packed_upload(now, msg)
        return _named(AcquirerHost._batch_upload)(self, now, msg)

    def _security(self, exc: codec.MacError, sender: str | None) -> list[HostAction]:
        """A MAC that proves nothing: answer 63 where the frame came from, without a MAC, change nothing.

        Unanswered when the transport vouches for another terminal (the reply would reach the
        impersonated one), when no key exists for the name, or when the frame is no request.
        """
        msg = exc.message
        if sender is not None and msg.tid != sender:
            return [ev.IdentityMismatch(*_f(msg), sender=sender)]
        answerable = not isinstance(exc, codec.UnknownTerminalError) and msg.mti in M.REQUESTS
        event = ev.SecurityViolation(*_f(msg), reason=str(exc), answered=answerable)
        if not answerable:
            return [event]
        return [event, self._unsigned_reply(msg, codec.SECURITY_VIOLATION)]

    # -- CUP working keys (rule 8) -----------------------------------------------------------

    def checking_keys(self, data: bytes) -> codec.Keys | None:
        """The key a request's MAC is checked with: its life's working MAK after a CUP sign-on, else
        the terminal's key from the key file (a sign-on, a terminal without a life, an ISO host)."""
        if self.keys is None or not self.profile.working_keys:
            return self.keys
        try:
            msg = codec.decode(data)
        except ProtocolError:
            return self.keys
        mak = self._working_mak(msg)
        return self.keys if mak is None else mak

    def _working_mak(self, msg: Message) -> MacKey | None:
        """The ``cup-ecb`` MAK the sign-on of ``msg``'s life handed out; None for a sign-on and its
        answer, a message without a life, or a terminal without a usable master key."""
        if msg.life is None or msg.mti in (M.SIGN_ON, M.SIGN_ON_RESPONSE) or self.keys is None:
            return None
        at = (msg.tid, msg.life)
        if at not in self._working:
            keys = self._working_keys(msg.tid, msg.life)
            self._working[at] = None if keys is None else MacKey(cup.WORKING_MAC, keys.mak)
        return self._working[at]

    def _working_keys(self, tid: str, life: str) -> cup.WorkingKeys | None:
        tmk = self.keys.get(tid) if self.keys is not None and self.profile.working_keys else None
        if tmk is None or len(tmk.secret) not in cup.TMK_LENGTHS:
            return None
        return cup.derive_working_keys(tmk.secret, tid, life)

    def _sign_on_fields(self, msg: Message) -> dict[str, object]:
        """CUP: what the 0810 hands out besides 00: the life's working keys (field 62, under the
        terminal's master key) and the batch number it is to use (60.2)."""
        fields: dict[str, object] = {}
        if self.profile.rules.batch_numbers:
            closed = self.ledger.last_batch(msg.tid)
            own = int(msg.batch) if msg.batch is not None else 1
            fields["batch"] = f"{max(own, closed % 999_999 + 1 if closed else 1):06d}"
        assert msg.life is not None
        keys = self._working_keys(msg.tid, msg.life)
        if keys is not None and self.keys is not None:
            fields["working_keys"] = keys.to_field62(self.keys[msg.tid].secret)
        return fields

    # -- terminal lives (rule 8) -------------------------------------------------------------

    def _current_life(self, tid: str) -> str | None:
        if tid not in self._lives:
            life = self.ledger.life(tid)
            self._lives[tid] = life.life if life is not None else None
        return self._lives[tid]

    def _sign_on(self, now: float, msg: Message) -> list[HostAction]:
        """A terminal starts (or resumes) a life: answer 00, saying whether the id had an earlier life.

        A new life is written to the ledger and its answer is fresh. The current life signing on
        again (a terminal resuming its journal, or a copy of an earlier sign-on: the host cannot
        tell them apart and keeps no record of either) changes nothing and is not fresh: it binds
        no TCP connection, the terminal's next sale does."""
        assert msg.life is not None  # validation: field 60 is required in a sign-on
        current = self.ledger.life(msg.tid)
        if current is not None and current.life != msg.life and self.ledger.sign_on_seen(msg.key(), msg.life):
            return self._copied_sign_on(msg, current.life)
        self.ledger.note_sign_on(msg.tid, msg.stan, msg.transmission, msg.life)
        fresh = current is None or current.life != msg.life
        earlier = current.earlier if current is not None and not fresh else (
            current is not None or self.ledger.has_sales(msg.tid))
        if fresh:
            self.ledger.sign_on(now, msg.tid, msg.life, earlier, msg.stan, msg.transmission)
            self._lives[msg.tid] = msg.life
        previous = current.life if current is not None and fresh else None
        answer = self._reply(msg, "00", status=EARLIER_LIFE if earlier else FIRST_LIFE, **self._sign_on_fields(msg))
        return [ev.SignOnAnswered(*_f(msg), life=msg.life, previous=previous, earlier=earlier),
                replace(answer, fresh=fresh)]

    def _copied_sign_on(self, msg: Message, current: str) -> list[HostAction]:
        """A copy of a sign-on the host took from a life that has ended since: no new life.

        Every sign-on of a terminal has a STAN and field 7 of its own, so its key never repeats;
        this one's does: its bytes were sent before (a wiretap's replay, or a late copy). Taken as a
        sign-on it would make the ended life current again, and every request of the terminal now
        selling would be answered 77 (wallet requests 20000) for as long as a stranger repeats it,
        with the genuine MAC it copied, and the copy would bind the stranger's TCP connection to the
        terminal id. Refused as a key used for something else is (94, 30 under ``cup``), nothing
        written, nothing bound."""
        rc = self.profile.key_conflict_code
        reason = f"a copy of an earlier sign-on of life {msg.life}, which is not the current life {current}"
        return [ev.LifeRefused(*_f(msg), life=msg.life, current=current, reason=reason, rc=rc),
                replace(self._reply(msg, rc), fresh=False)]

    def _life_refused(self, msg: Message, current: str) -> list[HostAction]:
        """A request that is not from the id's current life: 77, nothing booked, nothing bound."""
        reason = ("no life number: the terminal did not sign on" if msg.life is None
                  else f"life {msg.life} is not the current life {current}")
        return [ev.LifeRefused(*_f(msg), life=msg.life, current=current, reason=reason, rc=SIGN_ON_AGAIN),
                replace(self._reply(msg, SIGN_ON_AGAIN), fresh=False)]

    # -- financial originals --------------------------------------------------------------

    def _original(self, now: float, msg: Message) -> list[HostAction]:
        if self.profile.online_completion and msg.mti == M.PURCHASE and msg.original is not None:
            return self._advice(now, msg)  # CUP: a pre-auth completion is an online 0200 naming its pre-auth
        key = msg.key()
        seen, closure, available = self.ledger.lookup(key, msg.pan or "")
        conflict = _conflict(seen, msg) if seen is not None else None
        if seen is not None and conflict is None and msg.life is not None and self.ledger.key_life(key) != msg.life:
            conflict = f"key used by another life than {msg.life}"  # rule 8: never an earlier life's answer
        if seen is not None and conflict is not None:
            return self._key_conflict(msg, seen, conflict)
        in_progress = self.profile.duplicate_in_progress
        if seen is not None and self.profile.waits_for_issuer and in_progress is not None:
            self.ledger.count_duplicate(key)
            return [ev.DuplicateOriginal(*_f(msg), rrn=seen.rrn, rc=in_progress),
                    replace(self._reply(msg, in_progress), fresh=False)]
        if seen is not None:
            self.ledger.count_duplicate(key)
            response = seen.response
            if response is None:  # committed, then crashed before replying: answer from the ledger now
                response = self._encode(msg.response(seen.response_code, rrn=seen.rrn, auth_code=seen.auth_code))
                self.ledger.attach_response(key, response)
            return [ev.DuplicateOriginal(*_f(msg), rrn=seen.rrn, rc=seen.response_code),
                    Reply(response, self._delay(True), M.response_to(msg.mti), msg.stan, seen.rrn, msg.tid,
                          fresh=False, answers=key)]
        self.counts[msg.mti] += 1
        pan, amount = msg.pan or "", msg.amount or 0
        if self.profile.waits_for_issuer and not closure:
            return self._ask_issuer(now, msg)
        rc = "12" if closure else self._decide(now, pan, amount, available)
        rrn, auth = self._ids(now) if rc == "00" else (None, None)
        movement = ("hold" if msg.mti == M.AUTH else "debit") if rc == "00" else None
        state = OriginalState.REFUSED if closure else _BOOKED[movement]
        crash = self._crash_rule(msg.mti)
        response = None if crash else self._encode(msg.response(rc, rrn=rrn, auth_code=auth))
        self.ledger.record(now, key, msg.mti, pan, amount, rrn, auth, rc, state, movement, response, msg.life,
                           msg.batch)
        actions: list[HostAction] = [ev.LateOriginalRefused(*_f(msg), reason=closure)] if closure else []
        if movement:
            actions.append(_MOVEMENT[movement](*_f(msg), rrn=rrn, pan=mask_pan(pan), amount=amount))
        else:
            actions.append(ev.LedgerDeclined(*_f(msg), rc=rc))
        if crash is not None:
            self.down_until = now + crash.down_for
            return [*actions, ev.HostCrashed(*_f(msg), until=self.down_until), Crashed(self.down_until)]
        assert response is not None
        return [*actions, Reply(response, self._delay(False), M.response_to(msg.mti), msg.stan, rrn, msg.tid,
                                answers=key)]

    def _key_conflict(self, msg: Message, seen: Original, reason: str) -> list[HostAction]:
        """Rule 1's key names another sale: refused, never answered with that sale's approval.

        The key (terminal id, STAN, field 7) repeats when a terminal lost its journal and its
        clock was set back: a new sale of 500.00 would otherwise get the stored approval of 30.00
        and show APPROVED with nothing debited. 94 (duplicate transmission) says what happened:
        the key was already used; possim's ISO terminal shows it as a decline. Under ``cup`` the
        answer is 30: a CUP terminal takes 94 as "a copy still in progress, keep waiting", would
        time out and reverse the key, and that reversal names the other sale. Nothing is booked
        and the other sale's row is left as it was (this is no repeat of it).
        """
        rc = self.profile.key_conflict_code
        event = ev.DuplicateKeyConflict(*_f(msg), reason=reason, amount=msg.amount or 0, original_amount=seen.amount,
                                        pan=mask_pan(msg.pan or ""), rc=rc)
        return [event, replace(self._reply(msg, rc), fresh=False)]

    # -- CUP: the issuer's answer commits ---------------------------------------------------

    def _ask_issuer(self, now: float, msg: Message) -> list[HostAction]:
        """Record the original as in progress (nothing moves yet) and wait for the issuer."""
        pan, amount = msg.pan or "", msg.amount or 0
        # kept in the dialect it came in: CUP fields such as the batch (60.2) are echoed in the answer
        self.ledger.record(now, msg.key(), msg.mti, pan, amount, None, None, "09", IN_PROGRESS, None,
                           codec.encode(msg, None, self._answer_in), msg.life, msg.batch)
        return [ev.IssuerRequested(*_f(msg)), AwaitIssuer(self._delay(False), msg.key())]

    def issuer_answered(self, now: float, key: Key) -> list[HostAction]:
        """The issuer's answer to an in-progress original: commit, then answer the terminal."""
        orig = self.ledger.find(key)
        if orig is None or orig.state not in (IN_PROGRESS, CANCELLED) or orig.response is None:
            return []
        self._answering(orig.response)
        msg = codec.decode(orig.response)  # the request, kept while in progress
        timed_out = any(now in w for w in self.config.issuer_timeouts)
        rc = self.config.issuer_timeout_code if timed_out else self._decide(now, orig.pan, orig.amount)
        if orig.state == CANCELLED or timed_out:
            self.ledger.settle_in_progress(now, key, rc, OriginalState.ISSUER_REVERSED, None, None, None, None)
            reason = "cancelled by the terminal's reversal" if orig.state == CANCELLED else "issuer timeout"
            actions: list[HostAction] = [ev.IssuerReversed(*_f(msg), rc=rc, reason=reason)]
            return actions if orig.state == CANCELLED else [*actions, self._answer(msg, rc, None, None, False)]
        rrn, auth = self._ids(now) if rc == "00" else (None, None)
        movement = ("hold" if msg.mti == M.AUTH else "debit") if rc == "00" else None
        state = _BOOKED[movement]
        response = self._encode(msg.response(rc, rrn=rrn, auth_code=auth))
        self.ledger.settle_in_progress(now, key, rc, state, movement, rrn, auth, response)
        moved: HostAction = (_MOVEMENT[movement](*_f(msg), rrn=rrn, pan=mask_pan(orig.pan), amount=orig.amount)
                              if movement else ev.LedgerDeclined(*_f(msg), rc=rc))
        crash = self._crash_rule(msg.mti)
        if crash is not None:
            self.down_until = now + crash.down_for
            return [moved, ev.HostCrashed(*_f(msg), until=self.down_until), Crashed(self.down_until)]
        return [moved, Reply(response, 0.0, M.response_to(msg.mti), msg.stan, rrn, msg.tid, answers=key)]

    def withheld(self, reply: Reply) -> ev.AnswerWithheld | None:
        """An answer to an original whose life is no longer the terminal's current one (rule 8): a
        newer life signed on while it waited (a killed terminal's restart). It is not sent: the
        TCP host would fall back to the new life's connection, which never asked for it."""
        if reply.answers is None:
            return None
        current = self._current_life(reply.tid)
        life = self.ledger.key_life(reply.answers) if current is not None else None
        if life is None or life == current:
            return None
        assert current is not None
        return ev.AnswerWithheld(reply.tid, reply.stan, reply.mti, life=life, current=current)

    def delivered(self, now: float, key: Key, handed: bool) -> None:
        """The transport took the answer to the original under ``key`` (``handed``), or had no way to
        the terminal: a fact for the ledger, so a check can tell a sale the till saw from one it never did."""
        self.ledger.record_delivery(now, key, handed)

    def _answer(self, msg: Message, rc: str, rrn: str | None, auth: str | None, quick: bool) -> Reply:
        data = self._encode(msg.response(rc, rrn=rrn, auth_code=auth))
        return Reply(data, self._delay(True) if quick else 0.0, M.response_to(msg.mti), msg.stan, rrn, msg.tid)

    def _decide(self, now: float, pan: str, amount: int, available: int | None = None) -> str:
        """The answer to a sale; ``available``: the card's money as just read, None to read it here
        (an account not yet opened is opened then)."""
        if any(now in w for w in self.config.issuer_unavailable):
            return "91"
        if pan in self.config.decline_codes:
            return self.config.decline_codes[pan]
        over = self.config.decline_over
        if pan in self.config.decline_pans or (over is not None and amount > over):
            return "05"
        limit = self._limit(pan, amount)
        if limit is not None:
            return limit
        if amount > (self.ledger.available(pan) if available is None else available):
            return "51"
        return "00"

    def _limit(self, pan: str, amount: int) -> str | None:
        """61 when the sale would take the card past its amount limit, 65 past its count limit
        (CUP codes); read from the ledger only when a limit is set, so hosts without one pay nothing."""
        amount_limit, count_limit = self.config.card_amount_limit, self.config.card_count_limit
        if amount_limit is None and count_limit is None:
            return None
        count, taken = self.ledger.card_usage(pan)
        if amount_limit is not None and taken + amount > amount_limit:
            return AMOUNT_LIMIT
        if count_limit is not None and count + 1 > count_limit:
            return COUNT_LIMIT
        return None

    def _crash_rule(self, mti: str) -> CrashRule | None:
        for rule in self.config.crash_after_commit:
            if rule.mti == mti and rule.nth == self.counts[mti]:
                return rule
        return None

    # -- reversals, advices, status queries -----------------------------------------------

    def _reversal(self, now: float, msg: Message) -> list[HostAction]:
        """A reversal names its original in field 90, or (CUP) is a copy of it: same key."""
        refusal = next(self._refusals, None)
        if refusal is not None:  # a scenario's refusal: answered, nothing credited, nothing recorded
            return [ev.ReversalRefused(*_f(msg), rc=refusal), self._reply(msg, refusal)]
        key = msg.original.key(msg.tid) if msg.original is not None else msg.key()
        earlier = self.ledger.reversal_seen(key)
        if earlier is not None:
            return [ev.DuplicateReversal(*_f(msg)), replace(self._reply(msg, earlier), fresh=False)]
        orig = self.ledger.find(key)
        if orig is not None and msg.amount != orig.amount:  # a reversal takes back exactly what was taken
            return [ev.ReversalAmountMismatch(*_f(msg), amount=msg.amount or 0, original_amount=orig.amount),
                    self._reply(msg, AMOUNT_MISMATCH)]
        outcome, rc = self._reverse(now, key, orig)
        self.ledger.record_reversal(now, key, outcome, rc)
        return [_REVERSAL[outcome](*_f(msg), orig_stan=key[1], rrn=orig.rrn if orig else None),
                self._reply(msg, rc)]

    def _reverse(self, now: float, key: Key, orig: Original | None) -> tuple[str, str]:
        if orig is None:
            self.ledger.close_key(now, key, "reversal_before_original")
            return "before_original", "25"
        if orig.state == IN_PROGRESS:  # CUP: the issuer has not answered; nothing is debited
            self.ledger.transition(now, orig, CANCELLED, [])
            return "nothing_to_reverse", "00"
        if orig.state is OriginalState.DEBITED:
            self.ledger.transition(now, orig, OriginalState.REVERSED, [("credit", orig.amount)])
            return "credited", "00"
        if orig.state is OriginalState.HELD:
            self.ledger.transition(now, orig, OriginalState.RELEASED, [("release", orig.amount)])
            return "released", "00"
        if orig.state is OriginalState.CAPTURED:
            captured = self.ledger.captured(key)
            self.ledger.transition(now, orig, OriginalState.REVERSED, [("credit", captured)])
            return "credited", "00"
        return "nothing_to_reverse", "00"

    def _advice(self, now: float, msg: Message) -> list[HostAction]:
        assert msg.original is not None
        key = msg.original.key(msg.tid)
        earlier = self.ledger.advice_seen(key)
        if earlier is not None:
            return [ev.DuplicateAdvice(*_f(msg)), replace(self._reply(msg, earlier), fresh=False)]
        orig = self.ledger.find(key)
        amount = msg.amount or 0
        if orig is None or orig.state is not OriginalState.HELD or amount > orig.amount:
            rc = "25" if orig is None else "12"
            self.ledger.record_advice(now, key, amount, rc)
            return [ev.AdviceRejected(*_f(msg), rc=rc), self._reply(msg, rc)]
        self.ledger.transition(now, orig, OriginalState.CAPTURED, [("release", orig.amount), ("capture", amount)])
        self.ledger.record_advice(now, key, amount, "00")
        return [ev.LedgerCapture(*_f(msg), rrn=orig.rrn, amount=amount), self._reply(msg, "00")]

    # -- settlement (0500) and batch upload (0320) ----------------------------------------

    def _settlement(self, now: float, msg: Message) -> list[HostAction]:
        """Compare the terminal's batch totals with the ledger's; answer 1 (balanced) or 2 (out of
        balance) in field 48 of the 0510. Settlement moves no money: an upload may. A CUP 0500 is
        noted with its batch number: its batch end settles what it compared."""
        theirs = BatchTotals.from_field48(msg.batch_totals or "")  # 62 digits: checked by the codec
        if msg.batch is not None:
            self.ledger.note_settlement(now, msg.tid, msg.batch)
        amount, count = self.ledger.batch_totals(msg.tid, batch=msg.batch)  # CUP: the sales of batch 60.2
        balanced = (theirs.debit_amount, theirs.debit_count, theirs.credit_amount, theirs.credit_count) == (
            amount, count, 0, 0)
        answer = replace(theirs, answer="1" if balanced else "2")
        return [ev.SettlementChecked(*_f(msg), terminal_amount=theirs.debit_amount, terminal_count=theirs.debit_count,
                                     host_amount=amount, host_count=count, balanced=balanced),
                replace(self._reply(msg, "00", batch_totals=answer.to_field48()), fresh=False)]

    def _batch_upload(self, now: float, msg: Message) -> list[HostAction]:
        """One sale the terminal approved, named by field 90. A pre-authorization still held whose
        completion never got through online is captured now (the upload is its last chance)."""
        assert msg.original is not None
        key, amount = msg.original.key(msg.tid), msg.amount or 0
        earlier = self.ledger.batch_upload_seen(key)
        if earlier is not None:
            return [ev.BatchUploadReceived(*_f(msg), orig_stan=key[1], amount=amount, outcome="repeat"),
                    replace(self._reply(msg, earlier), fresh=False)]
        orig = self.ledger.find(key)
        actions: list[HostAction] = []
        if orig is None:
            outcome, rc = "unknown", "25"
        elif orig.state is OriginalState.HELD and amount <= orig.amount:
            self.ledger.transition(now, orig, OriginalState.CAPTURED, [("release", orig.amount), ("capture", amount)])
            actions.append(ev.LedgerCapture(*_f(msg), rrn=orig.rrn, amount=amount))
            outcome, rc = "captured", "00"
        else:
            outcome, rc = "matched", "00"
        self.ledger.record_batch_upload(now, key, amount, outcome, rc)
        rrn = orig.rrn if orig is not None else None
        return [*actions, ev.BatchUploadReceived(*_f(msg), orig_stan=key[1], amount=amount, outcome=outcome, rrn=rrn),
                self._reply(msg, rc)]

    def _packed_upload(self, now: float, msg: Message) -> list[HostAction]:
        """CUP: sales packed in field 48 (named by trace number and card), or the batch end (60.3
        202/207), which closes the batch: its sales leave the next settlement's totals."""
        assert msg.uploads is not None
        if msg.network_code in (cup.BATCH_END_BALANCED, cup.BATCH_END_UNBALANCED):
            settled = self.ledger.close_batch(now, msg.tid, msg.batch or "")
            return [ev.BatchEndReceived(*_f(msg), batch=msg.batch or "", uploaded=msg.uploads, settled=settled),
                    self._reply(msg, "00")]
        try:
            sales = cup.unpack_uploads(msg.uploads)
        except ProtocolError as exc:
            return [ev.FormatErrorAnswered(*_f(msg), reason=str(exc)), self._reply(msg, FORMAT_ERROR)]
        actions: list[HostAction] = []
        for sale in sales:
            orig = self.ledger.find_sale(msg.tid, sale.stan, sale.pan)
            outcome = "unknown" if orig is None else "matched"
            if orig is not None:
                self.ledger.record_batch_upload(now, orig.key, sale.amount, outcome, "00")
            actions.append(ev.BatchUploadReceived(*_f(msg), orig_stan=sale.stan, amount=sale.amount, outcome=outcome,
                                                  rrn=orig.rrn if orig is not None else None))
        return [*actions, self._reply(msg, "00")]

    def _query(self, now: float, msg: Message) -> list[HostAction]:
        assert msg.original is not None
        key = msg.original.key(msg.tid)
        orig = self.ledger.find(key)
        if orig is None:
            self.ledger.close_key(now, key, "query_not_found")
            status = "NOT_FOUND"
        else:
            status = _STATUS[orig.state]
        fields = {"rrn": orig.rrn, "auth_code": orig.auth_code, "amount": orig.amount} if orig else {}
        return [ev.StatusAnswered(*_f(msg), status=status, orig_stan=key[1]),
                replace(self._reply(msg, "00", status=status, **fields), fresh=False)]

    # -- helpers --------------------------------------------------------------------------

    def _reply(self, msg: Message, rc: str, **fields: object) -> Reply:
        response = msg.response(rc, **fields)
        return Reply(self._encode(response), self._delay(True), response.mti, msg.stan, response.rrn, msg.tid)

    def _unsigned_reply(self, msg: Message, rc: str) -> Reply:
        """The answer to a frame that proved nothing (its MAC failed, or it could not be decoded): without a
        MAC, sent back only where the frame came from, binding nothing. Its fields are the sender's choice
        (STAN, field 7, amount), so a MAC on it would let anyone without the key have the host sign a 63
        or 30 that matches a sale of the terminal in flight: handed to that terminal instead of the host's
        approval, it showed a declined sale that was debited, and no policy reversed it. A terminal
        with keys takes this answer as no answer; its timer runs on and its policy recovers."""
        response = msg.response(rc)
        return Reply(codec.encode(response, None, self._answer_in), self._delay(True), response.mti, msg.stan,
                     response.rrn, msg.tid, authenticated=False)

    def _answering(self, request: bytes) -> None:
        """Answer ``request`` in the profile's dialect (a CUP host answers CUP bytes; requests are read
        in any, from the bytes), or in the request's own when it is a form of that one: an ISO host
        answers a request with binary bitmaps (``iso-binary``) with binary bitmaps, so its sender can
        read the answer (``Profile.answer_dialect``)."""
        self._answer_in = self.profile.answer_dialect(codec.dialect_of(request))

    def _encode(self, response: Message) -> bytes:
        """A response carries the MAC of the terminal it answers (when the host has keys; under ``cup``
        after a sign-on, the life's working MAK), in the dialect ``_answering`` chose for the request."""
        return dialects.get(self._answer_in).encode(response, self.answer_key(response))

    def answer_key(self, response: Message) -> MacKey | None:
        """The key an answer is MACed with: the life's working MAK under ``cup`` after its sign-on (an
        answer copies its request's life), else the terminal's key from the key file; None without keys."""
        key = self.keys.get(response.tid) if self.keys is not None else None
        mak = self._working_mak(response) if self.profile.working_keys else None
        return mak or key

    def _transmission(self, now: float) -> str:
        """``now`` as the host's own field 7 (MMDDhhmmss), for an answer to a request without one."""
        return (self.config.epoch + timedelta(seconds=now)).strftime("%m%d%H%M%S")

    def _delay(self, quick: bool) -> float:
        return (self.config.quick if quick else self.config.processing).sample(self.rng)

    def _ids(self, now: float) -> tuple[str, str]:
        """RRN (field 37): Julian day, hour, sequence; auth code (38): from the same sequence."""
        self._seq += 1
        return f"{self._day_hour(now)}{self._seq % 10**7:07d}", f"A{self._seq % 10**5:05d}"

    def _day_hour(self, now: float) -> str:
        """The Julian day and hour (DDDhh) of ``epoch + now``, worked out once an hour.

        The hour last worked out is kept with the span of ``now`` it covers, less a millisecond at
        either end: ``now`` near an hour's edge, where rounding to microseconds could tip it into the
        next hour, is worked out again, so every RRN reads as one from the date arithmetic would."""
        epoch, (of, first, last, text) = self.config.epoch, self._hour
        if of is epoch and first <= now <= last:
            return text
        t = epoch + timedelta(seconds=now)
        start = now - (t - t.replace(minute=0, second=0, microsecond=0)).total_seconds()
        text = f"{t.timetuple().tm_yday:03d}{t.hour:02d}"
        self._hour = (epoch, start + _EDGE_S, start + 3600 - _EDGE_S, text)
        return text


@dataclass(frozen=True, slots=True)
class HostHandler:
    """What the host does with one request MTI (the host's side of a message kind)."""

    #: The request MTI (a repeat MTI has its own entry).
    mti: str
    handle: Callable[[AcquirerHost, float, Message], list[HostAction]]
    #: Refuse (77) a request that is not from the terminal id's current life first (rule 8);
    #: False for the sign-on, which starts a life.
    checks_life: bool = True


def _method(name: str) -> Callable[[AcquirerHost, float, Message], list[HostAction]]:
    """The host's own method ``name``, looked up on the instance when a request arrives, so a
    subclass that overrides it (a conform test's broken host, certify's ``MagicHost``) is the one
    that handles the request."""
    def handle(host: AcquirerHost, now: float, msg: Message) -> list[HostAction]:
        method: Callable[[float, Message], list[HostAction]] = getattr(host, name)
        return method(now, msg)
    handle.__name__ = name
    return handle


def _named(handle: Callable[[AcquirerHost, float, Message], list[HostAction]]
           ) -> Callable[[AcquirerHost, float, Message], list[HostAction]]:
    """``handle`` for a request that must name its original in field 90; without it the frame is malformed."""
    def named(host: AcquirerHost, now: float, msg: Message) -> list[HostAction]:
        if msg.original is None:
            return [ev.MalformedFrame("host", f"MTI {msg.mti} without field 90")]
        return handle(host, now, msg)
    return named


#: The host's handler by request MTI: ``receive`` dispatches through it and nothing else. A new
#: message kind registers its handler here (``HANDLERS.added`` in a test).
HANDLERS: Registry[HostHandler] = Registry("host handler", lambda h: h.mti)
for _handler in (
    HostHandler(M.SIGN_ON, _method("_sign_on"), checks_life=False),
    HostHandler(M.PURCHASE, _method("_original")),
    HostHandler(M.AUTH, _method("_original")),
    HostHandler(M.REVERSAL, _method("_reversal")),
    HostHandler(M.REVERSAL_REPEAT, _method("_reversal")),
    HostHandler(M.SETTLEMENT, _method("_settlement")),
    HostHandler(M.BATCH_UPLOAD, _method("_upload")),
    HostHandler(M.ADVICE, _named(_method("_advice"))),
    HostHandler(M.ADVICE_REPEAT, _named(_method("_advice"))),
    HostHandler(M.STATUS_QUERY, _named(_method("_query"))),
):
    HANDLERS.register(_handler)


def _conflict(seen: Original, msg: Message) -> str | None:
    """How an original under an already used key differs from the sale booked under it (another
    MTI, amount or card), or None for a true repeat, which gets the stored answer."""
    if msg.mti != seen.mti:
        return f"MTI {msg.mti} != {seen.mti}"
    amount = msg.amount or 0
    if amount != seen.amount:
        return f"amount {_money(amount)} != {_money(seen.amount)}"
    if (msg.pan or "") != seen.pan:
        return f"card {mask_pan(msg.pan or '')} != {mask_pan(seen.pan)}"
    return None


def _money(minor: int) -> str:
    """Minor units as people read them (2500 -> "25.00")."""
    return f"{minor // 100}.{minor % 100:02d}"


def _f(msg: Message) -> tuple[str, str, str]:
    """The ``tid``, ``stan`` and ``mti`` every host event about a request carries."""
    return msg.tid, msg.stan, msg.mti


def mask_pan(pan: str) -> str:
    """A card number as logs and reports show it: first six and last four digits (PCI DSS 3.4)."""
    if len(pan) < 13:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
