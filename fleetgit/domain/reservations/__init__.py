"""Reservations of paths: reserve, renew, release, and the clash rule."""
