#!/usr/bin/env bash
# Runs the pure-Rust tests (crate tracebus-core, channel/store stress tests included) under
# valgrind memcheck.
#
#     bash tests/reliability/valgrind.sh
#
# TRACEBUS_SMALL=1 (the default here) shrinks the stress tests' item counts, not their
# thread interleavings, so memcheck's slowdown fits CI; TRACEBUS_SMALL=0 runs full size.
# Installs valgrind with apt-get when missing (as root); skipped with a message if that fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! command -v valgrind >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [[ $(id -u) -eq 0 ]]; then
    echo "valgrind missing: installing it (apt-get install valgrind)"
    apt-get update -qq >/dev/null && apt-get install -y -qq valgrind >/dev/null || true
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind not installed and could not be installed: skipped"
    exit 0
fi
# The core crate's test binary: the last line cargo prints for it is "Executable ... (path)".
bin=$(cargo test -p tracebus-core --lib --no-run 2>&1 | sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))/\1/p' | tail -1)
if [[ -z $bin || ! -x $bin ]]; then
    echo "could not find the test binary (cargo test -p tracebus-core --lib --no-run)" >&2
    exit 1
fi
echo "valgrind memcheck: $bin"
export TRACEBUS_SMALL=${TRACEBUS_SMALL-1}
# Definite leaks and every memory error fail the run; "possibly lost" blocks come from
# process-wide registries (OnceLock) that live until exit.
exec valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    "$bin" --test-threads=2
