#!/usr/bin/env bash
# Run the WHOLE test suite on CPython against the ASan+UBSan build of the extension.
#
#   tools/sanitize.sh                 # every test
#   tools/sanitize.sh tests/test_api.py -x   # extra arguments go to pytest
#
# Environment: PYTHON (default /tmp/venv-cp/bin/python, else python3) — a CPython with pytest,
# hypothesis and cffi.  Reports land in build/sanitize/ (one file per process: the suite starts
# subprocesses); the script prints them and exits non-zero when there are any.
#
# How: tools/build_variant.py builds SOPHY_BUILD=asan (gcc -fsanitize=address,undefined) into
# build/variants/<tag>-asan/.  The tests' child processes put <repo>/src on their path (computed
# from the test files' location), so the suite runs from a mirror tree whose src/sophy IS the
# asan variant and whose tests/ is a fresh copy; everything else is symlinked.  The installed
# package and src/ are never touched.  CPython itself is not instrumented, so the ASan runtime is
# LD_PRELOADed, and leak checking is off (the interpreter leaks by design at exit).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-/tmp/venv-cp/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

VDIR="$("$PY" "$ROOT/tools/build_variant.py" asan | tail -n 1)"
TREE="$VDIR/tree"
REPORTS="$ROOT/build/sanitize"
rm -rf "$TREE" "$REPORTS"
mkdir -p "$TREE/src" "$REPORTS"
ln -s "$VDIR/sophy" "$TREE/src/sophy"
cp -r "$ROOT/tests" "$TREE/tests"
find "$TREE/tests" -name __pycache__ -prune -exec rm -rf {} +
for item in "$ROOT"/* "$ROOT"/.ci; do
    name="$(basename "$item")"
    case "$name" in src|tests|build) continue ;; esac
    ln -s "$item" "$TREE/$name"
done
ln -s "$ROOT/build" "$TREE/build"

LIBASAN="$(gcc -print-file-name=libasan.so)"
[ -f "$LIBASAN" ] || { echo "libasan.so not found (gcc -print-file-name=libasan.so)" >&2; exit 2; }

export LD_PRELOAD="$LIBASAN"
# detect_leaks=0: CPython leaks at exit; halt on the first error so it cannot be missed;
# log_path: one report file per process, children included.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$REPORTS/asan"
# UBSan prints to stderr whatever log_path says (with the ASan runtime preloaded); the engine's
# benign, very frequent UB (misaligned access, NULL with size 0) is suppressed by source file so
# that tests checking a child's stderr see only real findings — ours are never suppressed.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$REPORTS/ubsan:suppressions=$ROOT/tools/ubsan-engine.supp"
export PYTHONPATH="$TREE/src"
export PYTHONMALLOC=malloc  # let ASan see Python-side buffers handed to C as well

cd "$TREE"
"$PY" - <<'EOF'
import os, sophy
assert os.path.realpath(sophy.__file__).startswith(os.path.realpath(os.environ["PYTHONPATH"])) \
    or "-asan" in os.path.realpath(sophy.__file__), sophy.__file__
print("sanitized sophy:", os.path.realpath(sophy.__file__))
EOF
set +e
# -s: UBSan writes to fd 2 of the pytest process too; without -s pytest would swallow it
"$PY" -m pytest -q -s -p no:cacheprovider -rfE "${@:-tests}" 2>&1 | tee "$REPORTS/pytest.out"
status=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD
found=0
for f in "$REPORTS"/*; do
    [ -e "$f" ] || continue
    [ "$(basename "$f")" = pytest.out ] && continue
    found=1
    echo "===== $f"
    cat "$f"
done
if [ "$found" = 0 ]; then
    echo "ASan: no report files"
else
    echo "ASan: reports above (engine frames are sophia/..., ours csrc/sophy_ffi.c)"
fi
ub="$(grep -h "runtime error" "$REPORTS/pytest.out" | sed 's/0x[0-9a-f]*/ADDR/g; s/^[.xsFE]*//' | sort | uniq -c || true)"
if [ -n "$ub" ]; then
    found=1
    echo "UBSan reports seen on stderr (unsuppressed):"
    echo "$ub"
else
    echo "UBSan: no unsuppressed reports"
fi
echo "pytest exit status: $status"
[ "$found" = 0 ] && exit "$status"
exit 3
