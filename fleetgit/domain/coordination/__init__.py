"""Coordination: decisions a coordinator records for the fleet or one mission."""
