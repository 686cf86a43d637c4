"""A job's token never prints (the Go SDK's pocket/redact_test.go): the
placement map's repr showed the token's bytes, so printing or logging a
job's map (print(job.map), logging's %r) leaked the capability."""

from __future__ import annotations

import logging

from pocket import client as pclient
from pocket import wire

TOKEN = b"tok-SECRET-0123456789abcdef"


def _forms(v) -> list[str]:
    return [repr(v), str(v), f"{v}", f"{v!r}", repr([v]), repr({"m": v}), "%s %r" % (v, v)]


def _shows(s: str) -> bool:
    return any(f in s for f in (TOKEN.decode(), TOKEN.hex(), repr(TOKEN), str(list(TOKEN))[1:-1]))


def test_map_and_job_print_no_token(caplog):
    m = wire.PlacementMap("sort-3", wire.TIER_DRAM, 7, [wire.MapNode("127.0.0.1:7100", 1.0, wire.NODE_ACTIVE)], TOKEN)
    c = pclient.Client(controller="")
    try:
        job = pclient.Job(c, m)
        for name, v in (("map", m), ("job", job)):
            for s in _forms(v):
                assert not _shows(s), f"{name} prints its token: {s}"
                assert "sort-3" in s and "127.0.0.1:7100" in s, f"{name} prints {s}, want its id and nodes"
        with caplog.at_level(logging.INFO):
            logging.getLogger("t").info("map %s job %r", m, job)
        assert "sort-3" in caplog.text and not _shows(caplog.text)
        assert job.token == TOKEN, "the token is still the job's to hand out"
    finally:
        c.close()
