package pocket

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// Nodes gone from an ended job's frozen map (gone.go): a new user's report
// of the Go CLI after a node of a credential's map was drained with
// --discard-persisted and retired.

// splitByOwner returns the keys whose owner under job j's map is addr, and
// the others.
func splitByOwner(j *Job, keys []string, addr string) (on, off []string) {
	for _, k := range keys {
		if j.route([]byte(k), 0).addr == addr {
			on = append(on, k)
		} else {
			off = append(off, k)
		}
	}
	return on, off
}

// listNames lists the job's names under prefix, failing the test on an
// error.
func listNames(t *testing.T, j *Job, prefix string) []string {
	t.Helper()
	ents, err := j.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("listing %q: %v", prefix, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	return names
}

// drainingCredential returns cred with the node at addr marked draining
// and every other node not, as a credential taken while that node drained.
func drainingCredential(t *testing.T, cred, addr string) string {
	t.Helper()
	c, err := decodeCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		c.Nodes[i].Draining = c.Nodes[i].ID == addr
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestEndedJobOverRetiredNode: once a node of an ended job's map is
// retired with its persisted values discarded, the job's credential lists
// and counts what the other nodes hold, a read or delete of a value that
// was on the retired node answers ErrLost naming it (not unavailable),
// GoneNodes names it, a recursive delete succeeds, and a deleted key reads
// as not found even once its node holds none of the job's values and
// answers revoked. Before, the reads failed unavailable, and the listing,
// count and recursive delete failed unavailable for good.
func TestEndedJobOverRetiredNode(t *testing.T) {
	ctl, s, nodes := exitStore(t, 3)
	keys, cred := persistEnded(t, s, nodes, 24)
	victim := nodes[0]
	left, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	gone, kept := splitByOwner(left, keys, victim.addr)
	if len(gone) == 0 || len(kept) == 0 {
		t.Fatalf("%d key(s) on the victim, %d elsewhere: the test needs both", len(gone), len(kept))
	}
	if _, err := ctl.DrainWith(victim.addr, controller.DrainOptions{Deadline: time.Minute, DiscardPersisted: true}); err != nil {
		t.Fatalf("drain with DiscardPersisted: %v", err)
	}
	waitFor(t, 10*time.Second, "the discarding drain to retire the node", victim.exited.Load)

	ctx := context.Background()
	if got := listNames(t, left, "kept/"); !slices.Equal(got, kept) {
		t.Fatalf("listing after the node left: %v; want the other nodes' %v", got, kept)
	}
	if g := left.GoneNodes(); !slices.Equal(g, []string{victim.addr}) {
		t.Fatalf("GoneNodes %v; want [%s]", g, victim.addr)
	}
	if n, err := left.CountFiles(ctx, "kept"); err != nil || n != len(kept) {
		t.Fatalf("count: %d, %v; want %d", n, err, len(kept))
	}
	for _, k := range kept {
		if v, err := left.Get(ctx, k); err != nil || string(v) != "value of "+k {
			t.Fatalf("get %s on a remaining node: %q, %v", k, v, err)
		}
	}
	if _, err := left.Get(ctx, gone[0]); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), victim.addr) {
		t.Fatalf("get of a value that was on the retired node: %v; want ErrLost naming %s", err, victim.addr)
	}
	if err := left.Delete(ctx, gone[0]); !errors.Is(err, ErrLost) {
		t.Fatalf("delete of a value that was on the retired node: %v; want ErrLost", err)
	}
	// A fresh handle finds the node gone too (after goneWait), in a
	// listing of its own.
	fresh, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.RemoveAll(ctx, "kept"); err != nil {
		t.Fatalf("recursive delete with a node gone: %v", err)
	}
	if got := listNames(t, fresh, ""); len(got) != 0 {
		t.Fatalf("after the recursive delete: %v", got)
	}
	// The remaining nodes now hold nothing of the job: once they forget
	// it (a heartbeat or two) they answer revoked, which for a key of the
	// ended job means "not found".
	other := nodes[1].addr
	waitFor(t, 10*time.Second, "a remaining node to forget the ended job", func() bool {
		tg := fresh.targetOf(other)
		req := wire.Request{Job: tg.job, Token: tg.token, Epoch: tg.epoch}
		_, err := s.data.Do(ctx, other, wire.OpList, tg.flags, &req, nil, nil)
		return errors.Is(err, wire.ErrRevoked)
	})
	on, _ := splitByOwner(fresh, kept, other)
	if len(on) == 0 {
		t.Fatalf("no kept key on %s", other)
	}
	if _, err := fresh.Get(ctx, on[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a deleted key whose node forgot the job: %v; want not found", err)
	}
	if err := fresh.Delete(ctx, on[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of a deleted key whose node forgot the job: %v; want not found", err)
	}
	if got := listNames(t, fresh, ""); len(got) != 0 {
		t.Fatalf("listing of the emptied job: %v", got)
	}
}

// TestEndedJobCredentialDrainingNodeStopped: a job deregistered just after
// a node of its map drained and stopped, before the controller handed out
// the map without it, keeps that node marked draining in its credential.
// Listings, counts, prefix deletes and deletes that also ask the draining
// node succeed once it is found gone. Before, they failed unavailable.
func TestEndedJobCredentialDrainingNodeStopped(t *testing.T) {
	_, s, nodes := exitStore(t, 3)
	keys, cred := persistEnded(t, s, nodes, 24)
	victim := nodes[0]
	// The credential as it was taken while the victim drained.
	drainCred := drainingCredential(t, cred, victim.addr)
	whole, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	onVictim, kept := splitByOwner(whole, keys, victim.addr)
	if len(onVictim) == 0 || len(kept) == 0 {
		t.Fatalf("%d key(s) on the victim, %d elsewhere: the test needs both", len(onVictim), len(kept))
	}
	victim.stop() // stopped: its values gone with it

	left, err := s.OpenCredential(drainCred)
	if err != nil {
		t.Fatal(err)
	}
	if !left.Map().Draining[victim.addr] {
		t.Fatal("the credential lost the draining mark")
	}
	ctx := context.Background()
	if got := listNames(t, left, "kept/"); !slices.Equal(got, kept) {
		t.Fatalf("listing with the draining node stopped: %v; want %v", got, kept)
	}
	if n, err := left.CountFiles(ctx, "kept"); err != nil || n != len(kept) {
		t.Fatalf("count: %d, %v; want %d", n, err, len(kept))
	}
	if err := left.Delete(ctx, onVictim[0]); !errors.Is(err, ErrLost) {
		t.Fatalf("delete of a key whose draining owner stopped: %v; want ErrLost", err)
	}
	if err := left.Delete(ctx, kept[0]); err != nil {
		t.Fatalf("delete of a key on a remaining node: %v", err)
	}
	if _, err := left.Get(ctx, kept[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of the deleted key: %v; want not found", err)
	}
	if err := left.RemoveAll(ctx, "kept"); err != nil {
		t.Fatalf("recursive delete with the draining node stopped: %v", err)
	}
	if got := listNames(t, left, ""); len(got) != 0 {
		t.Fatalf("after the recursive delete: %v", got)
	}
}

// TestLiveJobRefusedNodeUnchanged: a live job's request to a node that
// refuses connections still fails unavailable at once (the controller's
// maps tell a live job which nodes left), and GoneNodes stays empty.
func TestLiveJobRefusedNodeUnchanged(t *testing.T) {
	_, s, nodes := exitStore(t, 2)
	ctx := context.Background()
	j, err := s.RegisterJob(ctx, "live", Hints{Lambdas: 80})
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	nodes[0].stop()
	start := time.Now()
	_, err = s.data.Do(ctx, nodes[0].addr, wire.OpList, 0, &wire.Request{Job: []byte("live")}, nil, nil)
	if !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("request to the stopped node: %v; want unavailable", err)
	}
	_, err = j.goneCheck(ctx, nodes[0].addr, true, func() (client.Reply, error) {
		return s.data.Do(ctx, nodes[0].addr, wire.OpList, 0, &wire.Request{Job: []byte("live")}, nil, nil)
	})
	if !errors.Is(err, wire.ErrUnavailable) || isGone(err) || time.Since(start) > goneWait {
		t.Fatalf("live job's request to a refusing node: %v after %v; want unavailable at once", err, time.Since(start))
	}
	if g := j.GoneNodes(); len(g) != 0 {
		t.Fatalf("GoneNodes of a live job: %v", g)
	}
}

// TestEndedJobCredentialLiveOwnerGone: with a node marked draining in the
// credential, a key it still holds whose owner without it is gone reads
// from the draining node, once the gone node is known (a listing found
// it). Answering gone at once for the dead owner missed the value.
func TestEndedJobCredentialLiveOwnerGone(t *testing.T) {
	_, s, nodes := exitStore(t, 3)
	keys, cred := persistEnded(t, s, nodes, 24)
	draining := nodes[0]
	left, err := s.OpenCredential(drainingCredential(t, cred, draining.addr))
	if err != nil {
		t.Fatal(err)
	}
	// A key on the draining node whose owner without it is the node to stop.
	var key string
	var victim *exitNode
	for _, k := range keys {
		if tg := left.route([]byte(k), 0); tg.old == draining.addr {
			for _, n := range nodes[1:] {
				if n.addr == tg.addr {
					key, victim = k, n
				}
			}
			break
		}
	}
	if victim == nil {
		t.Fatal("no key on the draining node")
	}
	victim.stop()
	if _, err := left.List(context.Background(), ""); err != nil {
		t.Fatalf("listing with a node stopped: %v", err)
	}
	if g := left.GoneNodes(); !slices.Equal(g, []string{victim.addr}) {
		t.Fatalf("GoneNodes %v; want [%s]", g, victim.addr)
	}
	if v, err := left.Get(context.Background(), key); err != nil || string(v) != "value of "+key {
		t.Fatalf("get of %s on the draining node, its other owner gone: %q, %v", key, v, err)
	}
}
