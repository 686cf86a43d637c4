"""A credential taken while a node of its job drained names the node
draining. The job ended, and the node left with its values moved, so the
controller's final map of the same epoch no longer names it (package
controller, endedRetireLocked). The credential opens on that map, as the Go
SDK's does, so a read of a missing key does not ask a node that is gone.
On the old client it kept its own map."""

import pocket
from pocket import wire


class FinalMapController:
    """Answers every map question with an ended job's final map."""

    def __init__(self, final):
        self.final = final

    def get_map(self, job, token):
        return self.final

    def close(self):
        pass


def test_credential_takes_the_final_map_a_node_left():
    a, b = "127.0.0.1:1", "127.0.0.1:2"
    taken = wire.PlacementMap(job="j-1", tier=0, epoch=3, token=b"tok",
                              nodes=[wire.MapNode(a, 1.0), wire.MapNode(b, 1.0, wire.NODE_DRAINING)])
    final = wire.PlacementMap(job="j-1", tier=0, epoch=3, token=b"tok", nodes=[wire.MapNode(a, 1.0)], ended=True)
    c = pocket.Client()
    try:
        cred = pocket.Job(c, taken).credential()
        c.controller = FinalMapController(final)
        j = c.open_credential(cred)
        assert j.ended
        assert [n.addr for n in j._st.map.nodes] == [a]
    finally:
        c.controller = None
        c.close()
