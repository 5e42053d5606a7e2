#!/usr/bin/env python3
"""fuzz-tars.py STRATA WORKDIR SEED COUNT: random layer tarballs, each unpacked with `strata unpack`.

Builds OCI image layouts in WORKDIR/layoutN with COUNT images in all (tags case0...), each a single layer of random
entries: names of every shape (one character, ./ prefixes, trailing and doubled slashes, absolute, .., 255 and
256 bytes, non-UTF-8, .wh. markers, duplicates, a file over a directory), every type, link targets inside and
outside, PAX records with xattrs (overlay-private ones among them), and damaged archives (cut short, sizes
that lie, garbage). Then runs `strata unpack layout:caseN WORKDIR/out/N` for each and checks:
  - strata never dies of a signal or a trap (exit status 0 or 1, no "Fatal error");
  - a refusal names its entry (or the entry's position, for a header that cannot be read);
  - nothing outside WORKDIR/out changes: a canary tree beside it is compared before and after;
  - no overlay-private attribute is ever written into an unpacked layer.
Prints one summary line, and each violation on a line of its own; exits 1 if there was any."""
import concurrent.futures, io, os, random, subprocess, sys, tarfile

import oci_layout

strata, work, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
canary = os.path.join(work, "canary")
ESCAPE = "/tmp/strata-fuzz-escaped-%d" % seed

# Half the tarballs use only names a layer can hold (so that they get unpacked); the others add the rest.
WORDS = ["a", "b", "x", "dir", "file", "é", "\udce9t", "\udcff", ".wh.a", ".wh.b", ".wh..wh..opq", "L" * 255, "lnk",
         "d", " ", "-", "\\", "*", "."]
HOSTILE_WORDS = WORDS + [".wh.", ".wh..", "M" * 256, "..", ""]
hostile = False


def name():
    parts = [rng.choice(HOSTILE_WORDS if hostile else WORDS) for _ in range(rng.randint(1, 4))]
    text = "/".join(parts)
    shape = rng.random() if hostile else rng.random() * 0.2 + 0.05
    if shape < 0.05:
        text = "/" + text
    elif shape < 0.15:
        text = "./" + text
    elif shape < 0.2:
        text = text + "/"
    elif shape < 0.25:
        text = text.replace("/", "//")
    elif shape < 0.28:
        text = "../" + text
    elif shape < 0.3:
        text = ESCAPE + "/" + text
    return text


def target():
    if not hostile:
        return rng.choice(["a", "b", "dir/file", "lnk/a", name()])
    return rng.choice(["a", "../" * rng.randint(1, 6) + "canary/secret", canary, canary + "/secret", "/", "/etc/passwd",
                       "lnk/a", "dir/file", "", ".", "x" * 300, name()])


def entry():
    info = tarfile.TarInfo(name())
    kind = rng.choice(["file"] * 5 + ["dir"] * 3 + ["symlink", "hardlink", "char", "block", "fifo"])
    data = None
    if kind == "file":
        payload = rng.randbytes(rng.choice([0, 1, 10, 600]))
        info.size = len(payload)
        data = io.BytesIO(payload)
    elif kind == "dir":
        info.type = tarfile.DIRTYPE
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, target()
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, target()
    else:
        info.type = {"char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
        info.devmajor, info.devminor = rng.choice([(0, 0), (1, 3), (8, 0)])
    info.mode = rng.choice([0o644, 0o755, 0o4755, 0o777, 0o000, 0o7777])
    info.uid, info.gid = rng.choice([(0, 0), (1000, 1000), (65534, 65534), (2**21 - 1, 0)])
    info.mtime = rng.choice([0, 1_600_000_000, 2**33 - 1])
    pax = {}
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(["trusted.overlay.redirect", "trusted.overlay.opaque", "user.overlay.redirect",
                          "user.overlay.origin", "trusted.overlay.strata.ino", "user.strata.layer", "user.kept",
                          "security.capability", "user.\udce9", "trusted.other"])
        pax["SCHILY.xattr." + key] = rng.choice(["/../../etc", "y", "\udcff\udcfe", "x" * 2000, ""])
    if rng.random() < 0.1:
        pax["path"] = name()
    if rng.random() < 0.05:
        pax["linkpath"] = target()
    if rng.random() < 0.03:
        pax["size"] = rng.choice(["-1", "99999999999999999999", "abc"])
    info.pax_headers = pax
    return info, data


def tarball():
    global hostile
    hostile = rng.random() < 0.5
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=rng.choice([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
                      encoding="utf-8", errors="surrogateescape") as archive:
        for _ in range(rng.randint(1, 12)):
            info, data = entry()
            try:
                archive.addfile(info, data)
            except (ValueError, UnicodeError, OverflowError, tarfile.TarError):
                pass
    raw = bytearray(out.getvalue())
    damage = rng.random() if hostile else 1
    if damage < 0.08:
        raw = raw[: rng.randint(0, len(raw))]
    elif damage < 0.14:
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] = rng.getrandbits(8)
    elif damage < 0.17:
        raw[124:136] = b"77777777777\0"  # a size far beyond the data
    elif damage < 0.19:
        raw = bytearray(rng.randbytes(rng.choice([10, 512, 2048])))
    return bytes(raw)


def snapshot(root):
    seen = {}
    for directory, dirs, files in os.walk(root):
        for item in dirs + files:
            path = os.path.join(directory, item)
            st = os.lstat(path)
            content = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else b""
            seen[path] = (st.st_mode, st.st_size, st.st_mtime_ns, content, tuple(sorted(os.listxattr(path, follow_symlinks=False))))
    return seen


def reserved_xattrs(root):
    found = []
    for directory, dirs, files in os.walk(root):
        for item in dirs + files:
            path = os.path.join(directory, item)
            try:
                names = os.listxattr(path, follow_symlinks=False)
            except OSError:
                continue
            found += [(path, n) for n in names if n.startswith(("trusted.overlay.", "user.overlay.", "user.strata."))
                      and not (n == "trusted.overlay.opaque" and os.path.isdir(path) and not os.path.islink(path))]
    return found


# Images go into layouts of 50 each: strata reads a layout's whole index for every unpack.
PER_LAYOUT = 50


def layout_of(case):
    return os.path.join(work, "layout%d" % (case // PER_LAYOUT))


os.makedirs(os.path.join(canary, "inner"))
with open(os.path.join(canary, "secret"), "w") as f:
    f.write("canary")
images = {}
for case in range(count):
    images.setdefault(layout_of(case), {})["case%d" % case] = tarball()
for layout, tagged in images.items():
    oci_layout.write(layout, tagged)
before = snapshot(canary)


def run(case):
    destination = os.path.join(work, "out", str(case))
    outcome = subprocess.run([strata, "unpack", "%s:case%d" % (layout_of(case), case), destination],
                             capture_output=True, timeout=60)
    return case, outcome.returncode, outcome.stderr.decode("utf-8", "replace")


problems, refused, unpacked = [], 0, 0
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    for case, status, error in pool.map(run, range(count)):
        if status not in (0, 1) or "Fatal error" in error:
            problems.append("case %d: strata ended with status %d: %s" % (case, status, error.strip()[:300]))
        elif status == 1:
            refused += 1
            if not any(mark in error for mark in ("refused tar entry", "(after ", ": entry ")):
                problems.append("case %d: a refusal that names no entry: %s" % (case, error.strip()[:300]))
        else:
            unpacked += 1
if snapshot(canary) != before:
    problems.append("the canary tree beside the destination changed")
if os.path.lexists(ESCAPE):
    problems.append("an absolute entry landed outside the destination: " + ESCAPE)
for path, attribute in reserved_xattrs(os.path.join(work, "out")):
    problems.append("%s carries %s, which came from the tarball" % (path, attribute))
print("%d cases: %d unpacked, %d refused, %d problems" % (count, unpacked, refused, len(problems)))
for problem in problems[:50]:
    print(problem)
sys.exit(1 if problems else 0)
