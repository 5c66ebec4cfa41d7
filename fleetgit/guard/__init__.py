"""The hooks and their light path: git's hooks enter at guard.hook; rules and patterns judge a
commit against the reservations. The light modules import nothing heavy (a test checks the
list).
"""
