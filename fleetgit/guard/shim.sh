#!/bin/sh
# fleetgit-managed-hook: @HOOK@
# Written by `fleetgit hooks install`; `fleetgit hooks uninstall` restores what was here before.
# A hook that was already here is kept as fleetgit-chained/@HOOK@ and still runs first, under
# its own name (for hooks that look at `basename "$0"`); its failure still fails the git command.
hook_dir=$(dirname "$0")
python=@PYTHON@
package_root=@PACKAGE_ROOT@
case "@HOOK@" in
    pre-push|post-rewrite)  # these read stdin: keep a copy for both hooks
        stdin_copy=$(mktemp "${TMPDIR:-/tmp}/fleetgit-hook.XXXXXX") || exit 1
        trap 'rm -f "$stdin_copy"' EXIT
        cat > "$stdin_copy" ;;
    *) stdin_copy=/dev/null ;;
esac
if [ -x "$hook_dir/fleetgit-chained/@HOOK@" ]; then
    "$hook_dir/fleetgit-chained/@HOOK@" "$@" < "$stdin_copy" || exit $?
fi
case "@HOOK@" in
    commit-msg)  # prepare-commit-msg wrote the Fleet-Pilot trailer already, unless an editor
        # opened on an empty message: then (only) Python is needed to write it
        grep -qi '^Fleet-Pilot:' "$1" 2>/dev/null && exit 0 ;;
esac
case "@HOOK@" in
    commit-msg)  # prepare-commit-msg wrote the Fleet-Pilot trailer already, unless an editor
        # opened on an empty message: then (only) Python is needed to write it
        grep -qi '^Fleet-Pilot:' "$1" 2>/dev/null && exit 0 ;;
esac
if [ ! -x "$python" ]; then
    echo "fleetgit: the interpreter this hook was installed with is gone: $python" >&2
    echo "hint: reinstall with: fleetgit hooks install --force" >&2
    case "@HOOK@" in
        pre-*) echo "To go ahead anyway: git commit --no-verify (or git push --no-verify)" >&2; exit 1 ;;
        *) exit 0 ;;
    esac
fi
# -S: no site import on the hot path; the package root is on sys.path explicitly.
"$python" -S -c "import sys; sys.path.insert(0, sys.argv.pop(1)); from fleetgit.guard.hook import console; console()" \
    "$package_root" @HOOK@ "$@" < "$stdin_copy"
