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

    def __init__(self, real, method, before=None):
        self.real, self.method, self.before, self.armed = real, method, before, True

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if name != self.method:
            return attr

        def call(*a, **kw):
            if self.armed:
                self.armed = False
                if self.before:
                    self.before(self.real, *a)
                raise KeyboardInterrupt
            return attr(*a, **kw)
        return call


def _rig(job, key, method, before=None):
    """The pooled connection the next call to key's node takes, made to
    raise KeyboardInterrupt in its socket's `method`."""
    addr = job._st.route(key.encode(), 0)[0]
    pool = job.client.pool
    c = pool.acquire(addr)
    c.sock = Interrupting(c.sock, method, before)
    pool.release(c)  # the pool is LIFO: the next call to addr takes c
    return c


def test_reply_left_unread_is_never_read_as_another(job):
    job.put("k", b"v1")
    c = _rig(job, "k", "recv_into")
    with pytest.raises(KeyboardInterrupt):
        job.put("k", b"v2")  # written whole; its reply left unread
    assert c.broken
    # v2 was written whole, so the node executes it, on the closed
    # connection, in no order with puts on others: wait until it has (a
    # CI run saw it land after v3-0; an interrupted put is not fenced, see
    # the README's known limits).
    deadline = time.monotonic() + 10
    while bytes(job.get("k")) != b"v2" and time.monotonic() < deadline:
        time.sleep(0.01)
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
