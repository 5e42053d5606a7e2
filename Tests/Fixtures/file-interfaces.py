#!/usr/bin/env python3
"""file-interfaces.py MOUNTPOINT: the file interfaces beyond read and write, on a make-stack.sh stack: one line
per check with what the caller saw, so two overlays can be compared line by line. Locks must conflict as on a
local filesystem; copy_file_range and SEEK_DATA/SEEK_HOLE must see the lower sparse file's one data extent."""
import errno, fcntl, os, sys

root = sys.argv[1]
def path(name): return os.path.join(root, name)

def attempt(label, action):
    try:
        print(label, action())
    except OSError as error:
        print(label, errno.errorcode[error.errno])

# SEEK_DATA / SEEK_HOLE on a lower file, then on its copy-up (holes kept in the copy).
for stage in ("lower", "copied up"):
    fd = os.open(path("data/sparse"), os.O_RDONLY if stage == "lower" else os.O_RDWR)
    data = os.lseek(fd, 0, os.SEEK_DATA)
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    print(stage, "data extent", data <= 5000000 < hole)
    attempt(stage + " SEEK_DATA past the end", lambda: os.lseek(fd, 20 << 20, os.SEEK_DATA))
    os.close(fd)

# copy_file_range from a lower file into a new one and within the copied-up file.
source = os.open(path("data/sparse"), os.O_RDONLY)
target = os.open(path("copied"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
print("copy_file_range", os.copy_file_range(source, target, 100, 4999990, 0))
os.close(target)
print("copied bytes", open(path("copied"), "rb").read())
os.close(source)

# flock: two open file descriptions conflict, and unlocking frees the lock.
first, second = os.open(path("etc/hostname"), os.O_RDONLY), os.open(path("etc/hostname"), os.O_RDONLY)
fcntl.flock(first, fcntl.LOCK_EX)
attempt("flock held elsewhere", lambda: fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB))
fcntl.flock(first, fcntl.LOCK_UN)
attempt("flock after unlock", lambda: fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB))
os.close(first), os.close(second)

# POSIX record locks belong to a process: a child sees the parent's range locked and the rest free.
fd = os.open(path("etc/hostname"), os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 2, 0)
child = os.fork()
if child == 0:
    mine = os.open(path("etc/hostname"), os.O_RDWR)
    for start in (0, 4):
        try:
            fcntl.lockf(mine, fcntl.LOCK_EX | fcntl.LOCK_NB, 2, start)
            print("child lock at", start, "granted", flush=True)
        except OSError as error:
            print("child lock at", start, errno.errorcode[error.errno], flush=True)
    os._exit(0)
os.waitpid(child, 0)
os.close(fd)

# fsync, fdatasync and fsync of directories, lower-only and upper.
for name in ("etc/hostname", "perms", "etc", "."):
    fd = os.open(path(name), os.O_RDONLY)
    attempt("fsync " + name, lambda: os.fsync(fd))
    attempt("fdatasync " + name, lambda: os.fdatasync(fd))
    os.close(fd)
