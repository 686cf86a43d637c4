"""Paging against a hostile node (faked on loopback): a hostile trial's
node answered every listing page and every prefix delete with more=True,
and list() and delete_all() never ended; another answered list("a/")
with a key outside the prefix. Each page must make progress and keep to
the request, else Malformed names the node (client._check_list_page,
_check_delete_page, _Pager)."""

from __future__ import annotations

import threading

import flatbuffers
import pytest

from pocket import client as pclient
from pocket import errors
from pocket.fb import Entry as fbEntry
from pocket.fb import Response as fbResponse
from test_hostile_node import Node, _job, frame


def _page(keys, more, sizes=None, count=0) -> bytes:
    b = flatbuffers.Builder(256)
    es = []
    for i, k in enumerate(keys):
        s = b.CreateString(k)
        fbEntry.EntryStart(b)
        fbEntry.EntryAddKey(b, s)
        fbEntry.EntryAddSize(b, sizes[i] if sizes else 1)
        es.append(fbEntry.EntryEnd(b))
    v = 0
    if es:
        fbResponse.ResponseStartEntriesVector(b, len(es))
        for e in reversed(es):
            b.PrependUOffsetTRelative(e)
        v = b.EndVector()
    fbResponse.ResponseStart(b)
    if v:
        fbResponse.ResponseAddEntries(b, v)
    fbResponse.ResponseAddMore(b, more)
    fbResponse.ResponseAddCount(b, count)
    b.Finish(fbResponse.ResponseEnd(b))
    return bytes(b.Output())


def _bounded(fn, wall=5.0):
    """fn's exception (None: it returned), failing the test when fn is
    still running after wall seconds (the fake node goes on for ever)."""
    out = {}

    def run():
        try:
            fn()
            out["err"] = None
        except BaseException as e:  # noqa: BLE001 -- returned to the test
            out["err"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(wall)
    assert not t.is_alive(), f"still running after {wall} s"
    return out["err"]


def _run(answer, fn, timeout=2.0):
    n = Node(answer)
    try:
        return n, _bounded(lambda: fn(_job(n.addr, timeout=timeout)))
    finally:
        n.close()


def test_list_same_key_more_forever():
    calls = [0]

    def answer(op, rid, key):
        calls[0] += 1
        return frame(op, rid, meta=_page(["a"], True))
    _, err = _run(answer, lambda j: j.list(""))
    assert isinstance(err, errors.Malformed) and "127.0.0.1" in str(err), err
    assert calls[0] == 2  # the second page repeats the first's key


def test_list_more_without_entries():
    _, err = _run(lambda op, rid, key: frame(op, rid, meta=_page([], True)), lambda j: j.list(""))
    assert isinstance(err, errors.Malformed) and "more but carries no entry" in str(err), err


def test_list_keys_not_ascending():
    _, err = _run(lambda op, rid, key: frame(op, rid, meta=_page(["b", "a"], False)), lambda j: j.list(""))
    assert isinstance(err, errors.Malformed) and "not after" in str(err), err


def test_list_growing_keys_bounded(monkeypatch):
    # New keys, each page past the last: progress, but without end. The
    # client's bound ends it (PAGING_TIMEOUTS x timeout).
    monkeypatch.setattr(pclient, "PAGING_TIMEOUTS", 2, raising=False)
    n = [0]

    def answer(op, rid, key):
        n[0] += 1
        return frame(op, rid, meta=_page(["k%09d-%02d" % (n[0], i) for i in range(50)], True))
    _, err = _run(answer, lambda j: j.list(""), timeout=0.5)
    assert isinstance(err, errors.Malformed) and "still says more" in str(err), err


def test_list_key_bytes_bounded(monkeypatch):
    monkeypatch.setattr(pclient, "LIST_MAX_BYTES", 50 * (911 + pclient.LIST_ENTRY_COST) * 3 - 1, raising=False)
    n = [0]

    def answer(op, rid, key):
        n[0] += 1
        return frame(op, rid, meta=_page(["k" * 900 + "%09d%02d" % (n[0], i) for i in range(50)], True))
    _, err = _run(answer, lambda j: j.list(""))
    assert isinstance(err, errors.Malformed) and "LIST_MAX_BYTES" in str(err), err
    assert n[0] == 3


def test_list_entry_cost_counted(monkeypatch):
    """Short keys count their entries' cost too: a re-check's 300,000
    five-byte keys took 68 MiB where their key bytes were 1.5 MB."""
    monkeypatch.setattr(pclient, "LIST_MAX_BYTES", 50 * (5 + pclient.LIST_ENTRY_COST) * 3 - 1, raising=False)
    n = [0]

    def answer(op, rid, key):
        n[0] += 1
        return frame(op, rid, meta=_page(["%05d" % (n[0] * 100 + i) for i in range(50)], True))
    _, err = _run(answer, lambda j: j.list(""))
    assert isinstance(err, errors.Malformed) and "LIST_MAX_BYTES" in str(err), err
    assert n[0] == 3


def test_delete_all_count_plausible():
    """A page claiming 2^64-1 names deleted is malformed (a re-check: two
    such pages made delete_all return 36893488147419103230)."""
    def answer(op, rid, key):
        return frame(op, rid, meta=_page([], True, count=(1 << 64) - 1))
    _, err = _run(answer, lambda j: j.delete_all())
    assert isinstance(err, errors.Malformed) and "claims" in str(err), err


def test_list_key_outside_prefix():
    _, err = _run(lambda op, rid, key: frame(op, rid, meta=_page(["zzz/secret"], False)), lambda j: j.list("a/"))
    assert isinstance(err, errors.Malformed) and "outside the prefix" in str(err), err


@pytest.mark.parametrize("size", [-1, (1 << 63) - 1])
def test_list_absurd_size(size):
    _, err = _run(lambda op, rid, key: frame(op, rid, meta=_page(["a/x"], False, sizes=[size])),
                  lambda j: j.list("a/"))
    assert isinstance(err, errors.Malformed) and "size" in str(err), err


def test_list_honest_pages():
    # A node that pages honestly (keys past the cursor) lists every key.
    def answer(op, rid, key):
        return frame(op, rid, meta=_page(["a", "b"], True)) if answer.n == 0 else frame(op, rid, meta=_page(["c"], False))
    answer.n = 0

    def counted(op, rid, key):
        out = answer(op, rid, key)
        answer.n += 1
        return out
    n = Node(counted)
    try:
        got = _job(n.addr).list("")
    finally:
        n.close()
    assert [e.name for e in got] == ["a", "b", "c"]


def test_delete_all_more_removing_nothing():
    calls = [0]

    def answer(op, rid, key):
        calls[0] += 1
        return frame(op, rid, meta=_page([], True, count=0))
    _, err = _run(answer, lambda j: j.delete_all())
    assert isinstance(err, errors.Malformed) and "removed nothing" in str(err), err
    assert calls[0] == 1


def test_delete_all_more_forever_bounded(monkeypatch):
    monkeypatch.setattr(pclient, "PAGING_TIMEOUTS", 2, raising=False)
    _, err = _run(lambda op, rid, key: frame(op, rid, meta=_page([], True, count=1)), lambda j: j.delete_all(),
                  timeout=0.5)
    assert isinstance(err, errors.Malformed) and "prefix delete still says more" in str(err), err
