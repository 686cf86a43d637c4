"""A PyWren-style job over Pocket: map, shuffle and reduce in worker
processes that share nothing but the store, written with Pocket's module
API exactly as a Pocket user would.

    POCKET_CONTROLLER=127.0.0.1:7000 POCKET_TLS_DIR=~/.pocket/tls \\
        python3 wordcount.py [--maps 4] [--reduces 3] [--words 20000]

The driver registers the job, writes the input partitions and starts the
workers (spawned processes, as lambdas are: they find the job through
POCKET_JOB and POCKET_TOKEN). Each map task counts the words of its
partition and writes one shuffle file per reduce task; each reduce task
reads its shuffle files (DELETE_AFTER_READ) and writes its counts. The
driver checks the result against a count made locally, prints it, and
deregisters the job. Exit status 0 when the counts agree.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import random
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pocket  # noqa: E402

VOCAB = ["pocket", "lambda", "shuffle", "sort", "elastic", "ephemeral", "store", "node", "tier", "dram", "nvme",
         "chunk", "map", "reduce", "job", "token", "epoch", "controller", "hint", "burst"]


def connect():
    host, port = os.environ["POCKET_CONTROLLER"].rsplit(":", 1)
    return pocket.connect(host, int(port))


def partition(i: int, words: int) -> str:
    """Input partition i: words drawn from VOCAB, seeded by i."""
    r = random.Random(i)
    return " ".join(r.choice(VOCAB) for _ in range(words))


def map_task(args) -> int:
    i, reduces, jobid = args
    p = connect()
    size = int(os.environ["WORDCOUNT_PART_BYTES"].split(",")[i])
    buf = bytearray(size)
    if pocket.get_buffer(p, f"input/part-{i}", buf, size, jobid) != 0:
        raise RuntimeError(f"map {i}: get input: {pocket.last_error()}")
    counts = collections.Counter(buf.decode().split())
    out = [dict() for _ in range(reduces)]
    for w, n in counts.items():
        out[zlib.crc32(w.encode()) % reduces][w] = n
    for r, part in enumerate(out):
        data = json.dumps(part).encode()
        if pocket.put_buffer(p, data, len(data), f"shuffle/map-{i}/reduce-{r}", jobid) != 0:
            raise RuntimeError(f"map {i}: put shuffle: {pocket.last_error()}")
    pocket.close(p)
    return sum(counts.values())


def reduce_task(args) -> int:
    r, maps, jobid, tmpdir = args
    p = connect()
    total = collections.Counter()
    for i in range(maps):
        path = os.path.join(tmpdir, f"reduce-{r}-map-{i}")
        if pocket.get(p, f"shuffle/map-{i}/reduce-{r}", path, jobid, DELETE_AFTER_READ=True) != 0:
            raise RuntimeError(f"reduce {r}: get shuffle from map {i}: {pocket.last_error()}")
        with open(path) as f:
            total.update(json.load(f))
        os.unlink(path)
    data = json.dumps(total, sort_keys=True).encode()
    if pocket.put_buffer(p, data, len(data), f"output/reduce-{r}", jobid, PERSIST_AFTER_JOB=False) != 0:
        raise RuntimeError(f"reduce {r}: put output: {pocket.last_error()}")
    pocket.close(p)
    return len(total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--maps", type=int, default=4)
    ap.add_argument("--reduces", type=int, default=3)
    ap.add_argument("--words", type=int, default=20000, help="words per input partition")
    ap.add_argument("--tmp", default="/tmp", help="directory for the reduce tasks' downloaded files")
    a = ap.parse_args()

    jobid = pocket.register_job("wordcount", num_lambdas=a.maps + a.reduces)
    if jobid is None:
        print("register_job failed:", pocket.last_error(), file=sys.stderr)
        return 1
    try:
        p = connect()
        expected = collections.Counter()
        sizes = []
        pocket.create_dir(p, "input", jobid)
        for i in range(a.maps):
            text = partition(i, a.words)
            expected.update(text.split())
            sizes.append(str(len(text)))
            if pocket.put_buffer(p, text, len(text), f"input/part-{i}", jobid) != 0:
                raise RuntimeError(f"put input {i}: {pocket.last_error()}")
        # The workers find the job as lambdas would: from their environment.
        os.environ.update(POCKET_JOB=jobid, POCKET_TOKEN=pocket.job_token(jobid),
                          WORDCOUNT_PART_BYTES=",".join(sizes))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(a.maps, os.cpu_count() or 2)) as pool:
            mapped = sum(pool.map(map_task, [(i, a.reduces, jobid) for i in range(a.maps)]))
            # count_files counts a directory's direct children: one
            # directory per map task, each holding a file per reduce task.
            shuffle_files = sum(max(pocket.count_files(p, f"shuffle/map-{i}", jobid), 0) for i in range(a.maps))
            distinct = sum(pool.map(reduce_task, [(r, a.maps, jobid, a.tmp) for r in range(a.reduces)]))
        left = sum(max(pocket.count_files(p, f"shuffle/map-{i}", jobid), 0) for i in range(a.maps))
        got = collections.Counter()
        for r in range(a.reduces):
            path = os.path.join(a.tmp, f"wordcount-output-{os.getpid()}-{r}")
            if pocket.get(p, f"output/reduce-{r}", path, jobid) != 0:
                raise RuntimeError(f"get output {r}: {pocket.last_error()}")
            with open(path) as f:
                got.update(json.load(f))
            os.unlink(path)
        pocket.close(p)
    finally:
        pocket.deregister_job(jobid)
    ok = got == expected and mapped == sum(expected.values()) and distinct == len(expected) and left == 0
    print(f"maps={a.maps} reduces={a.reduces} words={mapped} distinct={distinct} "
          f"shuffle_files={shuffle_files} shuffle_left={left}")
    print("top:", ", ".join(f"{w}={n}" for w, n in got.most_common(5)))
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
