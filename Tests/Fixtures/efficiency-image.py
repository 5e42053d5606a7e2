#!/usr/bin/env python3
"""efficiency-image.py LAYOUT: an OCI image layout with the image `wasteful`, three layers from the base up:
  base:  /big (10 MiB), /small (100 bytes), /etc/conf (10 bytes), /gone/a (1000 bytes)
  chmod: /big again with mode 600 (as `chmod 600 /big` in a Dockerfile carries it), a whiteout of /small
  fix:   /etc/conf again (20 bytes), an opaque /gone with /gone/b (5 bytes)
and the image `lean`: one layer with /big only."""
import io, os, sys, tarfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci_layout


def tar(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


big = b"b" * (10 << 20)
base = tar([("big", big, 0o644), ("small", b"s" * 100, 0o644), ("etc", None, 0), ("etc/conf", b"c" * 10, 0o644),
            ("gone", None, 0), ("gone/a", b"a" * 1000, 0o644)])
chmod = tar([("big", big, 0o600), (".wh.small", b"", 0o644)])
fix = tar([("etc", None, 0), ("etc/conf", b"C" * 20, 0o644), ("gone", None, 0), ("gone/.wh..wh..opq", b"", 0o644),
           ("gone/b", b"B" * 5, 0o644)])
oci_layout.write(sys.argv[1], {"wasteful": [(base, "ADD rootfs /"), (chmod, "RUN chmod 600 /big && rm /small"),
                                            (fix, "COPY conf /etc/conf")],
                               "lean": [(tar([("big", big, 0o644)]), "ADD big /")]})
