"""Many terminals: fleet scenarios and their view, monitoring alerts, possim load and its view.

Imports nothing itself: ``import possim.fleets.<module>`` loads only that module.
"""
