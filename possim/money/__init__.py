"""Money: amounts, merchant fees, the T+1 statement, a fleet's end-of-day reconciliation.

Imports nothing itself: ``import possim.money.money.<module>`` loads only that module.
"""
