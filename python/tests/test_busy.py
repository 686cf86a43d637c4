"""A live job's get, stat and delete answered busy (the node's device queue
full, whoever filled it) are sent again, as puts are: a busy answer did
nothing. Before, only puts were, and another job's flood of NVMe requests
failed 10-38 % of a job's gets (a hostile trial). The Go SDK's
TestBusyAnswersAreWaitedOut."""

from __future__ import annotations

import pocket
from pocket import wire
from pocket.conn import Reply


def test_busy_answers_are_waited_out(job, monkeypatch):
    job.put("k", b"value")
    send = job._send_once
    busy = {wire.OP_GET: 3, wire.OP_STAT: 3, wire.OP_DELETE: 3}

    def busy_first(addr, op, flags, *a, **kw):
        if busy.get(op, 0) > 0:
            busy[op] -= 1
            return Reply(0, 0, pocket.errors.Code.BUSY, b"", b"")
        return send(addr, op, flags, *a, **kw)
    monkeypatch.setattr(job, "_send_once", busy_first)
    assert job.get("k") == b"value"
    assert job.stat("k").size == 5
    job.delete("k")
    assert busy == {wire.OP_GET: 0, wire.OP_STAT: 0, wire.OP_DELETE: 0}
