#!/usr/bin/env bash
# Build the compiled kernels with AddressSanitizer + UndefinedBehaviorSanitizer in a
# temporary copy of the tree, then run the kernel tests, the hostile-file tests and the
# fuzz test against that build. Python itself is not instrumented, so libasan is preloaded;
# leak detection is off (the interpreter keeps memory alive at exit on purpose).
#
#   .ci/sanitize.sh                 # default test selection
#   .ci/sanitize.sh tests/bitops    # any pytest arguments instead
#
# Exit status: pytest's, or 1 if a sanitizer reported anything (reports go to
# $QTOOLKIT_SANITIZE_LOGS, default sanitize-logs/ in the tree, one file per process).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
logs="${QTOOLKIT_SANITIZE_LOGS:-$root/sanitize-logs}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$logs"
rm -f "$logs"/asan.* "$logs"/ubsan.*

cd "$root"
# the tracked and untracked (not ignored) files: the tree as CI would check it out
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp"
cd "$tmp"
find qtoolkit -name '*.so' -delete
QTOOLKIT_SANITIZE=1 python setup.py build_ext --inplace -j "${QTOOLKIT_SANITIZE_JOBS:-2}" > build.log 2>&1 \
    || { tail -40 build.log; exit 2; }

libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$libasan $libubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$logs/ubsan"
export PYTHONPATH="$tmp"
export QTOOLKIT_FUZZ_CASES="${QTOOLKIT_FUZZ_CASES:-2000}"
export QTOOLKIT_FUZZ_MEMORY=0  # ASan reserves terabytes of shadow address space: no RLIMIT_AS
if [ "$#" -eq 0 ]; then
    set -- tests/bitops tests/rounding tests/codebooks tests/gradients \
        tests/test_hostile_files.py tests/test_fuzz.py tests/test_silent_results.py \
        -m "not slow"
fi
status=0
python -m pytest -q -p no:cacheprovider "$@" || status=$?
unset LD_PRELOAD
reports=$(find "$logs" -type f \( -name 'asan.*' -o -name 'ubsan.*' \) | wc -l)
if [ "$reports" -gt 0 ]; then
    echo "sanitizer reports ($reports files) in $logs:"
    grep -h -m 3 -E 'ERROR: AddressSanitizer|runtime error' "$logs"/* | sort | uniq -c | head -40
    [ "$status" -eq 0 ] && status=1
else
    echo "sanitizers: no reports"
fi
exit "$status"
