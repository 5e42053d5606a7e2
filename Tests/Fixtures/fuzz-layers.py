#!/usr/bin/env python3
"""fuzz-layers.py STRATA WORKDIR SEED COUNT: random hostile layer stacks, each mounted with Strata and used.

Each case builds two lower layers and an upper one with random entries: names of every byte, whiteouts of
both forms and of the wrong type or device number, opaque markers with random values, redirects (valid,
escaping, malformed, non-UTF-8) in both the trusted and the user namespace, garbage nlink, origin and inode
records, and symbolic links (absolute and relative) that point at a canary tree beside the layers. Then it
mounts the stack, walks it, reads every file, link and attribute, makes a few changes (appends, chmods,
renames, removals) and unmounts. Checks: the daemon stays up to the end, nothing read through the mount is
the canary's content, and the canary tree never changes. Prints one summary line, and each violation."""
import errno, os, random, subprocess, sys, time

strata, work, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
canary = os.path.join(work, "canary")
TOKEN = b"canary-%d" % seed

NAMES = [b"a", b"b", b"etc", b"passwd", b"dir", b"x\xe9", b"\xff", b"\x01", b" ", b"L" * 255, b"..x", b"-"]


def pick_name():
    name = rng.choice(NAMES)
    return b".wh." + name[:251] if rng.random() < 0.15 else name


def redirect_value():
    return rng.choice([b"/a", b"a", b"/dir/a", b"../canary", b"/../canary", b"/a/../../canary", b"", b".", b"..",
                       b"a/b", b"//a", b"/a/", b"/\xe9", b"\xff", b"x" * 300, b"/" + b"y" * 5000,
                       os.fsencode(canary), b"/" + os.fsencode(os.path.relpath(canary, "/"))])


def decorate(path, is_dir):
    for _ in range(rng.randint(0, 3)):
        space = rng.choice([b"trusted.overlay.", b"user.overlay."])
        key = rng.choice([b"redirect", b"opaque", b"nlink", b"origin", b"strata.ino", b"impure", b"metacopy"])
        value = redirect_value() if key == b"redirect" else rng.choice(
            [b"y", b"n", b"x", b"\x00", b"U-1", b"U+99999999999999999999", b"L-5", b"garbage", b"18446744073709551616",
             b"12345", bytes(rng.randbytes(20))])
        try:
            os.setxattr(path, space + key, value, follow_symlinks=False)
        except OSError:
            pass


def populate(layer, depth=0):
    for _ in range(rng.randint(1, 6)):
        name = pick_name()
        path = os.path.join(layer, name)
        if os.path.lexists(path):
            continue
        kind = rng.choice(["file"] * 4 + ["dir"] * 3 + ["link", "whiteout", "device", "opaque"])
        try:
            if kind == "file":
                with open(path, "wb") as f:
                    f.write(b"content of " + name)
                decorate(path, False)
                if rng.random() < 0.2:
                    os.link(path, path + b"-hard")
            elif kind == "dir":
                os.mkdir(path)
                decorate(path, True)
                if depth < 3:
                    populate(path, depth + 1)
            elif kind == "link":
                target = rng.choice([os.fsencode(canary), os.fsencode(canary) + b"/secret", b"../" * (depth + 3) + b"canary",
                                     b"/etc", b"a", b".", b"/"])
                os.symlink(target, path)
            elif kind == "whiteout":
                os.mknod(path, 0o600 | 0o020000, os.makedev(*rng.choice([(0, 0), (0, 0), (1, 3)])))
            elif kind == "opaque":
                with open(os.path.join(layer, b".wh..wh..opq"), "wb"):
                    pass
        except OSError:
            pass


def walk_and_read(mount, problems):
    seen = 0
    for directory, dirs, files in os.walk(mount, followlinks=False, onerror=lambda e: None):
        for item in dirs + files:
            path = os.path.join(directory, item)
            seen += 1
            try:
                os.lstat(path)
                if os.path.islink(path):
                    os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        if TOKEN in f.read():
                            problems.append("read the canary through %r" % path)
                for attribute in os.listxattr(path, follow_symlinks=False):
                    os.getxattr(path, attribute, follow_symlinks=False)
            except OSError:
                pass
    return seen


def change(mount, problems):
    paths = []
    for directory, dirs, files in os.walk(mount, followlinks=False, onerror=lambda e: None):
        paths += [os.path.join(directory, item) for item in dirs + files]
    for path in rng.sample(paths, min(len(paths), 8)):
        action = rng.choice(["append", "chmod", "rename", "remove", "xattr", "mkdir"])
        try:
            if action == "append" and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "ab") as f:
                    f.write(b"+")
            elif action == "chmod" and not os.path.islink(path):
                os.chmod(path, 0o700)
            elif action == "rename":
                os.rename(path, path + b"-moved")
            elif action == "remove":
                os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
            elif action == "xattr":
                os.setxattr(path, b"user.fuzz", b"v", follow_symlinks=False)
            elif action == "mkdir" and os.path.isdir(path) and not os.path.islink(path):
                os.mkdir(os.path.join(path, b"new\xfe"))
        except OSError:
            pass


def canary_state():
    state = []
    for directory, dirs, files in os.walk(canary):
        for item in sorted(dirs + files):
            path = os.path.join(directory, item)
            st = os.lstat(path)
            state.append((path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return state


os.makedirs(os.path.join(canary, "inner"))
with open(os.path.join(canary, "secret"), "wb") as f:
    f.write(TOKEN)
before = canary_state()
problems, entries = [], 0
for case in range(count):
    base = os.path.join(os.fsencode(work), b"case%d" % case)
    layers = [os.path.join(base, name) for name in (b"upper", b"l1", b"l2")]
    for layer in layers + [os.path.join(base, b"work"), os.path.join(base, b"mnt")]:
        os.makedirs(layer)
    for layer in layers:
        populate(layer)
    mount = os.path.join(base, b"mnt")
    options = b"lowerdir=%s:%s,upperdir=%s,workdir=%s" % (layers[1], layers[2], layers[0], os.path.join(base, b"work"))
    started = subprocess.run([strata, b"-o", options, mount], capture_output=True, timeout=30)
    if started.returncode != 0:
        problems.append("case %d: the mount failed: %s" % (case, started.stderr.decode(errors="replace")))
        continue
    try:
        entries += walk_and_read(mount, problems)
        change(mount, problems)
        entries += walk_and_read(mount, problems)
        if os.fsencode(mount) not in open("/proc/self/mounts", "rb").read().replace(b"\\040", b" "):
            problems.append("case %d: the daemon died" % case)
        os.stat(mount)
    except OSError as error:
        problems.append("case %d: the mount stopped answering: %s" % (case, error))
    finally:
        subprocess.run(["fusermount3", "-u", mount], capture_output=True, timeout=30)
if canary_state() != before:
    problems.append("the canary tree changed")
print("%d stacks, %d entries walked, %d problems" % (count, entries, len(problems)))
for problem in problems[:50]:
    print(problem)
sys.exit(1 if problems else 0)
