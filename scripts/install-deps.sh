#!/usr/bin/env bash
# Installs the Debian packages Strata builds, tests and benchmarks with; does nothing when all are present.
set -euo pipefail
# podman, runc and busybox-static serve the end-to-end container test; skopeo, umoci, docker-registry and
# curl the image round trip through a registry.
# stress-ng runs two of its filesystem stressors through a mount; tmux is the terminal `strata explore` is tested in; man-db renders the man page.
packages=(libfuse3-dev liburing-dev libarchive-dev libncurses-dev tmux man-db bsdextrautils fuse3 pkg-config attr acl python3 util-linux fuse-overlayfs podman runc busybox-static
  skopeo umoci docker-registry curl stress-ng)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
command -v swift >/dev/null || { echo "swift is not installed (expected at /opt/swift)" >&2; exit 1; }
