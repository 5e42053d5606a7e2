#!/usr/bin/env python3
"""exercise.py FILE SEED SECONDS [--verify-only MODEL]: random writes, appends, truncates, punched holes and
shared-mmap writes on FILE, checked against an in-memory model of its bytes after every step. Writes the model
to FILE.model so a later run (after a remount) can check the file still holds exactly that.
Exits non-zero at the first mismatch, naming the step."""
import mmap, os, random, sys, time

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2

def check(fd, model, step):
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data += chunk
    if data != bytes(model):
        where = next((i for i, (a, b) in enumerate(zip(data, model)) if a != b), min(len(data), len(model)))
        sys.exit(f"mismatch after {step}: size {len(data)} vs {len(model)}, first difference at {where}")

def main():
    path, seed, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if "--verify-only" in sys.argv:
        model = open(path + ".model", "rb").read()
        fd = os.open(path, os.O_RDONLY)
        check(fd, model, "remount")
        print("verified", len(model), "bytes")
        return
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDWR)
    model = bytearray(open(path, "rb").read())
    deadline, steps = time.time() + seconds, 0
    libc = __import__("ctypes").CDLL(None, use_errno=True)
    while time.time() < deadline:
        op = rng.choice(["write", "write", "append", "truncate", "punch", "mmap"])
        size = len(model)
        if op == "write":
            offset, data = rng.randrange(0, size + 70000), rng.randbytes(rng.randrange(1, 70000))
            os.pwrite(fd, data, offset)
            if offset > size:
                model.extend(b"\0" * (offset - size))
            model[offset:offset + len(data)] = data
        elif op == "append":
            data = rng.randbytes(rng.randrange(1, 5000))
            afd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(afd, data)
            os.close(afd)
            model.extend(data)
        elif op == "truncate":
            new = rng.randrange(0, size + 100000)
            os.ftruncate(fd, new)
            model = model[:new] + bytearray(max(0, new - size))
        elif op == "punch" and size > 0:
            offset = rng.randrange(0, size)
            length = rng.randrange(1, size - offset + 1)
            if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
                sys.exit(f"fallocate punch hole failed: errno {__import__('ctypes').get_errno()}")
            model[offset:offset + length] = bytearray(length)
        elif op == "mmap" and size > 0:
            with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
                offset = rng.randrange(0, size)
                data = rng.randbytes(min(rng.randrange(1, 10000), size - offset))
                m[offset:offset + len(data)] = data
                m.flush()
            model[offset:offset + len(data)] = data
        steps += 1
        check(fd, model, f"step {steps} ({op})")
    os.fsync(fd)
    os.close(fd)
    open(path + ".model", "wb").write(model)
    print(f"{steps} steps, {len(model)} bytes, no mismatch")

main()
