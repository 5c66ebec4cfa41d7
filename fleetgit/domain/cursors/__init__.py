"""Cursors: how far each pilot has read the ledger."""
