"""Arguments no request can carry are refused before anything is sent,
with the pocket error of their kind (a hostile trial: register_job with
lambdas=2**40 raised a raw TypeError, open_job with a token of "zz" a raw
ValueError, and put(5, ...) was refused as "key 5 (5 bytes)", five 0x00
bytes, since bytes(5) is that)."""

from __future__ import annotations

import pytest

import pocket
from pocket import wire
from pocket.client import _name


@pytest.mark.parametrize("hints", [dict(lambdas=2 ** 40), dict(lambdas=-1), dict(lambdas=1.5),
                                   dict(capacity_bytes=-1), dict(capacity_bytes=1e9), dict(capacity_bytes=2 ** 63)])
def test_hints_out_of_range_are_malformed(hints):
    with pytest.raises(pocket.Malformed, match=next(iter(hints))):
        wire.encode_job_register("x", **hints)


def test_hints_in_range_encode():
    assert wire.encode_job_register("x", lambdas=wire.MAX_LAMBDAS, capacity_bytes=2 ** 63 - 1)


@pytest.mark.parametrize("key", [5, 0, 2.5, True, None])
def test_a_number_is_no_key(key):
    with pytest.raises(pocket.BadKey, match="want str or bytes"):
        _name(key)


def test_an_object_that_is_no_name_is_no_key():
    """A listing's Entry (a trial's stat(entry) raised a raw TypeError)
    and other objects bytes() refuses are BadKey, the Entry's saying to
    pass its name."""
    from pocket.client import Entry
    with pytest.raises(pocket.BadKey, match=r"pass its \.name"):
        _name(Entry("a/b", 1, False))
    with pytest.raises(pocket.BadKey, match="want str or bytes"):
        _name(object())


def test_a_token_not_hex_is_bad_token():
    c = pocket.Client("127.0.0.1:1")  # never reached: the token is checked first
    try:
        with pytest.raises(pocket.BadToken, match="not hex"):
            c.open_job("j-1", "zz")
    finally:
        c.close()


def test_listing_entries_sort_by_name():
    """Entries order by name, so sorted() of a listing works (a new user's
    sorted(job.list(p)) raised TypeError)."""
    from pocket.client import Entry
    es = [Entry("b", 1, False), Entry("a/", 0, True), Entry("a/c", 9, False)]
    assert [e.name for e in sorted(es)] == ["a/", "a/c", "b"]
