#!/usr/bin/env python3
"""evil-tars.py DIR: one-layer OCI image layouts, DIR/CASE tagged "evil", whose layer has an entry that would
land outside the directory it is unpacked into: an absolute path, a `..` path, a file written through a
symbolic link that points outside, a hard link to an absolute path. Written with tarfile, which (unlike GNU
tar) stores such names as given."""
import hashlib, io, json, os, sys, tarfile

def entry(name, kind="file", link=""):
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
    info.linkname = link
    info.size = 1 if kind == "file" else 0
    return info, io.BytesIO(b"x") if kind == "file" else None

def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}

cases = {
    "absolute": [entry("/tmp/strata-escaped-absolute")],
    "dotdot": [entry("../strata-escaped-dotdot")],
    "symlink": [entry("link", "symlink", "/tmp"), entry("link/strata-escaped-symlink")],
    "hardlink": [entry("shadow", "hardlink", "/etc/shadow")],
}
for name, entries in cases.items():
    layout = os.path.join(sys.argv[1], name)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        for info, data in entries:
            archive.addfile(info, data)
    layer = blob(layout, tar.getvalue())
    config = blob(layout, json.dumps({"architecture": "amd64", "os": "linux",
                                      "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    manifest = blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config),
        "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **layer)]}).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
                   annotations={"org.opencontainers.image.ref.name": "evil"}, **manifest)]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
