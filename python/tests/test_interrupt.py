"""A call interrupted mid-request (KeyboardInterrupt, or any exception a
signal handler raises, such as an alarm's timeout) never leaves its
connection in the pool. A hostile trial interrupted puts and gets: before,
the connection went back to the pool out of step with the node, and the
next call on it either completed the half-written frame (its header and
payload stored as the tail of the interrupted put's value: a torn value
that read back on every get) or read the interrupted call's reply as its
own (Malformed "reply id N to request N+1", though its own request was
executed: a put that raised, stored). Both tests fail on the old client."""

from __future__ import annotations

import time

import pytest

import pocket


class Interrupting:
    """A socket stand-in that raises KeyboardInterrupt once, on the first
    call of `method`, after doing what `before` does (a partial send), and
    otherwise passes everything to the real socket."""

    def __init__(self, real, method, before=None, exc=KeyboardInterrupt):
        self.real, self.method, self.before, self.armed, self.exc = real, method, before, True, exc

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if name != self.method:
            return attr

        def call(*a, **kw):
            if self.armed:
                self.armed = False
                if self.before:
                    self.before(self.real, *a)
                raise self.exc()
            return attr(*a, **kw)
        return call


def _rig(job, key, method, before=None, exc=KeyboardInterrupt):
    """The pooled connection the next call to key's node takes, made to
    raise exc (KeyboardInterrupt) in its socket's `method`."""
    addr = job._st.route(key.encode(), 0)[0]
    pool = job.client.pool
    c = pool.acquire(addr)
    c.sock = Interrupting(c.sock, method, before, exc)
    pool.release(c)  # the pool is LIFO: the next call to addr takes c
    return c


def test_reply_left_unread_is_never_read_as_another(job):
    job.put("k", b"v1")
    c = _rig(job, "k", "recv_into")
    with pytest.raises(KeyboardInterrupt):
        job.put("k", b"v2")  # written whole; its reply left unread
    assert c.broken
    # v2 was written whole, so the node executes it; its connection owes
    # the reply, and v3-0 waits for it (a CI run saw v2 land after v3-0
    # before interrupted puts were fenced).
    for i in range(8):  # before: "Malformed: reply id N to request N+1"
        job.put("k", b"v3-%d" % i)
        assert bytes(job.get("k")) == b"v3-%d" % i


def test_half_written_frame_is_never_completed(job):
    job.put("k", b"v1")

    def half(real, data, *_):
        real.send(bytes(data)[:len(data) // 2])
    c = _rig(job, "k", "sendall", half)
    with pytest.raises(KeyboardInterrupt):
        job.put("k", b"x" * 2000)  # half its frame written
    assert c.broken
    # Before: the next put on the connection completed the frame, and the
    # node took its bytes for the rest of the interrupted put.
    job.put("k", b"v2")
    assert bytes(job.get("k")) == b"v2"
    for i in range(4):
        job.put(f"other/{i}", b"o")
    assert [bytes(job.get(f"other/{i}")) for i in range(4)] == [b"o"] * 4


# A put or delete interrupted before its reply began is fenced as one that
# timed out (test_fence.py): its connection, shut for writing, owes the
# reply, and the next put or delete of the key waits for it. The node here
# executes puts of b"old", and deletes, 2.5 s after they arrive, as a busy
# node might. Before, the interrupted call's connection was closed and the
# next put went at once on another: the node executed it first, then the
# interrupted one (these tests fail on the old client: the value read back
# was b"old", or absent).

from pocket import conn as pconn  # noqa: E402
from test_fence import DELAY, TIMEOUT, SlowNode, _job  # noqa: E402


@pytest.fixture
def slow_node():
    n = SlowNode(DELAY)
    yield n
    n.close()


def _whole(real, data, *_):
    real.sendall(data)  # the frame written whole, then the interrupt


@pytest.mark.parametrize("exc", [KeyboardInterrupt, TimeoutError])
@pytest.mark.parametrize("where", ["awaiting the reply", "after the frame was written"])
@pytest.mark.parametrize("first", ["put", "delete"])
def test_interrupted_write_is_not_overtaken(slow_node, first, where, exc):
    """exc: what the signal handler raises; an application's TimeoutError
    (an OSError) is no error of the socket's (conn._own). Before, it was
    taken for one: in a put's send, for a frame not written whole."""
    with pocket.Client(insecure=True, timeout=DELAY * 4) as cl:
        job = _job(cl, slow_node)
        if first == "delete":
            job.put("k", b"before")
        if where == "awaiting the reply":
            c = _rig(job, "k", "recv_into", exc=exc)
        else:
            c = _rig(job, "k", "sendall", _whole, exc=exc)
        with pytest.raises(exc):
            if first == "put":
                job.put("k", b"old")
            else:
                job.delete("k")
        job.put("k", b"new")  # must not be overtaken by the interrupted call
        time.sleep(DELAY + 0.2)  # past when the node would execute it
        assert slow_node.done[-1] == ("put", b"new"), f"the node executed {slow_node.done}"
        assert job.get("k") == b"new"
        assert c.owed and c.sock.real._closed  # it owed the reply; settled, then closed


def test_interrupted_half_frame_is_settled_by_the_nodes_close(slow_node):
    """A frame cut short: the node reads up to the connection's write end,
    executes nothing and closes it, so the fence is down at once (not
    after conn.SILENCE, 30 s)."""
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        job.put("k", b"v1")

        def half(real, data, *_):
            real.send(bytes(data)[:len(data) // 2])
        c = _rig(job, "k", "sendall", half)
        with pytest.raises(KeyboardInterrupt):
            job.put("k", b"x" * 2000)
        assert c.owed
        t0 = time.monotonic()
        job.put("k", b"v2")
        took = time.monotonic() - t0
        assert took < 10, f"the next put waited {took:.1f} s for a fence the node had closed"
        assert job.get("k") == b"v2"
        assert ("put", b"x" * 2000) not in slow_node.done


def test_interrupted_get_is_not_fenced(slow_node):
    """A get owes nothing: its connection is closed, as before."""
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        job.put("k", b"v1")
        c = _rig(job, "k", "recv_into")
        with pytest.raises(KeyboardInterrupt):
            job.get("k")
        assert not c.owed and c.sock.real._closed and not job._fences


def test_interrupted_fence_wait_keeps_the_fence(slow_node):
    """The next put of the key, waiting at the fence (NodeConn.settle), is
    interrupted too (Ctrl-C twice): the fence stays up, and the put after
    it still waits for the first one's reply. Before, settle closed the
    connection and the fence came down: the third put went at once and the
    node executed the first after it."""
    with pocket.Client(insecure=True, timeout=DELAY * 4) as cl:
        job = _job(cl, slow_node)
        c = _rig(job, "k", "recv_into")
        with pytest.raises(KeyboardInterrupt):
            job.put("k", b"old")
        c.sock.armed = True  # the wait at the fence is interrupted
        with pytest.raises(KeyboardInterrupt):
            job.put("k", b"new")
        job.put("k", b"newer")
        time.sleep(DELAY + 0.2)
        assert slow_node.done[-1] == ("put", b"newer"), f"the node executed {slow_node.done}"


def test_reply_taken_before_the_interrupt_is_not_owed(slow_node, monkeypatch):
    """An interrupt that comes after recv_into returned the reply's bytes
    (CPython runs the handler once the call returns): the reply began, so
    nothing is owed and the next put goes at once. Before, the connection
    was kept owing a reply it had read, and the next put of the key waited
    max(timeout, conn.SILENCE), then raised, not sent."""
    monkeypatch.setattr(pconn, "SILENCE", 3.0)
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        job.put("k", b"v1")
        c = _rig(job, "k", "recv_into", lambda real, buf, *a: real.recv_into(buf, *a))
        with pytest.raises(KeyboardInterrupt):
            job.put("k", b"v2")
        t0 = time.monotonic()
        job.put("k", b"v3")
        assert time.monotonic() - t0 < 2
        assert job.get("k") == b"v3"
        assert not c.owed and not job._fences


@pytest.mark.parametrize("method", ["sendall", "recv_into"])
def test_signal_handlers_pocket_error_never_returns_the_connection(slow_node, method):
    """A signal handler that raises a PocketError (an application's
    deadline as pocket.Unavailable) while a put is written or awaited: the
    connection is taken out of use as for any interrupt. Before, roundtrip
    took it for the connection's own error and put it back in the pool:
    the next request completed the half-written frame, or read the
    interrupted put's reply as its own (Malformed)."""
    def half(real, data, *_):
        real.send(bytes(data)[:len(data) // 2])
    with pocket.Client(insecure=True, timeout=TIMEOUT) as cl:
        job = _job(cl, slow_node)
        job.put("k", b"v1")
        c = _rig(job, "k", method, half if method == "sendall" else None,
                 exc=lambda: pocket.Unavailable("the application's deadline"))
        with pytest.raises(pocket.Unavailable, match="deadline"):
            job.put("k", b"x" * 2000)
        job.put("k", b"v2")
        assert job.get("k") == b"v2"
        assert c.broken and c not in cl.pool._idle.get(slow_node.addr, [])
