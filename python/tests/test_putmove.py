"""Puts that span a change of the job's map: chunked puts (put, and
streams opened "wb") loop while a node joins the job's map and one leaves
it, three times over, on a real controller and nodes (the Go helper's
cluster: it changes a job's map on request). Every put must succeed,
every key must read back as its last put whole, and once the map has
settled the nodes must hold exactly the live values' records (a manifest
and its chunks per key): nothing torn, lost or leaked.

On the old code this fails: a node that first heard of the job at the
grow's epoch never reported and the grow never ended; with that fixed, a
streamed put failed when a node refused one of its chunks for a stale map
(7-8 of about 50 puts), as a put did whose chunks moved between its chunk
puts and its confirm, or whose confirm met a stale map.
"""

from __future__ import annotations

import hashlib
import threading

import pytest

import pocket

from conftest import HelperCluster, wait_for

KiB = 1 << 10
CHUNK = 64 * KiB
SIZE = 24 * CHUNK - 100  # 24 chunks
WRITERS, KEYS_PER = 3, 4


@pytest.fixture
def move_cluster(bins):
    # A dead node stays in the maps (a grace longer than the test): a
    # node late with its heartbeats on a busy machine holds a change up
    # rather than leaving the map.
    c = HelperCluster(bins["gohelper"], 4, "10m")
    yield c
    c.stop()


def value(key: str, seq: int) -> bytes:
    """Put number seq of key: its bytes depend on both."""
    out = bytearray()
    block = 0
    while len(out) < SIZE:
        out += hashlib.sha256(f"{key}#{seq}#{block}".encode()).digest()
        block += 1
    return bytes(out[:SIZE])


def test_puts_span_map_changes(move_cluster):
    with pocket.Client(move_cluster.addr, insecure=True, chunk_size=CHUNK) as cl:
        job = cl.register_job("putmove", peak_mbps=24000)
        assert len(job.map.nodes) == 3, job.map
        last: list[dict[str, int]] = [{} for _ in range(WRITERS)]
        failures: list[str] = []
        puts = [0]
        stop = threading.Event()
        lock = threading.Lock()

        def writer(w: int) -> None:
            seq = 0
            while not stop.is_set():
                key = f"w{w}/k{seq % KEYS_PER}"
                v = value(key, seq)
                try:
                    if seq % 2 == 0:
                        job.put(key, v)
                    else:
                        with job.open(key, "wb") as f:
                            for i in range(0, len(v), 40 * KiB):
                                f.write(v[i:i + 40 * KiB])
                    last[w][key] = seq
                except pocket.PocketError as e:
                    with lock:
                        failures.append(f"put {key} #{seq}: {e!r}")
                with lock:
                    puts[0] += 1
                seq += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        try:
            for _ in range(3):
                with lock:
                    before = puts[0]
                move_cluster.command(f"grow {job.id}")
                move_cluster.command(f"shrink {job.id}")
                # Puts on the settled map too, before the next change.
                while True:
                    with lock:
                        if puts[0] > before + 3 * WRITERS:
                            break
                    stop.wait(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, f"{len(failures)} of {puts[0]} puts failed: {failures[:5]}"
        want = 0
        for w in range(WRITERS):
            for key, seq in last[w].items():
                got = job.get(key)
                assert bytes(got) == value(key, seq), f"{key}: {len(got)} bytes, want put #{seq} whole"
                want += 1 + (SIZE + CHUNK - 1) // CHUNK
        held = [0]

        def settled() -> bool:
            held[0] = int(move_cluster.command(f"values {job.id}"))
            return held[0] == want
        assert wait_for(settled, 10), f"the nodes hold {held[0]} records of the job, want {want}"
        job.deregister()
