#!/usr/bin/env bash
# make-stack.sh DIR FORMAT: builds layers DIR/l3 (bottom), DIR/l2, DIR/l1 and DIR/upper, plus an empty DIR/work.
# FORMAT "kernel" writes whiteouts as character devices 0/0 and opaque directories with trusted.overlay.opaque,
# the forms kernel overlayfs reads; "files" writes the same stack with `.wh.NAME` whiteouts and the other two
# opaque forms (a `.wh..wh..opq` marker, user.overlay.opaque), which only Strata and fuse-overlayfs read.
# Both formats give the same merged view.
set -euo pipefail
root=$1 format=${2:-kernel}
mkdir -p "$root"/{l3,l2,l1,upper,work}
cd "$root"

whiteout() { # whiteout LAYER PATH
  mkdir -p "$(dirname "$1/$2")"
  if [ "$format" = kernel ]; then mknod "$1/$2" c 0 0
  else : > "$(dirname "$1/$2")/.wh.$(basename "$2")"; fi
}
opaque() { # opaque LAYER DIR FORM(1..3): the kernel format always uses the trusted xattr
  mkdir -p "$1/$2"
  case "$format:$3" in
    kernel:*|files:1) setfattr -n trusted.overlay.opaque -v y "$1/$2" ;;
    files:2) setfattr -n user.overlay.opaque -v y "$1/$2" ;;
    files:3) : > "$1/$2/.wh..wh..opq" ;;
  esac
}
socket() { python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$1"; }

# l3: the base image.
mkdir -p l3/etc l3/bin l3/data l3/removed/dir l3/opq1 l3/opq2 l3/opq3 l3/dev l3/perms l3/merged/a l3/flop
echo 'root:x:0:0:root:/root:/bin/sh' > l3/etc/passwd
echo base > l3/etc/hostname
printf 'binary' > l3/bin/busybox; chmod 755 l3/bin/busybox
ln -s busybox l3/bin/sh
echo shared > l3/data/hard1; ln l3/data/hard1 l3/data/hard2
truncate -s 10M l3/data/sparse; printf 'middle' | dd of=l3/data/sparse bs=1 seek=5000000 conv=notrunc status=none
echo gone > l3/removed/file; echo gone > l3/removed/dir/x; echo kept > l3/removed/kept
echo old1 > l3/opq1/old1; echo old2 > l3/opq2/old2; echo old3 > l3/opq3/old3
mknod l3/dev/null c 1 3; mknod l3/dev/loop0 b 7 0; mkfifo l3/dev/fifo; socket l3/dev/sock
echo s > l3/perms/setuid; chmod 4755 l3/perms/setuid
echo g > l3/perms/setgid; chmod 2750 l3/perms/setgid
mkdir l3/perms/sticky; chmod 1777 l3/perms/sticky
echo o > l3/perms/owned; chown 1000:1001 l3/perms/owned; chmod 640 l3/perms/owned
echo a > l3/merged/a/file
echo file > l3/flip
echo inside > l3/flop/inside
mkdir l3/big; for i in $(seq 1 300); do echo "$i" > "l3/big/entry-$i"; done

# l2: overrides, whiteouts, an opaque directory.
mkdir -p l2/etc l2/merged/b l2/merged/deep l2/links
echo middle > l2/etc/hostname
echo b > l2/merged/b/file; echo deep > l2/merged/deep/x
whiteout l2 removed/file
opaque l2 opq1 1; echo new1 > l2/opq1/new1
ln -s ../etc/hostname l2/links/hostname; ln -s /nonexistent/target l2/links/dangling
for i in $(seq 1 7 300); do whiteout l2 "big/entry-$i"; done
mkdir -p l2/big; for i in $(seq 301 340); do echo "$i" > "l2/big/entry-$i"; done

# l1: a directory whiteout, type changes, a second pair of hard links.
mkdir -p l1/merged/c l1/flip l1/pair
echo c > l1/merged/c/file
whiteout l1 removed/dir
echo dir > l1/flip/now-a-dir
echo file > l1/flop
echo p > l1/pair/one; ln l1/pair/one l1/pair/two
opaque l1 opq3 3; echo new3 > l1/opq3/new3

# upper: what a container changed.
mkdir -p upper/etc upper/merged/d upper/bin
echo 'root:x:0:0:root:/root:/bin/bash' > upper/etc/passwd
echo d > upper/merged/d/file
whiteout upper bin/sh
opaque upper opq2 2; echo new2 > upper/opq2/new2
: > upper/empty

# Fixed times, so stacks built at different moments look the same; a few files get their own nanoseconds.
find l3 l2 l1 upper -exec touch -h -d @1500000000.5 {} +
touch -h -d @1577934245.123456789 l3/etc/passwd l3/bin/sh l3/data/hard1
touch -h -d @1600000000.987654321 upper/etc/passwd
