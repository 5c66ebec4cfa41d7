#!/bin/sh
# fleetgit-managed-hook: @HOOK@
# Written by `fleetgit hooks install`; `fleetgit hooks uninstall` restores what was here before.
# A hook that was already here is kept as @HOOK@.fleetgit-chained and still runs first; its
# failure still fails the git command.
hook_dir=$(dirname "$0")
python='@PYTHON@'
stdin_copy=$(mktemp "${TMPDIR:-/tmp}/fleetgit-hook.XXXXXX") || exit 1
trap 'rm -f "$stdin_copy"' EXIT
cat > "$stdin_copy"
if [ -x "$hook_dir/@HOOK@.fleetgit-chained" ]; then
    "$hook_dir/@HOOK@.fleetgit-chained" "$@" < "$stdin_copy" || exit $?
fi
if [ ! -x "$python" ]; then
    echo "fleetgit: the interpreter this hook was installed with is gone: $python" >&2
    echo "hint: reinstall with: fleetgit hooks install --force" >&2
    case "@HOOK@" in
        pre-*) echo "To commit anyway: git commit --no-verify" >&2; exit 1 ;;
        *) exit 0 ;;
    esac
fi
"$python" -m fleetgit.hook @HOOK@ "$@" < "$stdin_copy"
