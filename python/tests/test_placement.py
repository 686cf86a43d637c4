"""Placement agrees with Go's internal/placement on the shared vectors."""

import json

from conftest import REPO

from pocket import placement

VECTORS = REPO / "internal" / "placement" / "testdata" / "vectors.json"


def load():
    return json.loads(VECTORS.read_text())


def test_vectors_hashes_and_owners():
    v = load()
    assert len(v["cases"]) >= 100
    sets = []
    for s in v["sets"]:
        for n in s:
            assert placement.hash_id(n["id"]) == n["id_hash"], n["id"]
        sets.append(placement.NodeSet([(n["id"], n["weight"]) for n in s]))
    nodes = [[(n["id"], n["weight"]) for n in s] for s in v["sets"]]
    for c in v["cases"]:
        key = bytes.fromhex(c["key_hex"])
        assert placement.hash_key(key, c["chunk"]) == c["key_hash"], c
        assert sets[c["set"]].pick(key, c["chunk"]) == c["owner"], c
        assert sets[c["set"]].pick(key, c["chunk"]) == c["owner"], c  # memoized
        assert placement.pick(nodes[c["set"]], key, c["chunk"]) == c["owner"], c


def test_vectors_cover_every_owner_of_the_large_set():
    v = load()
    owners = {c["owner"] for c in v["cases"] if c["set"] == 4}
    assert len(owners) >= 6


def test_no_positive_weight_owns_nothing():
    assert placement.NodeSet([("a:1", 0), ("b:1", -1), ("c:1", float("inf"))]).pick(b"k") == -1
