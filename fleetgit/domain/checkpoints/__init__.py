"""Checkpoints and the recovery brief a pilot resumes from after losing its context."""
