#!/usr/bin/env bash
# story.sh [WORKDIR]: the whole story on a real Debian root filesystem, as root. debootstrap a minimal Debian;
# mount it with Strata under an empty upper layer; `apt-get install vim` inside it (chroot); commit the upper
# layer as an image layer on top of the imported base; push the image to a private registry on 127.0.0.1 and
# pull it back; unpack and mount the pulled layers; run vim from the mounted stack. Takes a few minutes and
# needs Debian's package mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
swift build -c release >/dev/null
strata=$PWD/.build/release/strata
root=${1:-/var/tmp/strata-story}
registry_pid=""
cleanup() {
  for mnt in "$root/merged/proc" "$root/merged/dev" "$root/merged" "$root/pulled-mnt"; do
    mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
  done
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

rm -rf "$root"/{upper,work,merged,layout,pulled,pulled-layers,pulled-mnt,registry}
mkdir -p "$root"/{upper,work,merged,pulled-mnt,registry}
if [ ! -x "$root/debian/bin/bash" ]; then
  step "debootstrap a minimal Debian 12 into $root/debian"
  debootstrap --variant=minbase bookworm "$root/debian" http://deb.debian.org/debian >/dev/null
fi

step "import it as an image's first layer, and mount it with an empty upper layer"
"$strata" import "$root/debian" --oci "$root/layout:debian" --gzip
"$strata" -o "lowerdir=$root/debian,upperdir=$root/upper,workdir=$root/work" "$root/merged"
mount --bind /proc "$root/merged/proc"
mount --bind /dev "$root/merged/dev"
cp /etc/resolv.conf "$root/merged/etc/resolv.conf"

step "apt-get install vim inside it"
chroot "$root/merged" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vim >/dev/null'
umount "$root/merged/dev" "$root/merged/proc"
"$strata" diff -o "lowerdir=$root/debian,upperdir=$root/upper" | grep -c . | sed 's/^/changes in the upper layer: /'
"$strata" which "$root/merged/usr/bin/vim.basic"
fusermount3 -u "$root/merged"

step "commit the upper layer on top of the base image"
"$strata" commit -o "lowerdir=$root/debian,upperdir=$root/upper" --oci "$root/layout:vim" --from debian --gzip

step "push it to a private registry and pull it back"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$root/registry" "$port" \
  > "$root/registry.yml"
docker-registry serve "$root/registry.yml" > "$root/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
skopeo copy --quiet --dest-tls-verify=false "oci:$root/layout:vim" "docker://127.0.0.1:$port/story/debian:vim"
curl -fs "http://127.0.0.1:$port/v2/_catalog"; echo
skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$port/story/debian:vim" "oci:$root/pulled:vim"

step "unpack the pulled layers, mount them, and run vim from the stack"
lowers=$("$strata" unpack "$root/pulled:vim" "$root/pulled-layers")
echo "$lowers"
"$strata" -o "$lowers" "$root/pulled-mnt"
"$strata" layers -h "$root/pulled-mnt"
chroot "$root/pulled-mnt" vim --version | head -1
