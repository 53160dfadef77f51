"""Terminal settings: identity, timers and the recovery policy of one run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.pos_sim.policies import RecoveryPolicy, get_policy
from possim.protocol.profiles import Profile as Scheme
from possim.protocol.profiles import get_profile

#: A policy name: any name ``pos_sim.policies.REGISTRY`` holds when the config is made (checked
#: in ``__post_init__``, not frozen into a type, so a policy registered later is valid).
Policy = str


def __getattr__(name: str) -> tuple[str, ...]:
    """``POLICIES``, the policy names kept for older imports, is asked of the registry when read."""
    if name == "POLICIES":
        return POLICY_REGISTRY.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: A profile name (``protocol.profiles.REGISTRY``): ``iso`` is possim's generic ISO 8583 terminal,
#: ``cup`` a China UnionPay POS terminal; ``TerminalConfig`` checks it against the registry.
Profile = str


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """Defaults follow common acquirer practice: 30 s response timeout, reversal retried with
    doubling backoff (CUP terminals retry 3x; SAF queues retry far longer), status queries
    every 5 s (Alipay/WeChat guidance), completion advices stored and forwarded until acknowledged.

    ``currency`` and ``reversal_attempts`` left empty (``""``, 0) take the profile's value
    (``protocol.profiles``: 978 and 6 tries for ``iso``, 156 and 3 for ``cup``)."""

    tid: str = "POS00001"
    mid: str = "MERCHANT0000001"
    currency: str = ""
    policy: Policy = "none"
    profile: Profile = "iso"
    epoch: datetime = datetime(2026, 11, 25, 10, 0, 0)
    stan_start: int = 1
    response_timeout: float = 30.0
    reversal_timeout: float = 30.0
    reversal_attempts: int = 0
    backoff_initial: float = 5.0
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    query_timeout: float = 10.0
    query_attempts: int = 3
    query_interval: float = 5.0
    advice_timeout: float = 30.0
    advice_attempts: int = 8
    #: A profile whose completions are online (``Profile.online_completion``, CUP): send a
    #: pre-authorization's completion as an advice (0220, 预授权完成通知, stored and forwarded)
    #: instead of an online 0200; settlement's batch upload is its last chance.
    completion_advice: bool = False
    #: This terminal's life number (6 digits): with one, the terminal signs on (0800) before anything
    #: else and carries it in field 60 of every request. A terminal process gets a new one whenever it
    #: starts on a new journal and keeps it (in the journal) while it resumes that journal. None: no
    #: sign-on, the messages simulations have always sent.
    life: str | None = None
    #: The life was created on a new, empty journal: if the host knows the terminal id from an
    #: earlier life, that life's journal is lost and the terminal refuses to sell (unless ``replacement``).
    new_journal: bool = False
    #: The operator declared this terminal the replacement of one whose journal is lost
    #: (``possim terminal --replacement``): it sells on a new journal although the id had an earlier life.
    replacement: bool = False
    #: The acquirer's host addresses, primary first (``protocol.lines``): with more than one, the
    #: driver sends over the next after ``failover_after`` consecutive response timeouts on the one
    #: it uses, or when that one cannot be reached. The state machine never sees them.
    hosts: tuple[str, ...] = ()
    failover_after: int = 2

    def __post_init__(self) -> None:
        get_policy(self.policy)  # an unknown name fails here, not at the first timeout
        if self.life is not None and not (len(self.life) == 6 and self.life.isdigit()):
            raise ValueError(f"life number {self.life!r} is not 6 digits")
        scheme = get_profile(self.profile)  # an unknown name fails here, naming the choices
        if not self.currency:
            object.__setattr__(self, "currency", scheme.currency)
        if not self.reversal_attempts:
            object.__setattr__(self, "reversal_attempts", scheme.reversal_attempts)

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): initial * factor^(attempt-1), capped."""
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor ** max(0, attempt - 1))

    @property
    def scheme(self) -> Scheme:
        """The profile object of ``profile``: what the terminal asks instead of its name."""
        return get_profile(self.profile)

    @property
    def online_completion(self) -> bool:
        """The completion is an online 0200 that is reversed when its answer does not come."""
        return self.scheme.online_completion and not self.completion_advice

    @property
    def recovery(self) -> RecoveryPolicy:
        """The strategy object of ``policy``."""
        return get_policy(self.policy)
