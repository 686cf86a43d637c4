"""The wire encoding, checked against the flatc-generated readers and
builders, and the object layout against wire/objects.go's format."""

import itertools
import struct

import flatbuffers
import pytest

from pocket import errors, wire
from pocket.fb import Request, Response, Entry


def read_request(b):
    r = Request.Request.GetRootAs(b, 0)
    tok = bytes(r.Token(i) for i in range(r.TokenLength()))
    return (r.Job() or b"", r.Key() or b"", tok, r.Epoch(), r.After() or b"", r.Limit(), r.Delimiter(),
            r.Version(), r.ObjectSize())


KEYS = [b"k", b"ab", b"abc", b"abcd", b"abcde", b"dir/part-0001", b"x" * 984, b"k\x000123456789abcdef\x001"]


@pytest.mark.parametrize("key", KEYS)
def test_request_encoding_reads_back(key):
    for job, tok, epoch, after, limit, delim, ver, size in itertools.product(
            [b"j", b"sort-12345"], [b"", bytes(range(40))], [0, 1, 2**64 - 1], [b"", b"after/x"], [0, 10000],
            [0, 47], [0, 2**63 + 1], [0, 123456789]):
        b = wire.encode_request(job, key, tok, epoch, after=after, limit=limit, delimiter=delim, version=ver,
                                object_size=size)
        assert read_request(b) == (job, key, tok, epoch, after, limit, delim, ver, size)
        assert len(b) % 4 == 0


def test_request_scalars_aligned():
    b = wire.encode_request(b"job", b"key", b"tok", 5, version=7, object_size=9)
    t = struct.unpack_from("<I", b)[0]
    assert t % 8 == 4  # 8-byte scalars at T+4.. are 8-aligned
    assert struct.unpack_from("<QQq", b, t + 4) == (5, 7, 9)


def test_empty_request():
    assert read_request(wire.encode_request(b"")) == (b"", b"", b"", 0, b"", 0, 0, 0, 0)


@pytest.mark.parametrize("key", KEYS)
def test_codec_matches_encoder(key):
    for tok, epoch in [(b"", 0), (bytes(range(40)), 3)]:
        c = wire.RequestCodec(b"job-7", tok, epoch)
        for ver, size in [(0, 0), (9, 0), (0, 8), (2**64 - 1, 2**62)]:
            assert c.encode(key, ver, size) == wire.encode_request(b"job-7", key, tok, epoch, version=ver,
                                                                  object_size=size)


def build_response(**kw):
    b = flatbuffers.Builder(256)
    ents = []
    for k, size, d in kw.get("entries", []):
        ko = b.CreateString(k)
        Entry.EntryStart(b)
        Entry.EntryAddKey(b, ko)
        Entry.EntryAddSize(b, size)
        Entry.EntryAddDir(b, d)
        ents.append(Entry.EntryEnd(b))
    Response.ResponseStartEntriesVector(b, len(ents))
    for e in reversed(ents):
        b.PrependUOffsetTRelative(e)
    ev = b.EndVector()
    msg = b.CreateString(kw.get("message", ""))
    vs = b.CreateByteVector(b"".join(struct.pack("<Q", v) for v in kw.get("versions", [])))
    Response.ResponseStart(b)
    Response.ResponseAddMessage(b, msg)
    Response.ResponseAddEpoch(b, kw.get("epoch", 0))
    Response.ResponseAddSize(b, kw.get("size", 0))
    Response.ResponseAddEntries(b, ev)
    Response.ResponseAddMore(b, kw.get("more", False))
    Response.ResponseAddCount(b, kw.get("count", 0))
    Response.ResponseAddVersion(b, kw.get("version", 0))
    Response.ResponseAddVersions(b, vs)
    b.Finish(Response.ResponseEnd(b))
    return bytes(b.Output())


def test_response_decoding():
    meta = build_response(message="boom", epoch=4, size=99, entries=[("a/", 0, True), ("a/b", 3, False)], more=True,
                          count=2, version=17, versions=[1, 2**64 - 1])
    r = wire.decode_response(meta)
    assert (r.message, r.epoch, r.size, r.more, r.count, r.version) == ("boom", 4, 99, True, 2, 17)
    assert r.entries == [wire.Entry(b"a/", 0, True), wire.Entry(b"a/b", 3, False)]
    assert r.versions == [1, 2**64 - 1]


def test_error_reply_carries_code_message_epoch():
    e = wire.reply_error(errors.Code.STALE_EPOCH, build_response(message="old map", epoch=12))
    assert isinstance(e, errors.StaleEpoch) and e.code == 9 and e.epoch == 12 and "old map" in str(e)
    e = wire.reply_error(errors.Code.NOT_FOUND, b"")
    assert isinstance(e, errors.NotFound) and e.code == errors.Code.NOT_FOUND
    e = wire.reply_error(200, b"")
    assert type(e) is errors.PocketError and e.code == 200


def test_bad_name_code_says_name():
    """Code 15 covers job names and node addresses as well as keys, and
    reads "bad name" as the Go registry's text does (before: "bad key: job
    name ..."); BAD_KEY stays its alias."""
    e = errors.error_for(15, 'job name "a b": only letters, digits, \'.\', \'_\' and \'-\' are allowed')
    assert isinstance(e, errors.BadKey) and e.code == errors.Code.BAD_NAME == errors.Code.BAD_KEY == 15
    assert str(e).startswith('pocket: bad name: job name "a b"'), str(e)


def test_garbage_metadata_is_malformed():
    for meta in [b"\x01", b"\xff" * 8, b"\x04\x00\x00\x00\xff\xff\xff\x7f", bytes(range(64))]:
        with pytest.raises(errors.PocketError):
            wire.decode_response(meta)


def test_header_round_trip_and_limits():
    h = wire.pack_header(wire.OP_GET | wire.REPLY_BIT, wire.FLAG_MANIFEST, 2**64 - 1, 10, 20, code=5)
    assert len(h) == wire.HEADER_LEN and h[:4] == b"PK\x01\x83"
    p = wire.parse_header(h)
    assert (p.op, p.flags, p.code, p.id, p.meta_len, p.payload_len) == (0x83, 8, 5, 2**64 - 1, 10, 20)
    with pytest.raises(errors.Malformed):
        wire.parse_header(b"XX" + h[2:])
    with pytest.raises(errors.Malformed):  # a request where a reply belongs
        wire.parse_header(wire.pack_header(wire.OP_GET, 0, 1, 0, 0))
    with pytest.raises(errors.TooLarge):
        wire.parse_header(wire.pack_header(0x83, 0, 1, 0, wire.MAX_PAYLOAD + 1))
    with pytest.raises(errors.TooLarge):
        wire.parse_header(wire.pack_header(0x83, 0, 1, wire.MAX_META + 1, 0))


def test_manifest_layout():
    m = wire.Manifest(0x0123456789ABCDEF, 5 * 2**20 + 3, 2**20, 6)
    b = m.encode()
    assert len(b) == 28 and b[:4] == b"PKM2"
    assert b[4:12] == (0x0123456789ABCDEF).to_bytes(8, "little")
    assert wire.decode_manifest(b) == m
    assert m.bounds(6) == (5 * 2**20, 5 * 2**20 + 3)
    for bad in [wire.Manifest(0, 10, 5, 2), wire.Manifest(1, 10, 5, 3), wire.Manifest(1, 10, 2**27, 1)]:
        with pytest.raises(errors.Corrupt):
            wire.decode_manifest(bad.encode())
    with pytest.raises(errors.Corrupt):
        wire.decode_manifest(b[:27])


def test_chunk_key_format():
    assert wire.chunk_key(b"dir/x", 0xAB, 12) == b"dir/x\x00" + b"00000000000000ab" + b"\x0012"
    assert wire.is_chunk_key(wire.chunk_key(b"k", 1, 1)) and not wire.is_chunk_key(b"k")


def build_map(lost):
    """A PlacementMap with one node and the lost nodes (addr, weight, epoch)."""
    from pocket.fb import LostNode, MapNode, PlacementMap
    b = flatbuffers.Builder(256)
    offs = []
    for addr, weight, epoch in lost:
        a = b.CreateString(addr)
        LostNode.Start(b)
        LostNode.AddAddr(b, a)
        LostNode.AddWeight(b, weight)
        LostNode.AddEpoch(b, epoch)
        offs.append(LostNode.End(b))
    PlacementMap.StartLostVector(b, len(offs))
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    lv = b.EndVector()
    a = b.CreateString("127.0.0.1:7001")
    MapNode.Start(b)
    MapNode.AddAddr(b, a)
    MapNode.AddWeight(b, 1.0)
    MapNode.AddState(b, wire.NODE_ACTIVE)
    n = MapNode.End(b)
    PlacementMap.StartNodesVector(b, 1)
    b.PrependUOffsetTRelative(n)
    nv = b.EndVector()
    job = b.CreateString("j-1")
    PlacementMap.Start(b)
    PlacementMap.AddJob(b, job)
    PlacementMap.AddEpoch(b, 5)
    PlacementMap.AddNodes(b, nv)
    PlacementMap.AddLost(b, lv)
    b.Finish(PlacementMap.End(b))
    return bytes(b.Output())


def test_placement_map_lost_nodes():
    m = wire.decode_placement_map(build_map([("127.0.0.1:7002", 0.5, 4), ("127.0.0.1:7003", 2.0, 5)]))
    assert m.epoch == 5 and [n.addr for n in m.nodes] == ["127.0.0.1:7001"]
    assert m.lost == [wire.LostNode("127.0.0.1:7002", 0.5, 4), wire.LostNode("127.0.0.1:7003", 2.0, 5)]
    assert wire.decode_placement_map(build_map([])).lost == []
    with pytest.raises(errors.TooLarge):
        wire.decode_placement_map(build_map([("a:1", 1.0, 2)] * (wire.MAX_LOST_NODES + 1)))
    with pytest.raises(errors.Malformed):
        wire.decode_placement_map(build_map([("a:1", -1.0, 2)]))
