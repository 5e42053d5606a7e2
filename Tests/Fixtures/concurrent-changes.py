#!/usr/bin/env python3
"""concurrent-changes.py CASE MOUNT [ARGS]: processes that change one mount at the same moment (started together by a
barrier), each checking what it saw. Prints what went wrong, one line each, and "ok" when nothing did.

  appenders MOUNT PROCESSES FILES   every process appends one line to each of FILES lower files (f0..)
  namespace MOUNT PROCESSES ROUNDS  in one directory (dir), every process creates, writes, renames and unlinks
                                    its own names, and renames and removes the lower names it owns (lowerP-R)
  readers MOUNT FILES               writers append to lower files while readers read them over and over: a
                                    reader sees the old content or the old content plus the appended line"""
import multiprocessing, os, sys

case, mount = sys.argv[1], sys.argv[2]


def run(count, work):
    barrier = multiprocessing.Barrier(count)
    queue = multiprocessing.Queue()

    def body(index):
        barrier.wait()
        problems = []
        try:
            work(index, problems)
        except Exception as error:  # a process that dies is a problem too
            problems.append("process %d: %r" % (index, error))
        queue.put(problems)

    processes = [multiprocessing.Process(target=body, args=(index,)) for index in range(count)]
    for process in processes:
        process.start()
    problems = []
    for _ in processes:
        problems += queue.get(timeout=600)
    for process in processes:
        process.join()
    return problems


def appenders(processes, files):
    def work(index, problems):
        for number in range(files):
            path = os.path.join(mount, "f%d" % number)
            try:
                with open(path, "a") as f:
                    f.write("process %d\n" % index)
            except OSError as error:
                problems.append("process %d, f%d: %s" % (index, number, error))
    problems = run(processes, work)
    for number in range(files):
        lines = open(os.path.join(mount, "f%d" % number)).read().splitlines()
        expected = ["lower %d" % number] + ["process %d" % index for index in range(processes)]
        if lines[:1] != expected[:1] or sorted(lines[1:]) != sorted(expected[1:]):
            problems.append("f%d holds %r" % (number, lines))
    return problems


def namespace(processes, rounds):
    directory = os.path.join(mount, "dir")

    def work(index, problems):
        for round in range(rounds):
            temporary = os.path.join(directory, "tmp-%d" % index)
            final = os.path.join(directory, "new-%d-%d" % (index, round))
            lower = os.path.join(directory, "lower%d-%d" % (index, round))
            try:
                with open(temporary, "w") as f:
                    f.write("%d %d\n" % (index, round))
                os.rename(temporary, final)
                if round:
                    os.unlink(os.path.join(directory, "new-%d-%d" % (index, round - 1)))
                if round % 2:
                    os.rename(lower, lower + "-moved")
                else:
                    os.unlink(lower)
            except OSError as error:
                problems.append("process %d, round %d: %s" % (index, round, error))
    problems = run(processes, work)
    expected = sorted(["new-%d-%d" % (index, rounds - 1) for index in range(processes)]
                      + ["lower%d-%d-moved" % (index, round) for index in range(processes) for round in range(1, rounds, 2)])
    listed = sorted(os.listdir(directory))
    if listed != expected:
        problems.append("dir lists %d names, %d expected; first differences %r"
                        % (len(listed), len(expected), sorted(set(listed) ^ set(expected))[:5]))
    for index in range(processes):
        content = open(os.path.join(directory, "new-%d-%d" % (index, rounds - 1))).read()
        if content != "%d %d\n" % (index, rounds - 1):
            problems.append("new-%d holds %r" % (index, content))
    return problems


def readers(files):
    def work(index, problems):
        for number in range(files):
            path = os.path.join(mount, "f%d" % number)
            old = "lower %d\n" % number
            if index == 0:
                try:
                    with open(path, "a") as f:
                        f.write("appended\n")
                except OSError as error:
                    problems.append("writer, f%d: %s" % (number, error))
                continue
            for _ in range(5):
                try:
                    content = open(path).read()
                except OSError as error:
                    problems.append("reader %d, f%d: %s" % (index, number, error))
                    continue
                if content not in (old, old + "appended\n"):
                    problems.append("reader %d saw f%d as %r" % (index, number, content))
    problems = run(4, work)
    for number in range(files):
        content = open(os.path.join(mount, "f%d" % number)).read()
        if content != "lower %d\nappended\n" % number:
            problems.append("f%d ends as %r" % (number, content))
    return problems


arguments = [int(value) for value in sys.argv[3:]]
found = {"appenders": appenders, "namespace": namespace, "readers": readers}[case](*arguments)
for problem in found[:30]:
    print(problem)
print("ok" if not found else "%d problems" % len(found))
