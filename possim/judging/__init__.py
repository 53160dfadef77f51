"""Judging from recorded facts: the checker, a scenario's [expect], reconciliation, coverage, and the graders of
someone else's host (conform) or terminal (certify).

Imports nothing itself: ``import possim.judging.<module>`` loads only that module.
"""
