#!/usr/bin/env bash
# Run a representative subset of the test suite under valgrind memcheck (CPython).
#
#   tools/valgrind.sh                        # the default subset below
#   tools/valgrind.sh tests/test_api.py      # or these pytest arguments
#
# Environment: PYTHON (default /tmp/venv-cp/bin/python, else python3).  Uses the installed
# (normal) build of the extension: memcheck needs no instrumented build.  PYTHONMALLOC=malloc
# makes every Python allocation a real malloc so memcheck sees them.  Leak checking is off (the
# interpreter keeps memory until exit by design); errors in sophy or the engine are fatal.  Output goes to
# build/valgrind/ (one log per process, children included) and is summarised at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-/tmp/venv-cp/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

# The subset: the public API end to end, the bad-input matrix (every validation path and the
# closed-handle paths in the C helpers) and handle lifetimes (close/invalidate ordering).
DEFAULT=(tests/test_api.py tests/test_bad_input.py tests/test_lifetimes.py)
LOGS="$ROOT/build/valgrind"
rm -rf "$LOGS"
mkdir -p "$LOGS"
cd "$ROOT"

set +e
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=no \
    --trace-children=yes --child-silent-after-fork=yes --num-callers=30 --error-limit=no \
    --log-file="$LOGS/memcheck.%p.log" \
    "$PY" -m pytest -q -p no:cacheprovider -x "${@:-${DEFAULT[@]}}"
status=$?
set -e

# only errors whose stack reaches sophy or the engine count (tools/valgrind_filter.py: this
# CPython is not built --with-valgrind and reports its own false positives)
errors="$("$PY" "$ROOT/tools/valgrind_filter.py" "$LOGS")"
echo "valgrind: $(ls "$LOGS" | wc -l) process log(s), $errors error(s) in sophy or the engine;" \
     "pytest exit status $status"
[ "$errors" = 0 ] || exit 3
exit "$status"
