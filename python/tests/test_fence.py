"""A put or delete that timed out once sent may still be executed by its
node later; the next put or delete of the same key through the Job must
not be overtaken by it (the Go SDK's fences, pocket/fence.go). Before, the
timed-out request's connection was closed and the next request went at
once on another one: the node executed it first, then the older request,
and an acknowledged put was replaced by the one that timed out."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

import pocket
from pocket import client as pclient
from pocket import conn as pconn
from pocket import wire

from conftest import MapController

_HDR = struct.Struct("<2sBBHHQII")


class SlowNode:
    """A node that stores one value: puts of b"old" and every delete are
    executed (and answered) `delay` seconds after they arrive, everything
    else at once; ``done`` lists what it executed, in order."""

    def __init__(self, delay: float):
        self.delay, self.value, self.done = delay, None, []
        # split > 0: a delayed request's reply claims an 8-byte metadata
        # table that comes split seconds after its header.
        self.split = 0.0
        self.lock = threading.Lock()
        self.ln = socket.socket()
        self.ln.bind(("127.0.0.1", 0))
        self.ln.listen(16)
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.ln.close()
        for c in self.conns:
            c.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.ln.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read(self, c: socket.socket, n: int) -> bytes:
        b = b""
        while len(b) < n:
            got = c.recv(n - len(b))
            if not got:
                raise ConnectionError
            b += got
        return b

    def _serve(self, c: socket.socket):
        try:
            while True:
                _, _, op, flags, _, rid, mlen, plen = _HDR.unpack(self._read(c, wire.HEADER_LEN))
                self._read(c, mlen)
                payload = self._read(c, plen)
                delayed = op == wire.OP_DELETE or payload == b"old"
                if delayed:
                    time.sleep(self.delay)
                out, code = b"", 0
                with self.lock:
                    if op == wire.OP_PUT:
                        self.value = payload
                        self.done.append(("put", payload))
                    elif op == wire.OP_DELETE:
                        code = 0 if self.value is not None else int(pocket.errors.Code.NOT_FOUND)
                        self.value = None
                        self.done.append(("delete", None))
                    elif self.value is None:
                        code = int(pocket.errors.Code.NOT_FOUND)
                    else:
                        out = self.value
                if delayed and self.split:
                    c.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, rid, 8, len(out), code))
                    time.sleep(self.split)
                    c.sendall(bytes(8) + out)
                    continue
                c.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, rid, 0, len(out), code) + out)
        except OSError:
            pass
        finally:
            c.close()


# The client's timeout, and how late the node executes the requests it
# delays: wide enough apart that a loaded machine (CI under -race) answers
# the requests it does not delay within the timeout.
TIMEOUT, DELAY = 1.0, 2.5


@pytest.fixture
def slow_node():
    n = SlowNode(DELAY)
    yield n
    n.close()


def _job(cl, node: SlowNode) -> pclient.Job:
    """A Job of cl on node alone, its map from a stand-in controller."""
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 3, [wire.MapNode(node.addr, 1.0)], b"tok")
    cl.controller = MapController(m, 1 << 30)
    return pclient.Job(cl, m)


def _put_once_sent(job: pclient.Job, key: str, value: bytes) -> None:
    """Puts value to key, again while the key's fence answers that the
    earlier write is unanswered within the client's timeout (not sent)."""
    while True:
        try:
            return job.put(key, value)
        except pocket.Unavailable as e:
            if e.sent is not False or "within the client's timeout" not in str(e):
                raise


def _timed_out(job: pclient.Job, key: str) -> None:
    """A put of b"old" to key that times out (the node delays it)."""
    with pytest.raises(pocket.Unavailable, match="timed out"):
        job.put(key, b"old")


@pytest.mark.parametrize("first", ["put", "delete"])
def test_timed_out_write_not_overtaken(slow_node, first):
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        if first == "delete":
            job.put("k", b"before")
        with pytest.raises(pocket.Unavailable, match="timed out"):
            if first == "put":
                job.put("k", b"old")
            else:
                job.delete("k")
        _put_once_sent(job, "k", b"new")  # acknowledged: it must not be overtaken
        time.sleep(slow_node.delay + 0.2)  # past when the timed-out request is executed
        assert job.get("k") == b"new", f"the node executed {slow_node.done}"
        assert slow_node.done[-1] == ("put", b"new")


def test_fence_on_a_silent_node_is_given_up(slow_node, monkeypatch):
    """A fence is given up once the node has been silent for the larger
    of the timeout and conn.SILENCE (30 s; 3 s here) since the write
    timed out. Until then each put of the key waits at most the timeout
    and raises, not sent, saying the earlier write is unanswered; the one
    that meets the bound raises that it was given up, and the put after
    it goes (the fence is down). Before, it was sent when the wait gave
    up, and its timeout message said nothing of the wait (a new user: "no
    reply within 0.5 s" after 30.5 s)."""
    monkeypatch.setattr(pconn, "SILENCE", 3.0)
    slow_node.delay = 8.0
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        _timed_out(job, "k")
        t0 = time.monotonic()
        waits = 0
        while True:
            with pytest.raises(pocket.Unavailable, match="earlier put or delete of this key timed out") as e:
                job.put("k", b"new")
            assert e.value.sent is False
            if "within the client's timeout" not in str(e.value):
                break  # given up
            waits += 1
        took = time.monotonic() - t0
        assert waits >= 1 and 2.5 <= took < 6.0, f"given up after {took:.2f} s and {waits} bounded waits"
        job.put("k", b"newer")


def test_fence_wait_is_bounded_by_the_timeout(slow_node):
    """A put of a key whose earlier put timed out, at a node that answers
    neither, raises within about the client's timeout, not sent, and the
    fence stays up (the Go SDK's fence wait ends with the caller's
    context). Before, it waited until the node answered or had been
    silent for conn.SILENCE, 30 s, whatever the timeout (a trial: 30.03 s
    with timeout=1)."""
    slow_node.delay = 10.0
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        _timed_out(job, "k")
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(pocket.Unavailable, match="within the client's timeout") as e:
                job.put("k", b"new")
            took = time.monotonic() - t0
            assert e.value.sent is False and took < 3 * TIMEOUT, f"the put waited {took:.2f} s"
        assert job._fences, "the fence went down"


def test_concurrent_callers_all_wait(slow_node):
    """Two callers putting a key whose put timed out both wait for the
    fence: the node executes the timed-out put before either. Before, the
    first took the fence down and waited on it alone, and the second went
    at once and was overtaken (a hostile trial: [C, old, B], 6 of 6)."""
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        _timed_out(job, "k")
        ts = [threading.Thread(target=_put_once_sent, args=(job, "k", v)) for v in (b"B", b"C")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        time.sleep(slow_node.delay + 0.2)
        order = [v for op, v in slow_node.done if op == "put"]
        assert order.index(b"old") < order.index(b"B") and order.index(b"old") < order.index(b"C"), order


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fences_do_not_keep_sockets(monkeypatch):
    """Each fence keeps its connection's socket. Past 32 fences a Job takes
    down those whose reply has come, and Client.close closes the rest.
    Before, every timed-out key kept a socket until it was written again
    (a hostile trial ran out of descriptors after about 125 keys)."""
    n = SlowNode(0.2)
    try:
        base = _fds()
        cl = pocket.Client(insecure=True, timeout=0.05)
        job = _job(cl, n)
        for i in range(40):
            _timed_out(job, f"k{i}")
            if i == 20:
                time.sleep(0.5)  # the first ones' replies arrive
        assert len(job._fences) <= 33, len(job._fences)
        cl.close()
        time.sleep(0.5)  # the node closes its end of each
        assert _fds() <= base + 2, f"{_fds()} descriptors after close, {base} before"
    finally:
        n.close()


def test_retired_key_request_closes_the_timed_out_connection():
    """A request of a retired job with an old owner (_retired_key_do) that
    times out does not keep its connection: a retired job takes no put,
    so it fences nothing. Before, the connection stayed open, owing its
    reply, until the garbage collector found the exception."""
    from types import SimpleNamespace

    closed = []

    class Owed:
        def close(self):
            closed.append(self)

    def timed_out(addr, op, flags, meta, payload=None, dst=None):
        e = pconn.NodeUnavailable(addr, f"{addr}: no reply within 0.5 s", sent=True)
        e.conn = Owed()
        raise e

    j = object.__new__(pclient.Job)
    j._st = SimpleNamespace(dead=set())
    j._send_patient = timed_out
    with pytest.raises(pconn.NodeUnavailable) as ei:
        j._retired_key_do(None, b"k", "127.0.0.1:1", "127.0.0.1:2", wire.OP_GET, 0, b"", None, None)
    assert len(closed) == 1 and ei.value.conn is None  # the live owner answered: not absent
    with pytest.raises(pconn.NodeUnavailable) as ei:
        j._retired_key_do(None, b"k", "127.0.0.1:1", "127.0.0.1:2", wire.OP_DELETE, 0, b"", None, None)
    assert len(closed) == 3 and ei.value.conn is None  # a delete asks both owners


def test_fence_past_silence_bound_is_given_up_not_answered(monkeypatch):
    """The key's next put comes after the node has been silent past the
    bound: it raises (given up, not sent). A review found the bounded
    wait reading with a timeout of 0 there (a non-blocking socket), its
    "would block" taken for the node's close: the put was sent, then the
    timed-out one executed over it."""
    monkeypatch.setattr(pconn, "SILENCE", 1.5)
    node = SlowNode(5.0)
    try:
        with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
            job = _job(cl, node)
            _timed_out(job, "k")          # put b"old": executed ~5 s after it arrived
            time.sleep(2.0)               # past owed_at + max(TIMEOUT, SILENCE)
            try:
                job.put("k", b"new")
                outcome = "sent"
            except pocket.Unavailable as e:
                outcome = f"raised sent={e.sent}: {e}"
            time.sleep(4.0)               # the old put lands now
            assert outcome.startswith("raised"), f"put sent while the earlier put was unanswered; node executed {node.done}"
    finally:
        node.close()


def test_chained_fence_given_up_leaves_the_key_writable(monkeypatch):
    """Two puts of a key time out at once (fence B after A). Once A was
    given up, every later put of the key raised A's error and B was never
    settled: the key could not be written through the Job again (a
    review; older than the bounded wait). Now B is waited for, then given
    up in turn."""
    monkeypatch.setattr(pconn, "SILENCE", 1.5)
    node = SlowNode(30.0)
    try:
        with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
            job = _job(cl, node)
            ts = [threading.Thread(target=lambda: pytest.raises(pocket.Unavailable, job.put, "k", b"old")) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert job._fences[b"k"].after is not None
            msgs = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < 8:
                try:
                    job.put("k", b"new")
                    msgs.append("sent")
                    break
                except pocket.Unavailable as e:
                    msgs.append(str(e)[60:130])
            assert msgs[-1] == "sent", f"key never writable again: {msgs[-1]}"
    finally:
        node.close()


def test_fence_wait_cut_mid_reply_takes_the_write_as_executed(slow_node):
    """The key's next put waits at the fence (bounded by the timeout) and
    the owed reply's header comes, but the rest of it not within the
    wait: the node has executed the earlier put (it replies after), so
    the fence is down as answered and the put goes. Before, that was
    reported as given up ("it may still execute it"), not sent (a review
    of the bounded wait)."""
    slow_node.split = 3 * TIMEOUT
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        _timed_out(job, "k")
        _put_once_sent(job, "k", b"new")
        assert job.get("k") == b"new", f"the node executed {slow_node.done}"
        assert [v for op, v in slow_node.done if op == "put"] == [b"old", b"new"]
