#!/usr/bin/env python3
"""byte-names.py prepare LAYER | exercise MOUNT | tree DIR

Names made of every byte value from 1 to 255 but '/' (alone, and inside a longer name, and one name of
NAME_MAX bytes), as a lower layer holds them (`prepare`), as a user makes, lists, stats, renames and deletes
them through a mount (`exercise`, which prints a transcript), and as a layer directory ends up (`tree`).
Every name is printed in hex, so that two transcripts are equal exactly when the names are."""
import errno, os, stat, sys

BYTES = [b for b in range(1, 256) if b != 0x2F]
LONG = b"L" * 255


def names(prefix, alone=False):
    """prefix+byte+"z" for every byte; `alone` adds each byte as a name of its own."""
    out = [prefix + bytes([b]) + b"z" for b in BYTES]
    if alone:
        out += [bytes([b]) for b in BYTES if b != 0x2E]
    return out


def hexname(name):
    return name.hex()


def attempt(label, action):
    try:
        result = action()
        print(label, "ok" if result is None else result)
    except OSError as error:
        print(label, errno.errorcode.get(error.errno, error.errno))


def describe(path):
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    extra = ""
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            extra = f.read().hex()
    elif stat.S_ISLNK(st.st_mode):
        extra = os.readlink(path).hex()
    return "%o %s" % (kind, extra)


def listing(directory):
    return sorted(os.listdir(directory))


def prepare(layer):
    os.makedirs(os.path.join(layer, b"lower"), exist_ok=True)
    for name in names(b"l", alone=True) + [LONG]:
        with open(os.path.join(layer, b"lower", name), "wb") as f:
            f.write(b"lower " + name)
    os.makedirs(os.path.join(layer, b"lower", b"dir\xe9"), exist_ok=True)
    os.symlink(b"target\xff\x01", os.path.join(layer, b"lower", b"link\xfe"))


def exercise(mount):
    lower = os.path.join(mount, b"lower")
    print("lower", " ".join(hexname(n) for n in listing(lower)))
    for name in listing(lower):
        attempt("stat " + hexname(name), lambda: describe(os.path.join(lower, name)))
    for index, name in enumerate(names(b"l", alone=True) + [LONG]):
        path = os.path.join(lower, name)
        if index % 3 == 0:
            attempt("unlink " + hexname(name), lambda: os.unlink(path))
        elif index % 3 == 1:
            attempt("rename " + hexname(name), lambda: os.rename(path, path[:200] + b"R"))
        else:
            attempt("append " + hexname(name), lambda: open(path, "ab").write(b"+"))
    made = os.path.join(mount, b"made\x80")
    attempt("mkdir made", lambda: os.mkdir(made))
    for name in names(b"c", alone=True) + [LONG]:
        path = os.path.join(made, name)
        attempt("create " + hexname(name), lambda: open(path, "xb").write(name))
        attempt("setxattr " + hexname(name), lambda: os.setxattr(path, b"user.v" + name[:200], name))
    for name in names(b"s"):
        attempt("symlink " + hexname(name), lambda: os.symlink(b"t" + name, os.path.join(made, name)))
    for name in names(b"d"):
        attempt("mkdir " + hexname(name), lambda: os.mkdir(os.path.join(made, name)))
    print("made", " ".join(hexname(n) for n in listing(made)))
    for name in listing(made):
        path = os.path.join(made, name)
        attempt("stat " + hexname(name), lambda: describe(path))
        if not os.path.islink(path):
            attempt("xattrs " + hexname(name),
                    lambda: " ".join(a.encode("utf-8", "surrogateescape").hex() + "=" + os.getxattr(path, a).hex()
                                     for a in sorted(os.listxattr(path)) if a.startswith("user.")))
    for index, name in enumerate(names(b"c", alone=True)):
        path = os.path.join(made, name)
        if index % 2:
            attempt("unlink " + hexname(name), lambda: os.unlink(path))
        else:
            attempt("rename " + hexname(name), lambda: os.rename(path, os.path.join(made, b"C" + name)))
    for index, name in enumerate(names(b"d")):
        if index % 2:
            attempt("rmdir " + hexname(name), lambda: os.rmdir(os.path.join(made, name)))
    for path in (lower, made, mount):
        print("final", hexname(os.path.relpath(path, mount)), " ".join(hexname(n) for n in listing(path)))


def tree(root):
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            rdev = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISCHR(st.st_mode) else ""
            print(hexname(os.path.relpath(path, root)), "%o" % stat.S_IFMT(st.st_mode), rdev)


if __name__ == "__main__":
    command, target = sys.argv[1], os.fsencode(sys.argv[2])
    {"prepare": prepare, "exercise": exercise, "tree": tree}[command](target)
