"""Print a card's balance (minor units) from a possim ledger file: ``--balance-command`` in tests.

Usage: python ledger_balance.py LEDGER CARD. A card the host has not seen yet has the
host's default balance (its account is opened on first use).
"""

import sqlite3
import sys
from contextlib import closing

from possim.acquirer_sim.config import HostConfig

with closing(sqlite3.connect(sys.argv[1], timeout=10)) as conn:
    row = conn.execute("SELECT balance FROM accounts WHERE pan = ?", (sys.argv[2],)).fetchone()
print(row[0] if row else HostConfig().default_balance)
