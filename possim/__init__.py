"""possim: a payment-terminal timeout lab (orchestration: scenarios, simulation, checker, CLI)."""

__version__ = "0.1.0"
