"""Pilots: registration, heartbeats, identity (callsigns from the environment or git config)."""
