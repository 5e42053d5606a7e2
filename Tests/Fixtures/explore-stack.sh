#!/usr/bin/env bash
# explore-stack.sh DIR: the stack `strata explore` and `strata check` are tested on, in the kernel's format:
# DIR/base (bottom), DIR/l2, DIR/l1 and DIR/upper, top first as Strata numbers them 3, 2, 1, 0.
#   base:  etc/{hostname,passwd,motd}, opt/old/{a,b}, srv/{x,y}, app/data (1 MiB), bin/tool -> ../app/data
#   l2:    overrides etc/hostname, whites out etc/motd, makes srv opaque (with srv/new), adds lib/added
#   l1:    renames opt/old to opt/new (redirect, and a whiteout at the old name), adds etc/issue
#   upper: `chmod -R go-rwx app` as a copy-up tool without metacopy does it: app/data carried again, mode 600
set -euo pipefail
root=$1
mkdir -p "$root"/{base,l2,l1,upper,work}
cd "$root"
mkdir -p base/etc base/opt/old base/srv base/app base/bin
echo base > base/etc/hostname
echo 'root:x:0:0:root:/root:/bin/sh' > base/etc/passwd
echo welcome > base/etc/motd
echo a > base/opt/old/a; echo b > base/opt/old/b
echo x > base/srv/x; echo y > base/srv/y
head -c 1048576 /dev/zero | tr '\0' 'd' > base/app/data
ln -s ../app/data base/bin/tool
touch -d 2020-01-01 base/etc/* base/app/data

mkdir -p l2/etc l2/srv l2/lib
echo middle > l2/etc/hostname
mknod l2/etc/motd c 0 0
setfattr -n trusted.overlay.opaque -v y l2/srv
echo new > l2/srv/new
echo added > l2/lib/added

mkdir -p l1/opt/new l1/etc
setfattr -n trusted.overlay.redirect -v /opt/old l1/opt/new
mknod l1/opt/old c 0 0
echo issue > l1/etc/issue

mkdir -p upper/app
cp -p base/app/data upper/app/data
chmod 600 upper/app/data
chmod 700 upper/app
