"""Withdrawals: an explicit tombstone that takes one event out of every projection."""
