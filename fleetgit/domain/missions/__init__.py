"""Missions: the top of the work tree; their status follows their sorties."""
