"""Job.get's result type follows the value's size alone: bytes under
buffer.MAP_MIN (64 KiB), else a writable memoryview, as its doc says.
Before, a value from 64 KiB whose reply the socket delivered in one read
came back as bytes, and the next get of it as a memoryview (a new user's
trial: four gets of one 200,000-byte value alternated, and a write into
the result failed now and then)."""

from __future__ import annotations

import pytest

from pocket import buffer, wire

from test_hostile_node import Node, _job, frame


@pytest.mark.parametrize("size", [0, 100, 4096, buffer.MAP_MIN - 1, buffer.MAP_MIN, buffer.MAP_MIN + 1,
                                  100_000, 200_000, (256 << 10) - 100, 1 << 20])
def test_get_type_follows_size(size):
    value = bytes(range(256)) * (size // 256) + bytes(size % 256)

    def answer(op, rid, key):
        if op == wire.OP_GET:
            return frame(op, rid, payload=value)
        return frame(op, rid)

    node = Node(answer)
    try:
        j = _job(node.addr)
        for _ in range(4):
            v = j.get("k")
            assert bytes(v) == value
            if size < buffer.MAP_MIN:
                assert type(v) is bytes, (size, type(v))
            else:
                assert isinstance(v, memoryview) and not v.readonly and v.format == "B", (size, type(v))
                v[0:1] = b"X"  # writable: the caller's own buffer
    finally:
        node.close()
