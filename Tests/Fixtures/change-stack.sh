#!/usr/bin/env bash
# change-stack.sh MOUNTPOINT: the same changes, in the same order, through any overlay mounted over a stack
# from make-stack.sh: writes, appends, truncates, deletions of lower files and trees, directories made where
# lower ones were deleted, renames, metadata changes, links, special files and xattrs.
set -euo pipefail
cd "$1"
echo new > newfile
echo more >> etc/hostname
printf 'x' | dd of=data/sparse bs=1 seek=100 conv=notrunc status=none
rm etc/passwd
rm -rf merged/b
mkdir removed/dir2 opq1/sub
rm -rf opq3 && mkdir opq3 && echo again > opq3/file
rm big/entry-2 big/entry-3 && echo back > big/entry-2
mv data/hard1 data/moved
mv links links2
mv pair/two pair/renamed
chmod 4711 perms/setuid
chown 1234:5678 perms/owned
touch -h -d @1000.5 flip/now-a-dir
ln -s target sym
mknod fifo2 p
mknod dev/null2 c 1 3
ln pair/one pair/three
truncate -s 3 etc/hostname
mkdir -p deep/a/b/c && echo leaf > deep/a/b/c/leaf
mv flop flop2
rmdir removed/dir2
setfattr -n user.test -v 1 empty
echo replaced > bin/busybox
rm -f bin/busybox && echo recreated > bin/busybox
mv deep/a/b deep/b
# Directories with lower contents: renamed in place, moved to another parent, renamed again, and changed inside.
mv merged merged-renamed
mv merged-renamed/a merged-renamed/a2
echo inside > merged-renamed/a2/new
mv big etc/big-moved
rm etc/big-moved/entry-4
mv etc/big-moved perms/big-again
mv opq1 opq1-renamed
# Exchanges (renameat2 RENAME_EXCHANGE): two merged directories, directories under different parents, a merged
# directory and a file, a new directory and a lower one; then changes inside what moved.
exchange() {
  python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) != 0:
    sys.exit(os.strerror(ctypes.get_errno()))' "$1" "$2"
}
exchange data etc
exchange merged-renamed/a2 perms/big-again
exchange pair empty
exchange deep removed
echo after > data/after-exchange
rm -f etc/sparse
ls removed/b/c >/dev/null
