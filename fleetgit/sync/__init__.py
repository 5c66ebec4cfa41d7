"""`fleetgit sync`: the ledger between machines, over any git remote, with no server.

Each writer publishes its segments under `refs/fleet/writers/<writer>` (git/fleetrefs.py),
pushes that ref, and fetches every writer ref of the remote into
`refs/fleet/remotes/<remote>/<writer>`, which catch-up reads like any other ref. `engine` runs a
sync; `lost` finds the events no ref reaches any more and publishes them again.
"""
