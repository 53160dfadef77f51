"""Searching for failures: generated schedules, the search over worker processes, the attacker.

Imports nothing itself: ``import possim.fuzzing.<module>`` loads only that module.
"""
