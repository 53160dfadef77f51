"""Real processes: Mosquitto, a child process waited for by its log lines, chaos, the fault proxy, key files and
broker accounts.

Imports nothing itself: ``import possim.processes.<module>`` loads only that module.
"""
