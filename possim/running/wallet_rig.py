"""The wallet side of a run: the QR terminal and the wallet gateway, beside the card pair.

``possim.running.rig.Rig`` owns one ``WalletSide``. Wallet frames (JSON) and card frames (ISO 8583)
share the terminal's link and the fault layer in both directions; ``is_wallet`` routes each
arrival to its machine. The wallet journal lives in the card journal's database and the
wallet ledger in the card ledger's, so the checker judges both from the same two files.

The customer is data of the scenario's transaction (``card_type = "qr_wallet"``): which
provider, how long they take to confirm on the phone, whether they give up, their balance,
and, after a failed screen, whether they pay again and by what (``retry_with``).

Keys: the wallet messages carry the ``sign`` of the same per-terminal MAC keys as the card
messages (``keys``, the host's view of every terminal's key): the QR terminal signs with its
own, the gateway verifies with the terminal's and signs its answers. ``nonces`` is where the
random part of order numbers comes from: a ``random.Random`` seeded from the run's seed in a
simulation, ``secrets.SystemRandom`` in a terminal process.
"""

from __future__ import annotations

import bisect
import itertools
import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from possim.acquirer_sim.wallet import AUTO_CLOSE, Customer, GatewayConfig, SystemErrorPlan, WalletGateway
from possim.acquirer_sim.wallet_driver import WalletGatewayDriver
from possim.acquirer_sim.wallet_ledger import WalletLedger
from possim.money.money import parse_amount
from possim.pos_sim.records import SaleStatus
from possim.pos_sim.terminal import PaymentRequest
from possim.pos_sim.wallet_actions import WalletResult
from possim.pos_sim.wallet_driver import WalletTerminalDriver
from possim.pos_sim.wallet_journal import WalletJournal
from possim.pos_sim.wallet_policies import WalletTiming
from possim.pos_sim.wallet_terminal import WalletPaymentRequest, WalletTerminal, WalletTerminalConfig
from possim.protocol import wallet as W
from possim.protocol.events import Event
from possim.protocol.mac import MacKey
from possim.protocol.ports import Link, Scheduler
from possim.protocol.transports import Origin
from possim.scenario import Scenario, TransactionModel

QR_WALLET = "qr_wallet"
#: The first digits of a payment code, per provider (Alipay 25-30, WeChat 10-15).
CODE_PREFIX = {"alipay": "28", "wechat": "13"}


def auth_code(provider: str, txn_id: int) -> str:
    """The payment code the customer's phone shows for transaction ``txn_id`` (18 digits)."""
    return f"{CODE_PREFIX[provider]}{txn_id:016d}"


def customer_of(spec: TransactionModel, intent: str) -> Customer:
    """The customer paying basket ``intent`` as transaction ``spec`` says (their phone, their patience)."""
    return Customer(f"customer-{intent}", spec.confirm_after or 0.0, bool(spec.gives_up))


def error_plan(spec: TransactionModel) -> SystemErrorPlan | None:
    """The system errors the gateway answers transaction ``spec``'s payment with, if any."""
    if spec.wallet_error is None:
        return None
    return SystemErrorPlan(spec.wallet_error_on, spec.wallet_error, spec.wallet_error_times, spec.wallet_error_done)


def acquirer_gateway(scenario: Scenario | None, ledger: sqlite3.Connection, default_balance: int,
                     epoch: datetime, rng: random.Random, keys: Mapping[str, MacKey] | None = None) -> WalletGateway:
    """The wallet gateway of an acquirer process, over the acquirer's ledger database.

    In one process the rig registers each customer when their code is scanned; an acquirer
    process knows only the scenario (``possim acquirer --scenario``), so it registers the
    customer of every wallet payment the scenario plans, by the payment code the terminal
    will scan (``auth_code``: provider and transaction number). A customer who pays again
    after a failed screen gets a transaction number decided at run time: the gateway takes
    that rescan as a customer who pays at once. Without a scenario every customer pays at once.
    ``keys``: every terminal's MAC key (the key file's), so requests are verified and answers signed.
    """
    customers: dict[str, Customer] = {}
    balances: dict[str, int] = {}
    errors: dict[str, SystemErrorPlan] = {}
    auto_close = dict(AUTO_CLOSE)
    if scenario is not None:
        timings = scenario.wallet_timings()
        auto_close = {"alipay": timings.alipay.auto_close, "wechat": timings.wechat.auto_close}
    txn_id = 0
    for spec in scenario.model.transactions if scenario else ():
        for _ in range(spec.count):
            txn_id += 1
            if spec.card_type != QR_WALLET:
                continue
            customer = customer_of(spec, f"basket-{txn_id}")
            customers[auth_code(spec.provider or "alipay", txn_id)] = customer
            if (plan := error_plan(spec)) is not None:
                errors[auth_code(spec.provider or "alipay", txn_id)] = plan
            if spec.wallet_balance is not None:
                balances[customer.wallet] = parse_amount(spec.wallet_balance)
    config = GatewayConfig(customers=customers, balances=balances, default_balance=default_balance,
                           auto_close=auto_close, epoch=epoch, errors=errors)
    return WalletGateway(config, WalletLedger(ledger, default_balance), rng, keys)


class Specs:
    """Each transaction's ``[[transactions]]`` table by transaction id: found by counting, not kept per sale
    (a day of 100,000 sales holds its tables, not 100,000 entries); a customer's second payment is noted."""

    def __init__(self, tables: Sequence[TransactionModel]) -> None:
        self._tables = list(tables)
        self._ends = list(itertools.accumulate(t.count for t in self._tables))
        self._extra: dict[int, TransactionModel] = {}

    def __getitem__(self, txn_id: int) -> TransactionModel:
        if txn_id in self._extra:
            return self._extra[txn_id]
        if 0 < txn_id <= (self._ends[-1] if self._ends else 0):
            return self._tables[bisect.bisect_left(self._ends, txn_id)]
        return self._extra[txn_id]

    def __setitem__(self, txn_id: int, spec: TransactionModel) -> None:
        self._extra[txn_id] = spec


class WalletSide:
    """The QR terminal, its driver, the gateway and the customers of one run."""

    def __init__(self, scenario: Scenario, policy: str, scheduler: Scheduler, journal: sqlite3.Connection,
                 durable_journal: bool, ledger: sqlite3.Connection, tid: str, epoch: datetime,
                 emit: Callable[[Event], None], to_host: Link, rng: random.Random, default_balance: int,
                 keys: Mapping[str, MacKey] | None = None, nonces: random.Random | None = None,
                 life: str | None = None) -> None:
        """``life``: the terminal's life number when it signs on (terminal processes): its wallet
        requests carry it, as its card requests do."""
        self.scheduler = scheduler
        self.mac_key = keys.get(tid) if keys is not None else None
        self.nonces = nonces
        self.emit = emit
        self.specs = Specs(scenario.model.transactions)
        timings = scenario.wallet_timings()
        providers = {"alipay": timings.alipay, "wechat": timings.wechat}
        self.config = WalletTerminalConfig(tid=tid, policy=policy, epoch=epoch, timings={
            name: WalletTiming(**t.model_dump(exclude={"auto_close"})) for name, t in providers.items()}, life=life)
        self.ledger = WalletLedger(ledger, default_balance)
        gateway = GatewayConfig(default_balance=default_balance, epoch=epoch,
                                auto_close={name: t.auto_close for name, t in providers.items()})
        self.gateway = WalletGateway(gateway, self.ledger, rng, keys)
        self.journal = WalletJournal(journal, tid, durable_journal)
        self.terminal = self._new_terminal()
        self.driver = WalletTerminalDriver(self.terminal, to_host, scheduler, self.journal, emit, self._on_result)
        self.gateway_driver: WalletGatewayDriver | None = None
        #: Called with (failed txn id, instrument) when a customer pays again after a failed screen.
        self.pay_again: Callable[[int, str], None] | None = None
        self._retried: set[int] = set()

    # -- wiring ---------------------------------------------------------------------------

    def connect(self, host_out: Link) -> None:
        self.gateway_driver = WalletGatewayDriver(self.gateway, host_out, self.scheduler, self.emit)

    def host_receive(self, data: bytes, origin: Origin | None = None) -> bool:
        """Hand a wallet frame to the gateway; False for a card frame (the card host's)."""
        if not W.is_wallet(data) or self.gateway_driver is None:
            return False
        self.gateway_driver.receive(data, origin)
        return True

    def terminal_receive(self, data: bytes) -> bool:
        """Hand a wallet frame to the QR terminal; False for a card frame."""
        if not W.is_wallet(data):
            return False
        self.driver.receive(data)
        return True

    # -- customers ------------------------------------------------------------------------

    def pay(self, request: PaymentRequest, order: str | None = None) -> None:
        """The cashier scans the customer's code for this payment; ``order``: its recorded order number (replay)."""
        spec = self.specs[request.txn_id]
        provider: W.Provider = spec.provider or "alipay"
        code = auth_code(provider, request.txn_id)
        customer = customer_of(spec, request.intent)
        if spec.wallet_balance is not None:
            self.ledger.open_wallet(customer.wallet, parse_amount(spec.wallet_balance))
        self.gateway.config.customers[code] = customer
        if (plan := error_plan(spec)) is not None:
            self.gateway.config.errors[code] = plan
        self.driver.request_payment(WalletPaymentRequest(request.txn_id, request.intent, request.amount, code,
                                                         provider, order))

    def inherit(self, retry_txn: int, original_txn: int) -> None:
        """A customer's second payment behaves like the first (same phone, same patience)."""
        self.specs[retry_txn] = self.specs[original_txn]
        self._retried |= {original_txn, retry_txn}  # a customer pays again once per basket

    def retry_instrument(self, txn_id: int, instrument: str) -> str:
        """By what the customer pays again after a failed screen: ``retry_with``, else the same."""
        return self.specs[txn_id].retry_with or instrument

    def _on_result(self, result: WalletResult) -> None:
        spec = self.specs[result.txn_id]
        if result.status is SaleStatus.APPROVED or not spec.customer_retries or result.txn_id in self._retried:
            return
        if self.pay_again is not None:
            self._retried.add(result.txn_id)
            self.pay_again(result.txn_id, self.retry_instrument(result.txn_id, QR_WALLET))

    # -- power and quiescence -------------------------------------------------------------

    def power_off(self) -> None:
        self.driver.power_off()

    def power_on(self) -> None:
        self.terminal = self._new_terminal()
        self.driver.power_on(self.terminal)

    def _new_terminal(self) -> WalletTerminal:
        return WalletTerminal(self.config, self.mac_key, self.nonces)

    @property
    def quiet(self) -> bool:
        gateway_busy = self.gateway_driver is not None and (self.gateway_driver.pending or self.gateway_driver.wakes)
        return not self.driver.busy and not gateway_busy
