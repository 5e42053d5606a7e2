#!/usr/bin/env python3
"""evil-tars.py DIR: layer tarballs whose entries would land outside the directory they are unpacked into:
an absolute path, a `..` path, a file written through a symbolic link that points outside, a hard link to
an absolute path. Written with tarfile, which (unlike GNU tar) stores such names as given."""
import io, os, sys, tarfile

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
    with tarfile.open(os.path.join(sys.argv[1], name + ".tar"), "w") as tar:
        for info, data in entries:
            tar.addfile(info, data)
