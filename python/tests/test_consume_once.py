"""Delete-after-read hands each value to one reader: readers racing on one
key through every read path, for a one-record value and a chunked object;
exactly one gets the value, the others NotFound (nothing replaces the value:
never Conflict)."""
import threading

import pytest

import pocket
from pocket import compat, errors

RACERS = 6


def _race(read):
    won, bad = [], []

    def one(i):
        try:
            won.append(read(i))
        except errors.NotFound:
            pass
        except Exception as e:  # noqa: BLE001 - reported below
            bad.append(e)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(RACERS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad, bad
    return won


@pytest.mark.parametrize("size", [1000, (2 << 20) + 100])
@pytest.mark.parametrize("path", ["get", "get_into", "open"])
def test_racing_readers_consume_once(job, size, path):
    for rnd in range(3):
        key = f"{path}-{size}-{rnd}"
        v = bytes([rnd + 1]) * size
        job.put(key, v)

        def read(_):
            if path == "get":
                return bytes(job.get(key, delete_after_read=True))
            if path == "get_into":
                buf = bytearray(size)
                assert job.get_into(key, buf, delete_after_read=True) == size
                return bytes(buf)
            with job.open(key, delete_after_read=True) as r:
                return r.read()

        won = _race(read)
        assert won == [v], f"{key}: {len(won)} readers got the value"
        assert not job.exists(key)
