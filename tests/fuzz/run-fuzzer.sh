#!/bin/sh
# run-fuzzer.sh — runs one libFuzzer binary for a bounded time, starting
# from the checked-in seed corpus (and its regressions/ subdirectory, which
# libFuzzer reads recursively).
#
#   run-fuzzer.sh FUZZER SEED_CORPUS_DIR SECONDS [extra libFuzzer flags...]
#
# New inputs go to a temporary directory that is removed afterwards, so
# the checked-in corpus never changes under a test run. A crash, leak,
# timeout or out-of-memory exits non-zero; libFuzzer writes the input that
# caused it as crash-*/leak-*/timeout-*/oom-* in the current directory
# (CTest runs this in the build directory). To keep it, copy it into
# SEED_CORPUS_DIR/regressions/ once fixed.
set -eu

if [ $# -lt 3 ]; then
    echo "usage: $0 FUZZER SEED_CORPUS_DIR SECONDS [libFuzzer flags...]" >&2
    exit 2
fi
fuzzer=$1
seeds=$2
seconds=$3
shift 3

if [ ! -x "$fuzzer" ]; then
    echo "run-fuzzer: $fuzzer is not an executable" >&2
    exit 2
fi
if [ ! -d "$seeds" ]; then
    echo "run-fuzzer: seed corpus $seeds is not a directory" >&2
    exit 2
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/yard-fuzz.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
trap 'exit 130' INT TERM

rc=0
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
    -max_len=70000 "$@" "$workdir" "$seeds" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "run-fuzzer: $(basename "$fuzzer") failed (exit $rc); the input" \
         "is in $(pwd)" >&2
fi
exit "$rc"
