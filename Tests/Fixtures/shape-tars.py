#!/usr/bin/env python3
"""shape-tars.py DIR: layer tarballs with names of every shape GNU tar accepts (one character, ./ prefixes,
doubled and trailing slashes, "." components, a 255-byte name, a non-UTF-8 byte, duplicates, a file over an
empty directory, a directory over a file) as DIR/shapes.tar, one that puts a file over a directory that is not
empty as DIR/nonempty.tar, and each as a one-layer OCI image in DIR/layout tagged by its name."""
import io, os, sys, tarfile

import oci_layout

def add(archive, name, kind="file", data=b"x"):
    info = tarfile.TarInfo(name)
    info.mtime = 1_600_000_000
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

def tarball(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape") as archive:
        for entry in entries:
            add(archive, *entry)
    return out.getvalue()

cases = {
    "shapes": [("a", "dir"), ("a/b",), ("./c",), ("./d/", "dir"), ("e//f",), ("g/", "dir"), ("L" * 255,), ("x\udce9",),
               ("dup", "file", b"one"), ("dup", "file", b"two"), ("emptydir", "dir"), ("emptydir", "file", b"now a file"),
               ("file2dir", "file", b"f"), ("file2dir", "dir"), ("./././h",), ("i/./j",)],
    "nonempty": [("full", "dir"), ("full/inner",), ("full", "file", b"file over a full directory")],
}
root = sys.argv[1]
images = {}
for name, entries in cases.items():
    images[name] = tarball(entries)
    with open(os.path.join(root, name + ".tar"), "wb") as f:
        f.write(images[name])
oci_layout.write(os.path.join(root, "layout"), images)
