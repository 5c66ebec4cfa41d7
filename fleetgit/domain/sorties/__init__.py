"""Sorties: units of work with dependencies, claimed by one pilot at a time."""
