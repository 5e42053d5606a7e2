#!/usr/bin/env bash
# registry-e2e.sh STRATA: an image's round trip through a private registry on 127.0.0.1. A busybox rootfs is
# imported (strata import), unpacked and mounted with an empty upper layer, changed through the mount
# (write, overwrite, delete, rename a directory), committed (strata commit --oci), pushed with skopeo, pulled
# back into a fresh layout, unpacked and mounted again: every change is there. umoci's unpack of Strata's layout
# agrees with Strata's, and podman pulls and runs the image. Prints one "ok" line per step.
set -euo pipefail
strata=$1
root=$(mktemp -d /tmp/strata-registry.XXXXXX)
registry_pid=""
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  podman_ rm --all --force --time 0 >/dev/null 2>&1 || true
  podman_ rmi --all --force >/dev/null 2>&1 || true
  { grep -o " $root[^ ]*" /proc/mounts || true; } | sort -r | while read -r mnt; do
    fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
  done
  rm -rf "$root"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
source "$(dirname "$0")/podman-env.sh" "$root/podman" "$strata"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$root/registry"
cat > "$root/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $root/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$root/registry.yml" > "$root/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || fail "registry did not start: $(cat "$root/registry.log")"
echo "ok registry on 127.0.0.1:$port"

rootfs=$root/rootfs
mkdir -p "$rootfs"/{bin,etc,data,tmp,proc,sys,dev,run}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh ls cat echo rm test; do ln -s busybox "$rootfs/bin/$applet"; done
echo base > "$rootfs/etc/motd"; echo gone > "$rootfs/etc/removeme"; echo data > "$rootfs/data/file"
touch "$rootfs/etc/hosts" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname" "$rootfs/run/.containerenv"
"$strata" import "$rootfs" --oci "$root/layout:base" --gzip >/dev/null
lowers=$("$strata" unpack "$root/layout:base" "$root/base-layers")
echo "ok import and unpack"

mkdir -p "$root/upper" "$root/work" "$root/mnt"
"$strata" -o "$lowers,upperdir=$root/upper,workdir=$root/work" "$root/mnt"
echo written > "$root/mnt/etc/new"
echo overwritten > "$root/mnt/etc/motd"
rm "$root/mnt/etc/removeme"
mv "$root/mnt/data" "$root/mnt/data-renamed"
fusermount3 -u "$root/mnt"
"$strata" commit -o "$lowers,upperdir=$root/upper" --oci "$root/layout:changed" --from base --gzip >/dev/null
echo "ok commit"

check_view() { # check_view ROOT: the changes, as seen in a tree
  [ "$(cat "$1/etc/new")" = written ] || fail "$1: etc/new"
  [ "$(cat "$1/etc/motd")" = overwritten ] || fail "$1: etc/motd"
  [ ! -e "$1/etc/removeme" ] || fail "$1: etc/removeme still there"
  [ "$(cat "$1/data-renamed/file")" = data ] || fail "$1: data-renamed/file"
  [ ! -e "$1/data" ] || fail "$1: data still there"
}

skopeo copy --quiet --dest-tls-verify=false "oci:$root/layout:changed" "docker://127.0.0.1:$port/strata/test:changed"
curl -fs "http://127.0.0.1:$port/v2/_catalog" | grep -q '"strata/test"' || fail "catalog: $(curl -s "http://127.0.0.1:$port/v2/_catalog")"
skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$port/strata/test:changed" "oci:$root/pulled:changed"
echo "ok push and pull"

pulled=$("$strata" unpack "$root/pulled:changed" "$root/pulled-layers")
mkdir -p "$root/view"
"$strata" -o "$pulled" "$root/view"
check_view "$root/view"
echo "ok pulled layers mount with every change"

umoci unpack --image "$root/layout:changed" "$root/bundle" >/dev/null 2>&1 || fail "umoci unpack failed"
check_view "$root/bundle/rootfs"
ours=$(cd "$root/view" && find . -path ./proc -prune -o -printf '%p %y %m\n' | sort)
theirs=$(cd "$root/bundle/rootfs" && find . -path ./proc -prune -o -printf '%p %y %m\n' | sort)
[ "$ours" = "$theirs" ] || fail "umoci's unpack differs: $(diff <(echo "$ours") <(echo "$theirs") | head)"
fusermount3 -u "$root/view"
echo "ok umoci agrees"

podman_ pull --quiet --tls-verify=false "127.0.0.1:$port/strata/test:changed" >/dev/null
out=$(podman_ run --rm "127.0.0.1:$port/strata/test:changed" sh -c \
  'cat /etc/new /etc/motd /data-renamed/file; test -e /etc/removeme || echo removed; test -e /data || echo moved')
[ "$out" = "$(printf 'written\noverwritten\ndata\nremoved\nmoved')" ] || fail "podman run shows: $out"
echo "ok podman pulls and runs it"
