"""Names that are not UTF-8, and names refused (a hostile trial): a name
put as bytes is listed as a str with surrogate escapes (as os.listdir
does), and that str gets and deletes it; before, get and delete of the
listed name raised a raw UnicodeEncodeError. A refused name is shown cut
short with its length; before, a 64 KiB key made a 64 KiB message."""

from __future__ import annotations

import pytest

import pocket


def test_listed_non_utf8_name_gets_and_deletes(job):
    raw = b"odd/\xff\xfe\x80"
    job.put(raw, b"x")
    names = [e.name for e in job.list("odd/")]
    assert len(names) == 1 and isinstance(names[0], str)
    assert bytes(job.get(names[0])) == b"x"
    job.delete(names[0])
    with pytest.raises(pocket.NotFound):
        job.get(raw)


def test_refused_name_shown_short(job):
    with pytest.raises(pocket.BadKey) as e:
        job.put("k" * 65536, b"x")
    msg = str(e.value)
    assert len(msg) < 300 and "65536 bytes" in msg, msg


def test_ttl_under_a_millisecond_rounds_up():
    """A positive ttl under a millisecond is sent as 1 ms, not 0 (the
    controller's default: without one, never expiring)."""
    from pocket import client as pclient
    assert pclient._ttl_ms(1e-9) == 1 and pclient._ttl_ms(0.0015) == 2
    assert pclient._ttl_ms(1) == 1000 and pclient._ttl_ms(0) == 0
    # Absurd ones are the client's error, not a raw ValueError,
    # OverflowError or TypeError (hostile re-check).
    for bad in (float("nan"), float("inf"), 1e300):
        with pytest.raises(pocket.Malformed):
            pclient._ttl_ms(bad)


def test_node_unavailable_is_exported():
    """The class a node that cannot be reached raises is importable from
    pocket, and is an Unavailable (a new user's trial: it showed in
    tracebacks as NodeUnavailable, which pocket did not export)."""
    import pocket
    assert "NodeUnavailable" in pocket.__all__
    assert issubclass(pocket.NodeUnavailable, pocket.Unavailable)
