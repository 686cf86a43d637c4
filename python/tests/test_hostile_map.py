"""Placement maps from a broken or hostile controller (a hostile trial; the
Go metaclient's TestMapOfAnotherJobIsRefused): a map naming a node twice,
with a negative weight, or of another job, is refused, not used."""

from __future__ import annotations

import flatbuffers
import pytest

from pocket import control, errors, wire
from pocket.fb import MapNode as fbMapNode
from pocket.fb import PlacementMap as fbPlacementMap


def encode_map(job: str, nodes: list[tuple[str, float]]) -> bytes:
    b = flatbuffers.Builder(256)
    offs = []
    for addr, w in nodes:
        a = b.CreateString(addr)
        fbMapNode.MapNodeStart(b)
        fbMapNode.MapNodeAddAddr(b, a)
        fbMapNode.MapNodeAddWeight(b, w)
        offs.append(fbMapNode.MapNodeEnd(b))
    fbPlacementMap.PlacementMapStartNodesVector(b, len(offs))
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    vec = b.EndVector()
    j = b.CreateString(job)
    fbPlacementMap.PlacementMapStart(b)
    fbPlacementMap.PlacementMapAddJob(b, j)
    fbPlacementMap.PlacementMapAddEpoch(b, 1)
    fbPlacementMap.PlacementMapAddNodes(b, vec)
    b.Finish(fbPlacementMap.PlacementMapEnd(b))
    return bytes(b.Output())


def test_a_good_map_decodes():
    m = wire.decode_placement_map(encode_map("j-1", [("a:1", 1.0), ("b:1", 2.0)]))
    assert m.job == "j-1" and [n.addr for n in m.nodes] == ["a:1", "b:1"]


@pytest.mark.parametrize("nodes", [[("a:1", 1.0), ("a:1", 1.0)], [("a:1", -5.0)], [("a:1", float("nan"))]])
def test_a_bad_map_is_refused(nodes):
    """Before, each decoded: rendezvous hashing gave a node listed twice
    two draws, and a negative weight reached placement."""
    with pytest.raises(errors.Malformed):
        wire.decode_placement_map(encode_map("j-1", nodes))


def test_the_map_of_another_job_is_refused(monkeypatch):
    """Before, get_map returned it: the job's requests, with its token,
    would have gone to the other job's nodes."""
    c = control.Controller.__new__(control.Controller)
    monkeypatch.setattr(c, "call", lambda op, meta: encode_map("other-2", [("a:1", 1.0)]), raising=False)
    with pytest.raises(errors.Malformed):
        c.get_map("j-1", b"tok")
