#!/usr/bin/env python3
"""live-changes.py BASE MNT XATTR_PREFIX WHITEOUT: changes made directly in the layers of a live `-o watch`
mount, each checked through the mount by polling (no fixed sleep) for at most 100 ms.

BASE holds the layers the mount stacks as lowerdir=BASE/B:BASE/A,upperdir=BASE/U; `prepare` builds them,
`run` makes the changes against the mount at MNT. XATTR_PREFIX is "trusted" or "user" (the overlay's
attribute namespace), WHITEOUT "chardev" or "file" (how to whiteout a name by hand). Prints one line per
check, "ok NAME" or "FAIL NAME: ...", and exits non-zero when any failed."""
import os, subprocess, sys, time

WITHIN = 0.1


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as error:
        return "<%s>" % error.strerror


def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as error:
        return "<%s>" % error.strerror


def prepare(base):
    a, b, u = (os.path.join(base, x) for x in "ABU")
    for layer in (a, b, u, os.path.join(base, "W"), os.path.join(base, "mnt")):
        os.makedirs(layer, exist_ok=True)
    write(f"{a}/edited", "old\n")
    write(f"{a}/copied", "lower\n")
    write(f"{a}/through", "from A\n")
    write(f"{b}/through", "from B\n")
    write(f"{a}/only", "only\n")
    os.makedirs(f"{a}/dir/sub")
    write(f"{a}/dir/sub/file", "in dir\n")
    os.makedirs(f"{a}/moved")
    write(f"{a}/moved/file", "moved\n")
    write(f"{a}/hide-me", "hide me\n")
    os.makedirs(f"{a}/od")
    write(f"{a}/od/lower-file", "lower\n")
    os.makedirs(f"{u}/od")
    write(f"{u}/od/upper-file", "upper\n")
    write(f"{a}/conf", "version 1\n")
    write(f"{a}/held", "held 1\n")
    write(f"{u}/upper-only", "upper\n")
    write(f"{u}/over", "upper over\n")
    write(f"{a}/over", "lower over\n")


class Checks:
    def __init__(self):
        self.failed = 0

    def expect(self, name, probe, wanted):
        """Polls `probe` until it gives `wanted`, for at most WITHIN seconds."""
        start = time.monotonic()
        while True:
            seen = probe()
            if seen == wanted:
                print("ok %s (%.1f ms)" % (name, (time.monotonic() - start) * 1000))
                return
            if time.monotonic() > start + WITHIN:
                self.failed += 1
                print("FAIL %s: saw %r, wanted %r" % (name, seen, wanted))
                return
            time.sleep(0.002)


def whiteout(path, form):
    if form == "chardev":
        os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))
    else:
        directory, name = os.path.split(path)
        write(os.path.join(directory, ".wh." + name), "")


def remove_whiteout(path, form):
    if form == "chardev":
        os.unlink(path)
    else:
        directory, name = os.path.split(path)
        os.unlink(os.path.join(directory, ".wh." + name))


def run(base, mnt, prefix, form):
    a, b, u = (os.path.join(base, x) for x in "ABU")
    checks = Checks()
    expect = checks.expect
    # Let the kernel see (and cache) everything first.
    for root, dirs, files in os.walk(mnt):
        for name in files:
            read(os.path.join(root, name))

    # A lower file edited in place shows its new content; a copied-up one keeps its own.
    write(f"{a}/edited", "new\n")
    expect("lower file edited", lambda: read(f"{mnt}/edited"), "new\n")
    with open(f"{mnt}/copied", "a") as f:
        f.write("appended\n")
    write(f"{a}/copied", "changed below\n")
    write(f"{a}/sentinel-1", "")
    expect("sentinel after the copied-up file's change", lambda: os.path.exists(f"{mnt}/sentinel-1"), True)
    expect("copied-up file keeps its content", lambda: read(f"{mnt}/copied"), "lower\nappended\n")

    # New lower files appear, unless a whiteout or an opaque directory hides them.
    write(f"{a}/created", "created\n")
    expect("lower file created", lambda: read(f"{mnt}/created"), "created\n")
    expect("created file listed", lambda: "created" in listing(mnt), True)
    whiteout(f"{u}/hidden", form)
    write(f"{a}/hidden", "hidden\n")
    write(f"{a}/od/new-lower", "x\n")
    os.setxattr(f"{u}/od", prefix + ".overlay.opaque", b"y")
    write(f"{a}/sentinel-2", "")
    expect("sentinel after hidden creations", lambda: os.path.exists(f"{mnt}/sentinel-2"), True)
    expect("a whited-out name stays hidden", lambda: os.path.exists(f"{mnt}/hidden"), False)
    expect("an opaque directory hides its lower part", lambda: listing(f"{mnt}/od"), ["upper-file"])
    os.removexattr(f"{u}/od", prefix + ".overlay.opaque")
    expect("an opaque marker removed shows the lower part", lambda: listing(f"{mnt}/od"),
           ["lower-file", "new-lower", "upper-file"])

    # Deleted lower files disappear, or the next layer down shows through.
    os.unlink(f"{b}/through")
    expect("the layer below shows through", lambda: read(f"{mnt}/through"), "from A\n")
    os.unlink(f"{a}/only")
    expect("a deleted lower file disappears", lambda: os.path.exists(f"{mnt}/only"), False)

    # A lower directory renamed moves; a redirect to its old name then misses.
    os.rename(f"{mnt}/moved", f"{mnt}/renamed")
    expect("a rename through the mount follows its redirect", lambda: read(f"{mnt}/renamed/file"), "moved\n")
    os.rename(f"{a}/dir", f"{a}/dir2")
    expect("a renamed lower directory is gone from its old name", lambda: os.path.exists(f"{mnt}/dir"), False)
    expect("a renamed lower directory shows at its new name", lambda: read(f"{mnt}/dir2/sub/file"), "in dir\n")
    os.rename(f"{a}/moved", f"{a}/moved-away")
    expect("a redirect to a renamed lower directory misses", lambda: listing(f"{mnt}/renamed"), [])

    # Whiteouts made and removed by hand take effect.
    whiteout(f"{u}/hide-me", form)
    expect("a whiteout made in the upper layer hides", lambda: os.path.exists(f"{mnt}/hide-me"), False)
    remove_whiteout(f"{u}/hide-me", form)
    expect("a whiteout removed shows the lower file", lambda: read(f"{mnt}/hide-me"), "hide me\n")

    # An editor's save (write a new file, rename it over the old) shows the new file; an open file keeps
    # reading what it opened.
    held = open(f"{mnt}/held")
    write(f"{a}/conf.new", "version 2\n")
    os.rename(f"{a}/conf.new", f"{a}/conf")
    expect("a save by rename-over shows the new file", lambda: read(f"{mnt}/conf"), "version 2\n")
    write(f"{a}/held.new", "held 2\n")
    os.rename(f"{a}/held.new", f"{a}/held")
    expect("a new open after a rename-over reads the new file", lambda: read(f"{mnt}/held"), "held 2\n")
    expect("an open file keeps reading what it opened", lambda: os.pread(held.fileno(), 100, 0), b"held 1\n")
    held.close()

    # Changes made in the upper layer by hand show too.
    write(f"{u}/from-outside", "outside\n")
    expect("an upper file created by hand appears", lambda: read(f"{mnt}/from-outside"), "outside\n")
    write(f"{u}/upper-only", "edited\n")
    expect("an upper file edited by hand", lambda: read(f"{mnt}/upper-only"), "edited\n")
    os.unlink(f"{u}/over")
    expect("an upper file deleted by hand shows the lower one", lambda: read(f"{mnt}/over"), "lower over\n")
    return checks.failed


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    else:
        sys.exit(1 if run(*sys.argv[2:6]) else 0)
