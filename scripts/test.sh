#!/usr/bin/env bash
# The whole test suite, as root (it mounts FUSE and kernel overlays): installs what is missing, builds the
# release binary that the mount tests drive, runs every test, and ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
swift build -c release
# The man page the README's first command installs; a test reads it.
swift package generate-manual >/dev/null
# FUSE over io_uring is off in the kernel by default (Linux 6.14+): the mounts under test use it, as the benchmark
# does; RingTests mounts through the device too. The setting is put back at the end.
uring=/sys/module/fuse/parameters/enable_uring
uring_was=$(cat "$uring" 2>/dev/null || true)
[ -w "$uring" ] && echo Y > "$uring"
log=$(mktemp)
trap 'rm -f "$log"; [ -n "$uring_was" ] && echo "$uring_was" > "$uring"' EXIT
status=0
STRATA_BINARY="$PWD/.build/release/strata" swift test --disable-swift-testing 2>&1 | tee "$log" || status=$?
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$log" | tail -1 || true)
if [ -z "$summary" ]; then echo "no test summary found" >&2; exit 1; fi
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
skipped=$(sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p' <<<"$summary")
echo "$((total - failed - ${skipped:-0})) passed, $failed failed${skipped:+, $skipped skipped}"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
