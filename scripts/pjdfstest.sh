#!/usr/bin/env bash
# pjdfstest.sh [strata|kernel]: the pjdfstest POSIX conformance suite (about 8,800 assertions) through a Strata
# mount (or, for comparison, a kernel overlay) over two populated lower layers and an upper one, as root. The
# tests run in a new directory made through the mount. pjdfstest is built from its copy beside the project
# (../shared/suites/pjdfstest, or $PJDFSTEST_SOURCE) in a scratch directory, never inside the project. Prints
# prove's summary and a last line "N passed, N failed"; exits non-zero if any test failed. Unmounts in every
# outcome. STRATA_BINARY names the strata to test (default: the release build, made first).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-strata}
source scripts/install-deps.sh
for candidate in "${PJDFSTEST_SOURCE:-}" "$PWD/../shared/suites/pjdfstest" /work/shared/suites/pjdfstest; do
  if [ -n "$candidate" ] && [ -f "$candidate/pjdfstest.c" ]; then source_dir=$candidate; break; fi
done
[ -n "${source_dir:-}" ] || { echo "pjdfstest's source is not here (set PJDFSTEST_SOURCE)" >&2; exit 2; }
for tool in autoreconf make gcc prove; do command -v $tool >/dev/null || missing_tools=1; done
if [ -n "${missing_tools:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq autoconf automake gcc make perl >/dev/null
fi
build=${PJDFSTEST_BUILD:-/var/tmp/strata-pjdfstest}
if [ ! -x "$build/pjdfstest" ]; then
  rm -rf "$build" && cp -r "$source_dir" "$build"
  (cd "$build" && autoreconf -ifs >/dev/null 2>&1 && ./configure >/dev/null && make pjdfstest >/dev/null)
fi
# The suite's own run passes the binary it built; run by hand, the release build is brought up to date.
strata=${STRATA_BINARY:-}
if [ -z "$strata" ]; then swift build -c release >/dev/null && strata=$PWD/.build/release/strata; fi
scratch=$(mktemp -d /tmp/strata-pjdfstest.XXXXXX)
chmod 0755 "$scratch"
cleanup() {
  if [ -n "${suite:-}" ]; then kill -KILL -- "-$suite" 2>/dev/null; wait "$suite" 2>/dev/null || true; fi
  if mountpoint -q "$scratch/mnt"; then fusermount3 -u "$scratch/mnt" 2>/dev/null || umount -l "$scratch/mnt"; fi
  rm -rf "$scratch"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap stops the suite and unmounts (the test's timeout
# sends TERM). The suite runs in the background, as bash acts on a signal only once a foreground job is done,
# and in a process group of its own, which is killed whole: prove waits for its tests, which may hang.
trap 'exit 143' TERM
trap 'exit 130' INT HUP
mkdir -p "$scratch"/{l1,l2,upper,work,mnt}
cp -a /usr/include/linux "$scratch/l1/"
cp -a /etc/ssl "$scratch/l2/"
mkdir -p "$scratch/l1/shared" "$scratch/l2/shared/lower" && echo lower > "$scratch/l2/shared/lower/file"
layers="lowerdir=$scratch/l1:$scratch/l2,upperdir=$scratch/upper,workdir=$scratch/work"
case $kind in
  strata) "$strata" -o "$layers" "$scratch/mnt" ;;
  kernel) mount -t overlay overlay -o "$layers" "$scratch/mnt" ;;
  *) echo "usage: $0 [strata|kernel]" >&2; exit 2 ;;
esac
mkdir -p "$scratch/mnt/shared/tests" && chmod 0755 "$scratch/mnt/shared" "$scratch/mnt/shared/tests"
log=$scratch/prove.log
status=0
(cd "$scratch/mnt/shared/tests" && exec setsid timeout 1800 prove -r "$build/tests") > "$log" 2>&1 &
suite=$!
wait "$suite" || status=$?
suite=
sed -n '/^Test Summary Report/,$p' "$log"
total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$log")
failed=$(awk '/Failed: [0-9]+\)/ { gsub(/[^0-9]/, "", $NF); sum += $NF } END { print sum + 0 }' "$log")
[ -n "$total" ] || { echo "prove did not finish:"; tail -20 "$log"; exit 1; }
echo "$((total - failed)) passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
