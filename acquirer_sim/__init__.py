"""Mock acquirer host: a sans-IO host state machine over a SQLite ledger."""
