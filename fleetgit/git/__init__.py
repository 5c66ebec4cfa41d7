"""Git plumbing: the repository (pygit2), where the ledger lives in it, the segments each source
(commits, the work tree, other worktrees) holds, and the light fingerprint of a ref's .fleet/
tree.
"""
