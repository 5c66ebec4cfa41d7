"""The ledger on disk: event envelopes and their codec, clocks and ids, writers' JSONL segments,
the catalogue's machinery, and the strict intake check of every line read. No git, no SQLite.
"""
