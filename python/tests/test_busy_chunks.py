"""A chunked get's chunks answered busy go again (an NVMe tier bounds the
staging memory one owner's gets hold, a quarter of --nvme-staging, and
never refuses its only one), as the Go SDK's keyPatient does; before, the
get failed Busy (a new user's trial: 12 of 12 gets of 4 MiB values from a
node with 8 MiB of staging). A chunked put's busy chunks go again while the
put makes progress."""

from __future__ import annotations

import threading
import time

import pytest

from pocket import client as pc
from pocket import errors, wire

from test_hostile_node import Node, _job, _manifest_node, frame, response


def _chunk_of(key: bytes) -> int:
    return int(key.rsplit(b"\0", 1)[1])


def test_busy_chunks_go_again():
    """Every chunk is answered busy twice before its bytes: the get returns
    the whole value."""
    n, size = 8, 1000
    m = wire.Manifest(0x55, n * size, size, n)
    asked: dict[int, int] = {}
    lock = threading.Lock()

    def chunk(op, rid, key):
        i = _chunk_of(key)
        with lock:
            asked[i] = asked.get(i, 0) + 1
            k = asked[i]
        if k <= 2:
            return frame(op, rid, code=int(errors.Code.BUSY), meta=response(message="staging share held"))
        return frame(op, rid, payload=bytes([i]) * size)

    node, _ = _manifest_node(m, usage=n * size, chunk=chunk)
    job = _job(node.addr)
    try:
        v = job.get("k")
        assert bytes(v) == b"".join(bytes([i]) * size for i in range(1, n + 1))
        assert all(asked[i] == 3 for i in range(1, n + 1)), asked
    finally:
        job.client.close()
        node.close()


def test_busy_without_end_fails(monkeypatch):
    """A node that answers busy for ever fails the get with Busy once no
    chunk has come for _SETTLE seconds."""
    monkeypatch.setattr(pc, "_SETTLE", 0.5)
    m = wire.Manifest(0x56, 3000, 1000, 3)

    def chunk(op, rid, key):
        return frame(op, rid, code=int(errors.Code.BUSY), meta=response(message="staging share held"))

    node, _ = _manifest_node(m, usage=3000, chunk=chunk)
    job = _job(node.addr)
    try:
        with pytest.raises(errors.Busy):
            job.get("k")
    finally:
        job.client.close()
        node.close()


def test_window_grows_back_after_busy(monkeypatch):
    """After busy replies shrink the requests in flight, chunks that come
    grow it back to _WINDOW (a hostile re-check: four busy replies left one
    chunk in flight for the rest of the batch, 4x slower)."""
    from pocket import conn as pconn
    out: dict[int, int] = {}
    most_after: list[int] = []
    busy_left = [4]
    real_send, real_recv = pconn.NodeConn.send, pconn.NodeConn.recv

    def send(self, *a, **k):
        out[id(self)] = out.get(id(self), 0) + 1
        if busy_left[0] == 0:
            most_after.append(out[id(self)])
        return real_send(self, *a, **k)

    def recv(self, *a, **k):
        r = real_recv(self, *a, **k)
        out[id(self)] -= 1
        return r

    monkeypatch.setattr(pconn.NodeConn, "send", send)
    monkeypatch.setattr(pconn.NodeConn, "recv", recv)
    n, size = 64, 100
    m = wire.Manifest(0x57, n * size, size, n)
    lock = threading.Lock()

    def chunk(op, rid, key):
        with lock:
            if busy_left[0] > 0:
                busy_left[0] -= 1
                return frame(op, rid, code=int(errors.Code.BUSY), meta=response(message="staging share held"))
        return frame(op, rid, payload=bytes([_chunk_of(key) & 0xFF]) * size)

    node, _ = _manifest_node(m, usage=n * size, chunk=chunk)
    job = _job(node.addr)
    try:
        v = job.get("k")
        assert bytes(v) == b"".join(bytes([i & 0xFF]) * size for i in range(1, n + 1))
        assert max(most_after) == pc._WINDOW, f"most requests in flight after the busy replies: {max(most_after)}"
    finally:
        job.client.close()
        node.close()



def test_busy_chunk_puts_wait_while_they_progress(monkeypatch):
    """A node with one chunk of staging free at a time (an NVMe tier's
    --nvme-staging, taken by other writers) answers most chunk puts busy
    and stores one every 0.2 s: the put goes on as long as chunks keep
    being stored, _SETTLE after the last one, as the Go SDK waits _SETTLE
    a chunk. Before, the batch's first _SETTLE bounded the whole put, and
    it failed Busy though every chunk went in within 0.2 s of the one
    before (1 of 12 parallel 10 MiB puts through 1 MiB of staging)."""
    monkeypatch.setattr(pc, "_SETTLE", 0.5)
    n, size = 6, 1000
    lock = threading.Lock()
    state = {"next": time.monotonic(), "stored": 0}

    def answer(op, rid, key):
        if op == wire.OP_PUT and wire.is_chunk_key(key):
            with lock:
                if time.monotonic() < state["next"]:
                    return frame(op, rid, code=int(errors.Code.BUSY), meta=response(message="staging taken"))
                state["next"] = time.monotonic() + 0.2
                state["stored"] += 1
            return frame(op, rid)
        if op == wire.OP_CONFIRM:
            return frame(op, rid, meta=response(count=state["stored"]))
        return frame(op, rid)

    node = Node(answer)
    job = _job(node.addr)
    job.client.chunk_size = size
    try:
        t0 = time.monotonic()
        job.put("k", b"v" * (n * size))
        assert state["stored"] == n
        assert time.monotonic() - t0 > 0.5, "the put took less than one _SETTLE: it proves nothing"
    finally:
        job.client.close()
        node.close()

