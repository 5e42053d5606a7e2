#!/usr/bin/env python3
"""evil-tars.py DIR: one-layer OCI image layouts, DIR/CASE tagged "evil", whose layer has an entry that would
land outside the directory it is unpacked into: an absolute path, a `..` path, a file written through a
symbolic link that points outside, a hard link to an absolute path. Written with tarfile, which (unlike GNU
tar) stores such names as given."""
import io, os, sys, tarfile

import oci_layout

def entry(name, kind="file", link=""):
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
    info.linkname = link
    info.size = 1 if kind == "file" else 0
    return info, io.BytesIO(b"x") if kind == "file" else None

cases = {
    "absolute": [entry("/tmp/strata-escaped-absolute")],
    "dotdot": [entry("../strata-escaped-dotdot")],
    "symlink": [entry("link", "symlink", "/tmp"), entry("link/strata-escaped-symlink")],
    "hardlink": [entry("shadow", "hardlink", "/etc/shadow")],
}
for name, entries in cases.items():
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        for info, data in entries:
            archive.addfile(info, data)
    oci_layout.write(os.path.join(sys.argv[1], name), {"evil": tar.getvalue()})
