#!/usr/bin/env python3
"""random-ops.py SEED COUNT: a reproducible random sequence of changes, as a bash script to run inside a mount
of a make-stack.sh stack. Each step appends its exit status to $STATUS_LOG, so two runs can be compared step
by step as well as by the tree they leave."""
import random, sys

seed, count = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
# Names the stack holds (files and directories of every layer), plus names that do not exist yet. No fifo:
# writing one would block.
paths = ["etc", "etc/hostname", "etc/passwd", "bin", "bin/busybox", "bin/sh", "data", "data/hard1", "data/hard2",
         "data/sparse", "removed", "removed/kept", "removed/file", "opq1", "opq1/new1", "opq2", "opq2/new2",
         "opq3", "opq3/new3", "merged", "merged/a", "merged/a/file", "merged/b", "merged/b/file", "merged/c",
         "merged/deep", "merged/deep/x", "links", "links/hostname", "flip", "flip/now-a-dir", "flop", "pair",
         "pair/one", "pair/two", "perms", "perms/setuid", "perms/owned", "perms/sticky", "big", "big/entry-5",
         "big/entry-301", "empty", "dev/null", "new", "new/x", "etc/new", "merged/new", "opq1/made", "fresh"]

def pick():
    return rng.choice(paths)

def remember(path):
    if path not in paths:
        paths.append(path)

lines = ["set -u", ': "${STATUS_LOG:?}"', "step() { \"$@\" >/dev/null 2>&1; echo \"$? $*\" >> \"$STATUS_LOG\"; }",
         # renameat2 with RENAME_EXCHANGE (coreutils here has no mv --exchange).
         "exchange() { python3 -c 'import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
         "sys.exit(0 if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) == 0 "
         "else ctypes.get_errno())' \"$1\" \"$2\"; }"]
for number in range(count):
    op = rng.choice(["write", "append", "truncate", "rm", "rmrf", "mkdir", "rmdir", "mv", "mv", "chmod",
                     "touch", "symlink", "link", "xattr", "exchange"])
    a, b = pick(), pick()
    name = f"{rng.choice(['etc', 'merged', 'opq1', 'data', 'new', 'big', '.'])}/n{number}"
    if op == "write":
        lines.append(f"step sh -c 'echo {number} > {a}'")
    elif op == "append":
        lines.append(f"step sh -c 'echo {number} >> {a}'")
    elif op == "truncate":
        lines.append(f"step truncate -s {rng.randrange(0, 20)} {a}")
    elif op == "rm":
        lines.append(f"step rm {a}")
    elif op == "rmrf":
        lines.append(f"step rm -rf {a}")
    elif op == "mkdir":
        lines.append(f"step mkdir {name}")
        remember(name.removeprefix("./"))
    elif op == "rmdir":
        lines.append(f"step rmdir {a}")
    elif op == "mv":
        target = rng.choice([b, name])
        lines.append(f"step mv -T {a} {target}")
        remember(target.removeprefix("./"))
    elif op == "chmod":
        lines.append(f"step chmod {rng.choice(['600', '755', '4711', '1777'])} {a}")
    elif op == "touch":
        lines.append(f"step touch -h -d @{1_400_000_000 + number}.{number:09d} {a}")
    elif op == "symlink":
        lines.append(f"step ln -s {b} {name}")
        remember(name.removeprefix("./"))
    elif op == "link":
        lines.append(f"step ln {a} {name}")
        remember(name.removeprefix("./"))
    elif op == "exchange":
        lines.append(f"step exchange {a} {b}")
    elif op == "xattr":
        lines.append(f"step setfattr -h -n user.step -v {number} {a}")
print("\n".join(lines))
