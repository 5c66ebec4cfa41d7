"""Locks: named advisory locks with a time to live."""
