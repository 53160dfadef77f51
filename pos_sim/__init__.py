"""POS terminal emulator: a sans-IO terminal state machine, its journal and its drivers."""
