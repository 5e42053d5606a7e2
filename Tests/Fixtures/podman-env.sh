# source podman-env.sh ROOT MOUNT_PROGRAM: defines podman_, podman with private storage, runtime directories and
# configuration under ROOT (host storage is never touched), mounting through MOUNT_PROGRAM as containers/storage's
# mount_program.
podman_root=$1
podman_mount_program=$2
mkdir -p "$podman_root"/{graph,run,tmp}
# Root here lacks CAP_SYS_RESOURCE: ulimits no higher than the current ones. No network: podman's default one
# leaves firewall chains behind.
cat > "$podman_root/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
[engine]
# crun refuses this machine's hybrid cgroup hierarchy (a controller on cgroup v2); runc takes it.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$podman_root/events.log"
tmp_dir = "$podman_root/tmp"
EOF
export CONTAINERS_CONF=$podman_root/containers.conf TMPDIR=$podman_root/tmp
podman_() {
  podman --root "$podman_root/graph" --runroot "$podman_root/run" --tmpdir "$podman_root/tmp" --storage-driver overlay \
    --storage-opt "overlay.mount_program=$podman_mount_program" "$@"
}
