"""Listings of a deregistered job: its persisted values through the
deregistered handle and its credential, a revocation through another
handle. The old client listed [] for any handle of a revoked job (and
count_files raised NotFound), since it took every "revoked" reply for a
node holding none of the persisted values."""

import pytest

import pocket


def test_retired_job_lists_its_persisted_values(client):
    j = client.register_job("retired-list", lambdas=40)
    j.put("keep/one", b"stays", persist=True)
    j.put("keep/gone", b"goes")
    j.put("other", b"goes")
    live = client.open_job(j.id, j.token)
    cred = j.credential()
    j.deregister()
    for handle in (j, client.open_credential(cred)):
        assert [e.name for e in handle.list("")] == ["keep/one"]
        assert handle.count_files("keep") == 1
    with pytest.raises(pocket.Revoked):
        live.list("")
    with pytest.raises(pocket.Revoked):
        live.count_files("keep")
