#!/usr/bin/env python3
"""snapshot.py ROOT [--no-ino]: the view a user gets of a tree, one JSON object per path, sorted.

Records what ls, stat, readlink and cat show. Checks on the way that readdir's d_ino equals stat's st_ino
for every entry, and reports a mismatch as a field of its own so a comparison shows it."""
import hashlib, json, os, stat, sys

def walk(root, keep_ino):
    out = {}
    def visit(rel):
        path = os.path.join(root, rel) if rel else root
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            child = os.path.join(rel, e.name) if rel else e.name
            st = os.lstat(e.path)
            rec = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid,
                   "gid": st.st_gid, "nlink": st.st_nlink, "mtime_ns": st.st_mtime_ns}
            if keep_ino:
                rec["ino"] = st.st_ino
                if e.inode() != st.st_ino:
                    rec["d_ino_mismatch"] = e.inode()
            if stat.S_ISREG(st.st_mode):
                rec["size"] = st.st_size
                with open(e.path, "rb") as f:
                    rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(e.path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                rec["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
            out[child] = rec
            if stat.S_ISDIR(st.st_mode):
                visit(child)
    visit("")
    return out

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    keep_ino = "--no-ino" not in sys.argv
    view = walk(args[0], keep_ino)
    if "--stable-times" in sys.argv:
        # Times set by a test run itself (not by the fixture) differ from run to run.
        for rec in view.values():
            if rec["mtime_ns"] > 1_700_000_000 * 10**9:
                rec.pop("mtime_ns")
    for path in sorted(view):
        print(json.dumps({"path": path, **view[path]}, sort_keys=True))
