#!/usr/bin/env bash
# bench.sh [ROUNDS]: Strata, fuse-overlayfs and kernel overlayfs side by side on the same layers, as root.
# Builds the benchmark layers once (cached in $BENCH_DIR, default /var/tmp/strata-bench): a base layer with
# copies of /usr/share and /usr/include and a 1 GiB file, and a top layer with overrides, whiteouts and an
# opaque directory; and, for the deep-stack walk, /usr/include spread over 2 layers and over 64. Every
# measurement gets a fresh mount, an empty upper layer and dropped caches (the deep-stack walks instead have the
# page cache hold their layers, so that they measure the layers, not the disk); rounds interleave the
# filesystems, each round starting with another one. BENCH_ONLY="name|name" runs a subset of the workloads;
# BENCH_VERBOSE=1 prints each measurement as it is taken.
# Prints the median seconds of each workload, Strata's ratio to each peer (below 1 is faster), the requests
# Strata's daemon answered (from `strata stats`), and the daemons' peak memory, all of it and the private part.
# 4k random reads are timed by fio (installed if missing) and also shown per second. The warm read-only tar
# mounts the main stack's lower layers alone (read-only on every filesystem) and reads it all once, untimed.
# Strata runs as it does by default (several threads, copy-ups synced); strata-volatile skips the copy-up syncs
# and strata-metacopy copies up metadata only for metadata changes (metacopy=on); strata-watch walks with
# `-o watch` on (nothing changing), against Strata without it; strata-device serves through /dev/fuse alone
# (`io_uring=0`), against Strata, which serves through FUSE over io_uring: the kernel's switch for it
# (/sys/module/fuse/parameters/enable_uring, off by default) is turned on for the run and put back after it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
rounds=${1:-3}
bench=${BENCH_DIR:-/var/tmp/strata-bench}
swift build -c release >/dev/null
strata=$PWD/.build/release/strata

build_layers() {
  [ -f "$bench/layers/.complete" ] && return
  echo "building benchmark layers in $bench/layers (once)" >&2
  rm -rf "$bench/layers"
  mkdir -p "$bench/layers/base/usr" "$bench/layers/top/usr/include"
  cp -a /usr/share /usr/include "$bench/layers/base/usr/"
  dd if=/dev/urandom of="$bench/layers/base/big" bs=1M count=1024 status=none
  # top: every 10th header overridden, every 20th file under share/doc whited out, share/man opaque.
  (cd "$bench/layers/base" && find usr/include -type f | awk 'NR % 10 == 0') | while read -r f; do
    mkdir -p "$bench/layers/top/$(dirname "$f")"
    { cat "$bench/layers/base/$f"; echo "/* override */"; } > "$bench/layers/top/$f"
  done
  (cd "$bench/layers/base" && find usr/share/doc -type f | awk 'NR % 20 == 0') | while read -r f; do
    mkdir -p "$bench/layers/top/$(dirname "$f")"
    mknod "$bench/layers/top/$f" c 0 0
  done
  mkdir -p "$bench/layers/top/usr/share/man/man1"
  setfattr -n trusted.overlay.opaque -v y "$bench/layers/top/usr/share/man"
  cp /usr/share/man/man1/ls.1.gz "$bench/layers/top/usr/share/man/man1/" 2>/dev/null || true
  tar -cf "$bench/include.tar" -C / usr/include
  touch "$bench/layers/.complete"
}

build_deep_stacks() {
  [ -f "$bench/layers/.complete-deep" ] && return
  echo "building the deep stacks in $bench/layers (once)" >&2
  rm -rf "$bench/layers/deep2" "$bench/layers/deep64"
  # Every file of /usr/include in one layer of N (file i in layer i mod N), each layer holding the directories
  # its files need; the merged content is the same for every N.
  for layers in 2 64; do
    (cd /usr && find include -type f) | awk -v n=$layers '{ print (NR % n) "\t" $0 }' | while IFS=$'\t' read -r layer f; do
      mkdir -p "$bench/layers/deep$layers/$layer/$(dirname "$f")"
      cp -a "/usr/$f" "$bench/layers/deep$layers/$layer/$f"
    done
  done
  touch "$bench/layers/.complete-deep"
}

mnt=$bench/mnt
upper=$bench/upper
work=$bench/work
daemon_pid=""

lowers() { # lowers STACK: the lowerdir= value of a stack
  case $1 in
    main|main-ro) echo "$bench/layers/top:$bench/layers/base" ;;
    deep*) local n=${1#deep}; seq $((n - 1)) -1 0 | sed "s|^|$bench/layers/$1/|" | paste -sd: ;;
  esac
}

# The last measurement's upper and work directories go to $trash, not away, until the run ends: this VM's root
# filesystem is ext4 without a journal, which for a minute (five, unsynced) after a delete skips the freed
# inodes, scanning past each of them on every new inode (fs/ext4/ialloc.c, recently_deleted). Deleting the last
# upper made every create in the next one pay that scan: chmod -R of 792 files on kernel overlayfs with
# metacopy took 0.30 s, in a directory with no recent deletes 0.044 s. Large files go at once (few inodes).
trash=$bench/trash
set_aside() {
  local n=0
  while [ -e "$trash/$n" ]; do n=$((n + 1)); done
  mkdir -p "$trash/$n"
  for d in "$upper" "$work"; do [ -e "$d" ] && mv "$d" "$trash/$n/"; done
  find "$trash/$n" -type f -size +64M -delete
}

mount_fs() { # mount_fs NAME [STACK]
  set_aside; mkdir -p "$upper" "$work" "$mnt"
  local layers="lowerdir=$(lowers "${2:-main}"),upperdir=$upper,workdir=$work"
  # A stack of lower layers alone mounts read-only, on every filesystem.
  [ "${2:-}" = main-ro ] && layers="lowerdir=$(lowers main)"
  case $1 in
    strata) "$strata" -o "$layers" "$mnt" ;;
    strata-volatile) "$strata" -o "$layers,volatile" "$mnt" ;;
    strata-metacopy) "$strata" -o "$layers,metacopy=on" "$mnt" ;;
    strata-watch) "$strata" -o "$layers,watch" "$mnt" ;;
    strata-device) "$strata" -o "$layers,io_uring=0" "$mnt" ;;
    fuse-overlayfs) fuse-overlayfs -o "$layers" "$mnt" 2>/dev/null ;;
    kernel) mount -t overlay overlay -o "$layers" "$mnt" ;;
  esac
  daemon_pid=$(pgrep -f -n "^($strata|fuse-overlayfs) .* $mnt\$" || true)
}

requests() { # the requests Strata's daemon has answered since it mounted
  "$strata" stats --json "$mnt" | python3 -c 'import json, sys; print(sum(r["calls"] for r in json.load(sys.stdin)["requests"]))'
}

unmount_fs() { # unmount_fs NAME: records the daemon's peak memory first
  if [ -n "$daemon_pid" ]; then
    local hwm anon
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status" 2>/dev/null || echo 0)
    if [ "${hwm:-0}" -gt "${peak[$1]:-0}" ]; then peak[$1]=$hwm; fi
    # VmHWM counts the pages of the binary and shared libraries the daemon has touched (~6 MB for strata-mountd,
    # ~1 MB for a C daemon); private memory at the end of a workload is the part that is its own.
    anon=$(awk '/RssAnon/ {print $2}' "/proc/$daemon_pid/status" 2>/dev/null || echo 0)
    if [ "${anon:-0}" -gt "${private[$1]:-0}" ]; then private[$1]=$anon; fi
  fi
  if [ "$1" = kernel ]; then umount "$mnt"; else fusermount3 -u "$mnt"; fi
  for _ in $(seq 50); do [ -z "$daemon_pid" ] || ! kill -0 "$daemon_pid" 2>/dev/null && break; sleep 0.1; done
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

seconds() { # seconds COMMAND...: sets $elapsed to the wall time of the command
  local start end
  start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
  elapsed=$(echo "$end - $start" | bc -l)
}

run_find() { find "$mnt" >/dev/null; }
run_du() { du -s "$mnt" >/dev/null; }
run_tar() { (cd "$mnt" && tar -cf - . | cat > /dev/null); }
run_read() { dd if="$mnt/big" of=/dev/null bs=1M status=none; }
# 16,384 reads of 4 KiB at random places in the cold 1 GiB file, one at a time, the same places on every
# filesystem (fio's fixed seed); sets $elapsed to fio's own run time, without its start.
random_reads=16384
run_random_read() {
  elapsed=$(fio --name=random-read --filename="$mnt/big" --readonly --rw=randread --bs=4k --ioengine=psync --size=1g \
    --io_size=$((random_reads * 4))k --randrepeat=1 --output-format=terse --terse-version=3 | awk -F';' '{print $9 / 1000}')
}
run_write() { dd if=/dev/zero of="$mnt/written" bs=1M count=1024 conv=fsync status=none; }
# The other write workloads count until their changes are on disk. Strata and the kernel also make each
# copy-up durable before it shows (an fsync per copied file), fuse-overlayfs leaves it to writeback: the
# strata-volatile column (copy-up without that sync) compares the same amount of work.
on_disk() { "$@" && sync -f "$upper"; }
run_copy_up() { printf x >> "$mnt/big"; }
run_untar() { mkdir "$mnt/extract" && tar -xf "$bench/include.tar" -C "$mnt/extract"; }
run_rm() { rm -rf "$mnt/usr/share/doc"; }
run_chmod() { chmod -R g+w "$mnt/usr/include/linux"; }
run_chown() { chown -R 1234:1234 "$mnt/usr/include/linux"; }
run_stat() { find "$mnt" -size +100 >/dev/null; }

measure() { # measure FS WORKLOAD: sets $elapsed and $answered (runs in this shell, so the peak memory it records stays)
  local stack=main
  case $2 in "walk of "*) stack=deep$(echo "$2" | tr -dc 0-9) ;; *"read-only"*) stack=main-ro ;; esac
  mount_fs "$1" "$stack"
  # A walk's layers are read into the page cache first (stat-ed and listed, untimed): only the first of the
  # filesystems measured would otherwise read them from disk.
  case $2 in "walk of "*) du -s "$bench/layers/$stack" >/dev/null ;; *) drop_caches ;; esac
  local before=0
  case $2 in "warm read"*) run_tar ;; "warm "*) run_find ;; esac
  [ "$1" = strata ] && before=$(requests)
  case $2 in
    "cold find") seconds run_find ;;
    "warm find") seconds run_find ;;
    "warm stat of every file (find -size)") seconds run_stat ;;
    "walk of 2 layers"|"walk of 64 layers") seconds run_find ;;
    "du -s") seconds run_du ;;
    "read all (tar)"|"warm read all, read-only (tar)") seconds run_tar ;;
    "1 GiB read") seconds run_read ;;
    "4k random read (16,384 reads)") run_random_read ;;
    "1 GiB write + fsync") seconds run_write ;;
    "copy-up of 1 GiB (append a byte)") seconds on_disk run_copy_up ;;
    "untar /usr/include") seconds on_disk run_untar ;;
    "rm -rf lower tree") seconds on_disk run_rm ;;
    "chmod -R lower tree") seconds on_disk run_chmod ;;
    "chown -R lower tree") seconds on_disk run_chown ;;
  esac
  answered=-
  [ "$1" = strata ] && answered=$(( $(requests) - before ))
  unmount_fs "$1"
}

uring=/sys/module/fuse/parameters/enable_uring
uring_was=$(cat "$uring" 2>/dev/null || true)
if [ -w "$uring" ]; then echo Y > "$uring"; else echo "this kernel has no FUSE over io_uring: strata serves through the device" >&2; fi
trap 'mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }; rm -rf "$trash"
  [ -n "$uring_was" ] && echo "$uring_was" > "$uring"; true' EXIT
rm -rf "$trash"
for tool in bc fio; do command -v $tool >/dev/null || apt-get install -y -qq $tool >/dev/null; done
build_layers
build_deep_stacks
[ -f "$bench/include.tar" ] || tar -cf "$bench/include.tar" -C / usr/include
declare -A results peak private counts
workloads=("cold find" "warm find" "warm stat of every file (find -size)" "du -s" "read all (tar)"
  "warm read all, read-only (tar)" "1 GiB read"
  "4k random read (16,384 reads)" "1 GiB write + fsync" "copy-up of 1 GiB (append a byte)" "untar /usr/include" "rm -rf lower tree"
  "chmod -R lower tree" "chown -R lower tree" "walk of 2 layers" "walk of 64 layers")
[ -n "${BENCH_ONLY:-}" ] && IFS='|' read -r -a workloads <<<"$BENCH_ONLY"
filesystems=(strata fuse-overlayfs kernel)
copies_up() { case $1 in copy-up*|chmod*|chown*|"rm -rf"*) true ;; *) false ;; esac; }
changes_metadata() { case $1 in chmod*|chown*) true ;; *) false ;; esac; }
watched() { case $1 in "cold find"|"warm find") true ;; *) false ;; esac; }
for round in $(seq "$rounds"); do
  for workload in "${workloads[@]}"; do
    extra=(); copies_up "$workload" && extra=(strata-volatile); changes_metadata "$workload" && extra+=(strata-metacopy)
    watched "$workload" && extra+=(strata-watch)
    extra+=(strata-device)
    # Each round starts with a different filesystem: the first one measured after the previous workload can pay
    # for what it left (Strata's copy-up took 3.10 s right after the kernel's 1 GiB write, 2.37 s alone), and a
    # fixed order put that on Strata every time.
    shift_by=$(( (round - 1) % ${#filesystems[@]} ))
    order=("${filesystems[@]:shift_by}" "${filesystems[@]:0:shift_by}")
    for fs in "${order[@]}" "${extra[@]}"; do
      measure "$fs" "$workload"
      results["$workload|$fs"]+="$elapsed "
      [ -n "${BENCH_VERBOSE:-}" ] && printf 'round %s: %s, %s: %.3f s\n' "$round" "$workload" "$fs" "$elapsed" >&2
      [ "$fs" = strata ] && counts["$workload"]+="$answered "
    done
  done
  echo "round $round of $rounds done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
printf '| workload | strata (s) | fuse-overlayfs (s) | kernel (s) | strata / fuse-overlayfs | strata / kernel | requests | strata-volatile / fuse-overlayfs | strata-metacopy / fuse-overlayfs, / kernel | strata-watch / strata | strata / strata-device |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for workload in "${workloads[@]}"; do
  s=$(median <<<"${results["$workload|strata"]}")
  f=$(median <<<"${results["$workload|fuse-overlayfs"]}")
  k=$(median <<<"${results["$workload|kernel"]}")
  v=- m=- w=-
  watched "$workload" && w=$(ratio "$(median <<<"${results["$workload|strata-watch"]}")" "$s")
  copies_up "$workload" && v=$(ratio "$(median <<<"${results["$workload|strata-volatile"]}")" "$f")
  if changes_metadata "$workload"; then
    mc=$(median <<<"${results["$workload|strata-metacopy"]}")
    m="$(ratio "$mc" "$f"), $(ratio "$mc" "$k")"
  fi
  d=$(ratio "$s" "$(median <<<"${results["$workload|strata-device"]}")")
  printf '| %s | %.3f | %.3f | %.3f | %s | %s | %s | %s | %s | %s | %s |\n' "$workload" "$s" "$f" "$k" "$(ratio "$s" "$f")" \
    "$(ratio "$s" "$k")" "$(median <<<"${counts["$workload"]}")" "$v" "$m" "$w" "$d"
done
if [ -n "${results["walk of 2 layers|strata"]:-}" ] && [ -n "${results["walk of 64 layers|strata"]:-}" ]; then
  printf '\nStrata, 64 layers / 2 layers: %s (fuse-overlayfs %s, kernel %s).\n' \
    "$(ratio "$(median <<<"${results["walk of 64 layers|strata"]}")" "$(median <<<"${results["walk of 2 layers|strata"]}")")" \
    "$(ratio "$(median <<<"${results["walk of 64 layers|fuse-overlayfs"]}")" "$(median <<<"${results["walk of 2 layers|fuse-overlayfs"]}")")" \
    "$(ratio "$(median <<<"${results["walk of 64 layers|kernel"]}")" "$(median <<<"${results["walk of 2 layers|kernel"]}")")"
fi
if [ -n "${results["4k random read (16,384 reads)|strata"]:-}" ]; then
  iops() { printf '%.0f' "$(echo "$random_reads / $(median <<<"${results["4k random read (16,384 reads)|$1"]}")" | bc -l)"; }
  printf '\n4k random reads per second: strata %s, fuse-overlayfs %s, kernel %s.\n' "$(iops strata)" "$(iops fuse-overlayfs)" "$(iops kernel)"
fi
mib() { printf '%.1f' "$(echo "${1:-0} / 1024" | bc -l)"; }
printf '\nDaemon peak memory (VmHWM): strata %s MiB, fuse-overlayfs %s MiB; strata-watch %s MiB.\n' \
  "$(mib "${peak[strata]:-}")" "$(mib "${peak[fuse-overlayfs]:-}")" "$(mib "${peak[strata-watch]:-}")"
printf 'Of it private (RssAnon, the most at the end of a workload): strata %s MiB, fuse-overlayfs %s MiB. %s rounds, medians.\n' \
  "$(mib "${private[strata]:-}")" "$(mib "${private[fuse-overlayfs]:-}")" "$rounds"
