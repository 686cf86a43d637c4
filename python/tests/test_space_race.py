"""A chunked put refused for space after a chunk of its own was stored lost
a race for the last of a tier (an NVMe tier reserves a chunk's extents as
its header arrives): it drops its chunks and tries again with a new version
(Job._put_chunked; the Go SDK's spacerace.go)."""

from __future__ import annotations

import contextlib
import threading

import pytest

from pocket import errors, wire

from test_busy_chunks import _chunk_of
from test_hostile_node import Node, _job, frame, response


def _space_race_node(refuse_first_chunk: bool):
    """A node whose tier is full for the first version a put writes: its
    chunk 2 (or, with refuse_first_chunk, every chunk) is refused for space;
    later versions are stored. It answers confirms with the chunks stored
    of the version, and records the versions it saw."""
    lock = threading.Lock()
    versions: list[bytes] = []
    stored: dict[bytes, int] = {}

    def answer(op, rid, key):
        if op == wire.OP_PUT and wire.is_chunk_key(key):
            ver, i = key.split(b"\0")[1], _chunk_of(key)
            with lock:
                if ver not in versions:
                    versions.append(ver)
                first = versions[0] == ver
                if first and (refuse_first_chunk or i == 2):
                    return frame(op, rid, code=int(errors.Code.NO_SPACE), meta=response(message="tier full"))
                stored[ver] = stored.get(ver, 0) + 1
            return frame(op, rid)
        if op == wire.OP_CONFIRM:
            with lock:
                return frame(op, rid, meta=response(count=stored[versions[-1]]))
        return frame(op, rid)

    return Node(answer), versions



@contextlib.contextmanager
def _space_race_job(refuse_first_chunk: bool):
    """A Job of 1000-byte chunks on _space_race_node, and the versions the
    node saw; both closed after."""
    node, versions = _space_race_node(refuse_first_chunk)
    job = _job(node.addr)
    job.client.chunk_size = 1000
    try:
        yield job, versions
    finally:
        job.client.close()
        node.close()


def test_put_that_lost_a_race_for_space_tries_again():
    """A chunked put refused for space after a chunk of its own was stored
    lost a race for the last of a tier: it drops its chunks and tries again
    with a new version, and is stored. Before, it raised NoSpace (a new
    user's trial: 48 puts of 8 MiB into a 256 MiB NVMe tier stored 14 of
    the 31 that fit). The Go SDK's TestPutThatLostARaceForSpaceTriesAgain."""
    with _space_race_job(refuse_first_chunk=False) as (job, versions):
        job.put("k", b"v" * 6000)
        assert len(versions) == 2, versions


def test_put_into_a_full_tier_fails_at_once():
    """A put whose first chunks are all refused for space found the tier
    full, not a race: NoSpace, with no second version."""
    with _space_race_job(refuse_first_chunk=True) as (job, versions):
        with pytest.raises(errors.NoSpace):
            job.put("k", b"v" * 6000)
        assert len(versions) == 1, versions


def test_put_refused_for_space_names_key_and_size():
    """A put refused for space says which put and how large, as the Go
    SDK's errors do (put "k": ...); before, 48 threads' refusals read a
    bare "tier full" (a new user's re-check)."""
    with _space_race_job(refuse_first_chunk=True) as (job, _):
        with pytest.raises(errors.NoSpace) as e:
            job.put("fan/in-7", b"v" * 6000)
        assert "put 'fan/in-7': " in str(e.value) and "(the value is 6000 bytes)" in str(e.value), str(e.value)


def test_put_file_that_lost_a_race_for_space_tries_again(tmp_path):
    """put_file, like put, sends an upload refused for space after a chunk
    of its own was stored again from the file's start, with a new version
    (a second version with chunks: the file was read again from its
    start). Before, it raised NoSpace."""
    src = tmp_path / "src"
    src.write_bytes(bytes(range(256)) * 24)
    with _space_race_job(refuse_first_chunk=False) as (job, versions):
        job.put_file(src, "k")
        assert len(versions) == 2, versions


def test_put_file_into_a_full_tier_fails_at_once(tmp_path):
    """put_file whose first chunks are all refused raises NoSpace with no
    second version."""
    src = tmp_path / "src"
    src.write_bytes(b"v" * 6000)
    with _space_race_job(refuse_first_chunk=True) as (job, versions):
        with pytest.raises(errors.NoSpace):
            job.put_file(src, "k")
        assert len(versions) == 1, versions
