"""Terminal settings: identity, timers and the recovery policy of one run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pos_sim.policies import POLICY_NAMES, RecoveryPolicy, get_policy

#: The policy names; an alias of ``pos_sim.policies.POLICY_NAMES`` kept for older imports.
POLICIES: tuple[str, ...] = POLICY_NAMES

if TYPE_CHECKING:
    Policy = str
else:
    #: A policy name. At run time a ``Literal`` of the registry's names, so pydantic models
    #: annotated with it validate against the registry; to the type checker a plain ``str``.
    Policy = Literal[POLICY_NAMES]


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """Defaults follow common acquirer practice: 30 s response timeout, reversal retried with
    doubling backoff (CUP terminals retry 3x; SAF queues retry far longer), status queries
    every 5 s (Alipay/WeChat guidance), completion advices stored and forwarded until acknowledged."""

    tid: str = "POS00001"
    mid: str = "MERCHANT0000001"
    currency: str = "978"
    policy: Policy = "none"
    epoch: datetime = datetime(2026, 11, 25, 10, 0, 0)
    stan_start: int = 1
    response_timeout: float = 30.0
    reversal_timeout: float = 30.0
    reversal_attempts: int = 6
    backoff_initial: float = 5.0
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    query_timeout: float = 10.0
    query_attempts: int = 3
    query_interval: float = 5.0
    advice_timeout: float = 30.0
    advice_attempts: int = 8

    def __post_init__(self) -> None:
        get_policy(self.policy)  # an unknown name fails here, not at the first timeout

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): initial * factor^(attempt-1), capped."""
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor ** max(0, attempt - 1))

    @property
    def recovery(self) -> RecoveryPolicy:
        """The strategy object of ``policy``."""
        return get_policy(self.policy)
