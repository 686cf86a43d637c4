"""A node's TooLarge refusal of a put's record names which record it was
and how chunk_size sets it (the Go SDK's TestTooLargeNamesTheRecord). The
node names only its own limit (an NVMe tier's --nvme-staging), so a value
stored in chunks read as refused whole (a new user's trial)."""

from __future__ import annotations

import pytest

from pocket import errors, wire
from pocket.client import Client, Job

from test_hostile_node import Node, frame, response

_LIMIT_MSG = "value larger than the NVMe tier's staging memory of 65536 bytes (--nvme-staging)"


def _refusing_node():
    def answer(op, rid, key):
        if op == wire.OP_PUT and (key == b"whole" or wire.is_chunk_key(key)):
            return frame(op, rid, code=int(errors.Code.TOO_LARGE), meta=response(message=_LIMIT_MSG))
        return frame(op, rid)

    return Node(answer)


def _job(addr):
    cl = Client("127.0.0.1:1", insecure=True, timeout=5.0, chunk_size=256 << 10)
    m = wire.PlacementMap(job="note-1", tier=0, epoch=1, nodes=[wire.MapNode(addr, 1.0)], token=b"t" * 32)
    return Job(cl, m)


@pytest.mark.parametrize("how,want", [
    ("whole", "the value whole, 102400 bytes"),
    ("chunked", "a chunk, 262144 bytes"),
    ("writer", "a chunk, 262144 bytes"),
    ("writer-whole", "the value whole, 102400 bytes"),
])
def test_too_large_names_the_record(how, want):
    node = _refusing_node()
    try:
        j = _job(node.addr)
        with pytest.raises(errors.TooLarge) as ei:
            if how == "whole":
                j.put("whole", bytes(100 << 10))
            elif how == "chunked":
                j.put("chunked", bytes(1 << 20))
            else:
                key = "whole" if how == "writer-whole" else "streamed"
                size = 100 << 10 if how == "writer-whole" else 600 << 10
                with j.open(key, "wb") as w:
                    w.write(bytes(size))
        text = str(ei.value)
        for w in (want, "chunk size, 262144 bytes", "staging memory of 65536"):
            assert w in text, text
        assert ei.value.code == errors.Code.TOO_LARGE
        assert text.count("the record refused was") == 1, text
        j.put("small", bytes(1000))  # a record the node takes
    finally:
        node.close()
