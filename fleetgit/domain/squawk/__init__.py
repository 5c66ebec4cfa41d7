"""Squawk: messages between pilots, with threads, reads and acknowledgements."""
