#!/usr/bin/env bash
# podman-e2e.sh STRATA [OPTIONS]: podman with private storage under a temporary directory, mounting every
# container and image through STRATA (with `-o OPTIONS` added, e.g. whiteout=file) as containers/storage's
# mount_program. Imports a busybox rootfs, runs it, changes lower files in a container, checks `podman diff`,
# commits, runs the commit, runs two containers on the same lowers at once, and removes everything.
# Prints one "ok" line per step; exits non-zero at the first failure. Host storage is never touched.
set -euo pipefail
strata=$1
extra=${2:-}
root=$(mktemp -d /tmp/strata-podman.XXXXXX)

cleanup() {
  podman_ rm --all --force --time 0 >/dev/null 2>&1 || true
  podman_ rmi --all --force >/dev/null 2>&1 || true
  { grep -o " $root[^ ]*" /proc/mounts || true; } | while read -r mnt; do
    fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
  done
  rm -rf "$root"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

mkdir -p "$root/rootfs"
cat > "$root/mount-program" <<EOF
#!/bin/sh
# containers/storage runs this with its own -o list; the log shows what it passed and from where.
echo "\$(pwd) \$*" >> "$root/mount-program.log"
exec "$strata" ${extra:+-o "$extra"} "\$@"
EOF
chmod +x "$root/mount-program"
source "$(dirname "$0")/podman-env.sh" "$root/podman" "$root/mount-program"

# A rootfs from Debian's busybox-static, with the files podman would otherwise create in each container.
rootfs=$root/rootfs
mkdir -p "$rootfs"/{bin,etc,data,tmp,proc,sys,dev,run}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh ls cat echo rm mkdir sleep test; do ln -s busybox "$rootfs/bin/$applet"; done
echo base > "$rootfs/etc/motd"
echo gone > "$rootfs/etc/removeme"
echo data > "$rootfs/data/file"
touch "$rootfs/etc/hosts" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname" "$rootfs/run/.containerenv"
tar -C "$rootfs" -cf "$root/rootfs.tar" .
podman_ import --quiet "$root/rootfs.tar" localhost/strata-base >/dev/null
echo "ok import"

out=$(podman_ run --rm localhost/strata-base sh -c 'echo hello from $(cat /etc/motd)')
[ "$out" = "hello from base" ] || fail "run printed: $out"
echo "ok run"

podman_ run --name changer localhost/strata-base sh -c \
  'echo written > /etc/new; echo overwritten > /etc/motd; rm /etc/removeme; echo more >> /data/file; mkdir /data/dir'
diff=$(podman_ diff changer | sort)
expected=$(printf '%s\n' "A /data/dir" "A /etc/new" "C /data" "C /data/file" "C /etc" "C /etc/motd" "D /etc/removeme" | sort)
[ "$diff" = "$expected" ] || fail "podman diff listed:
$diff"
echo "ok diff"
# The deletion is a whiteout in the container's upper layer, in the form asked for.
upper=$(podman_ inspect changer --format '{{.GraphDriver.Data.UpperDir}}')
case $extra in
  *whiteout=file*) [ -f "$upper/etc/.wh.removeme" ] || fail "no .wh.removeme in $(ls -A "$upper/etc")" ;;
  *) [ "$(stat -c %F:%t:%T "$upper/etc/removeme")" = "character special file:0:0" ] || fail "no device whiteout" ;;
esac
echo "ok whiteout"
# strata diff on the same layers says what podman diff says, once the files podman itself puts into every
# container (and leaves out of its diff: /etc/mtab and the like) are left out too.
lowers=$(podman_ inspect changer --format '{{.GraphDriver.Data.LowerDir}}')
ours=$("$strata" diff -o "lowerdir=$lowers,upperdir=$upper" \
  | grep -Evx '[ACD] /(etc/mtab|etc/hosts|etc/hostname|etc/resolv.conf|run/.containerenv|dev|proc|sys|run)' | sort)
[ "$ours" = "$diff" ] || fail "strata diff listed:
$ours"
echo "ok strata diff"

podman_ commit --quiet changer localhost/strata-changed >/dev/null
out=$(podman_ run --rm localhost/strata-changed sh -c \
  'cat /etc/new /etc/motd /data/file; test -d /data/dir && echo dir; test -e /etc/removeme || echo removed')
[ "$out" = "$(printf 'written\noverwritten\ndata\nmore\ndir\nremoved')" ] || fail "committed image shows: $out"
echo "ok commit"

# Read-only (lower-only) mounts: an image mounted, an image's diff, a container exported.
image=$(podman_ image mount localhost/strata-changed)
[ "$(cat "$image/etc/new")" = written ] || fail "image mount shows: $(ls "$image/etc")"
podman_ image unmount localhost/strata-changed >/dev/null
image_diff=$(podman_ diff localhost/strata-changed)
grep -qx "A /etc/new" <<<"$image_diff" || fail "image diff: $image_diff"
listing=$(podman_ export changer | tar -tf -)
grep -qx "etc/new" <<<"$listing" || fail "export lacks etc/new"
grep " -o lowerdir=" "$root/mount-program.log" | grep -v "upperdir=" >/dev/null || fail "no lower-only mount was made"
echo "ok read-only mounts"

# Two containers on the same lowers at once: each sees its own writes and the shared lower files.
for name in one two; do
  podman_ run -d --name "$name" localhost/strata-changed sh -c "echo $name > /tmp/who; sleep 60" >/dev/null
done
for name in one two; do
  for _ in $(seq 50); do podman_ exec "$name" test -e /tmp/who 2>/dev/null && break; sleep 0.2; done
  out=$(podman_ exec "$name" cat /tmp/who /etc/motd)
  [ "$out" = "$(printf '%s\noverwritten' "$name")" ] || fail "container $name shows: $out"
done
echo "ok two containers"

podman_ rm --all --force --time 0 >/dev/null
podman_ rmi --all --force >/dev/null
# Strata's mounts (FUSE) must all be gone; containers/storage may keep the bind mount of its own overlay
# home (graph/overlay) a moment longer, which is its business and is unmounted by cleanup.
left() { awk -v root=" $root" 'index(" " $2, root) == 1 && $3 ~ /^fuse/' /proc/mounts; }
if [ -n "$(left)" ]; then fail "mounts left: $(left)"; fi
sleep 1
if pgrep -f "$strata.* $root" >/dev/null; then fail "strata daemons left: $(pgrep -af "$strata.* $root")"; fi
grep -q "lowerdir=" "$root/mount-program.log" || fail "podman never ran the mount program"
echo "ok clean: nothing mounted, no daemon left after $(wc -l < "$root/mount-program.log") mounts, such as:"
grep -m1 "upperdir=" "$root/mount-program.log" | sed "s|$root|ROOT|g"
