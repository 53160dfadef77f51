"""Running a scenario: the rig that wires terminal and host, real time, replay, the virtual clock, the wallet
side and the trace.

Imports nothing itself: ``import possim.running.<module>`` loads only that module.
"""
