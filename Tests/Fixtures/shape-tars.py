#!/usr/bin/env python3
"""shape-tars.py DIR: layer tarballs with names of every shape GNU tar accepts (one character, ./ prefixes,
doubled and trailing slashes, "." components, a 255-byte name, a non-UTF-8 byte, duplicates, a file over an
empty directory, a directory over a file) as DIR/shapes.tar, one that puts a file over a directory that is not
empty as DIR/nonempty.tar, and each as a one-layer OCI image in DIR/layout tagged by its name."""
import hashlib, io, json, os, sys, tarfile

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

def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}

cases = {
    "shapes": [("a", "dir"), ("a/b",), ("./c",), ("./d/", "dir"), ("e//f",), ("g/", "dir"), ("L" * 255,), ("x\udce9",),
               ("dup", "file", b"one"), ("dup", "file", b"two"), ("emptydir", "dir"), ("emptydir", "file", b"now a file"),
               ("file2dir", "file", b"f"), ("file2dir", "dir"), ("./././h",), ("i/./j",)],
    "nonempty": [("full", "dir"), ("full/inner",), ("full", "file", b"file over a full directory")],
}
root = sys.argv[1]
layout = os.path.join(root, "layout")
os.makedirs(os.path.join(layout, "blobs", "sha256"))
manifests = []
for name, entries in cases.items():
    data = tarball(entries)
    with open(os.path.join(root, name + ".tar"), "wb") as f:
        f.write(data)
    layer = blob(layout, data)
    config = blob(layout, json.dumps({"architecture": "amd64", "os": "linux",
                                      "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    manifest = blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config),
        "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **layer)]}).encode())
    manifests.append(dict(mediaType="application/vnd.oci.image.manifest.v1+json",
                          annotations={"org.opencontainers.image.ref.name": name}, **manifest))
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": manifests}, f)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
