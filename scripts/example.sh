#!/usr/bin/env bash
# A first look at Strata, as root: installs what is missing, builds `strata`, creates a three-layer example
# stack (an override, a whiteout and an opaque directory) and mounts it, then lists and reads the merged view.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
swift build -c release
strata=$PWD/.build/release/strata
# The man page, as argument-parser's plugin writes it from the same help `strata --help` prints.
swift package generate-manual >/dev/null
install -D -m 644 .build/plugins/GenerateManual/outputs/StrataCLI/strata.1 /usr/local/share/man/man1/strata.1

root=${1:-/tmp/strata-example}
if grep -q " $root/merged " /proc/mounts; then fusermount3 -u "$root/merged"; fi
rm -rf "$root"
mkdir -p "$root"/{base,app,upper,work,merged}
# base: the bottom layer, as an image's first layer would be.
mkdir -p "$root"/base/etc "$root"/base/cache
echo "base" > "$root"/base/etc/motd
echo "root:x:0:0:root:/root:/bin/sh" > "$root"/base/etc/passwd
echo "stale" > "$root"/base/cache/old-entry
# app: overrides motd, deletes passwd (a whiteout), and replaces cache wholesale (an opaque directory).
mkdir -p "$root"/app/etc "$root"/app/cache
echo "app" > "$root"/app/etc/motd
mknod "$root"/app/etc/passwd c 0 0
setfattr -n trusted.overlay.opaque -v y "$root"/app/cache
echo "fresh" > "$root"/app/cache/new-entry
# upper: what a container wrote.
echo "hello from the upper layer" > "$root"/upper/hello

"$strata" -o "lowerdir=$root/app:$root/base,upperdir=$root/upper,workdir=$root/work" "$root/merged"
echo "mounted $root/merged:"
ls -lR "$root/merged"
echo "--- etc/motd: $(cat "$root/merged/etc/motd")  (app overrides base)"
echo "--- etc/passwd is gone (whited out by app); cache holds only new-entry (opaque in app)"
echo "unmount with: fusermount3 -u $root/merged"
echo "explore it: $strata explore $root/merged   (man strata for the rest)"
