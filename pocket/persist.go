package pocket

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Persisted values (Pocket's PERSIST_AFTER_JOB)
//
// Values put with Persist outlive their job. When the job is deregistered,
// every node drops the job's other values and keeps the persistent ones
// read-only: the job's token still gets, lists and deletes them, and no
// node takes a new put under it (wire.CodeRevoked). The controller forgets
// the job as a live one, so the map that finds those values is the
// credential: a Job keeps working for reads after Deregister, and
// Credential carries its id, token and map to another process, which
// opens it with OpenCredential (no controller needed). A job can also end
// without anyone holding its credential: its token expires. So the
// controller keeps the final map of an ended job while nodes keep its
// persisted values (controller/ended.go), and OpenJob with the job's id
// and token (expired or not) opens it as an ended job on that map
// (Job.Ended), whose Credential then hands it on. A key that was not
// persistent answers "not found", or CodeRevoked from a node that kept
// none of the job's values.
// A node still dropping the job's other values (a large job, moments after
// Deregister) answers busy instead, as it may hold persisted ones: a
// deregistered job's calls wait that out (up to dropWait, or until their
// context ends), so a listing or count never skips a node mid-drop.
// Persistent values live until they are deleted or their node stops. A
// drain moves a live job's persistent values with its others (Deregister
// takes the job's current map, so the credential finds them), never an
// ended job's: the controller refuses to drain, and scale-in passes over,
// a node that keeps them, unless the drain is told to discard them
// (controller/drain.go). A node of the map that is gone for good (drained
// with its persisted values discarded, or dead) refuses connections: the
// credential's calls find it gone and go on without it (gone.go).

// credential is the encoded form of a job's map.
type credential struct {
	Job   string     `json:"job"`
	Token []byte     `json:"token"`
	Tier  Tier       `json:"tier"`
	Epoch uint64     `json:"epoch"`
	Nodes []credNode `json:"nodes"`
	// Lost are the map's lost nodes (absent: none), so a key they held
	// reads ErrLost through the credential too, not "not found" (lost.go).
	Lost []credLost `json:"lost,omitempty"`
}

// credLost is a LostNode as credentials encode it.
type credLost struct {
	Addr   string  `json:"addr"`
	Weight float64 `json:"weight"`
	Epoch  uint64  `json:"epoch"`
}

// credNode is a Node as credentials encode it: {"ID": addr, "Weight": w},
// the field names of the first credentials, which stay readable, and
// whether the map named it draining or joining (absent: neither), or dead
// or suspect (written "dead" either way, as older SDKs read it). A reader
// takes the mark as suspect (Map.Suspect): a node named dead may have come
// back with its values, so its calls still try it, but one that refuses
// connections counts as gone at once, where an SDK that predates the mark
// dials it for goneWait first. A
// credential taken while a node of the map drained routes its reads as
// the live job's did (drain.go): a value the drain moved is at its owner
// without the draining node, one it had not moved (an ended job's, which
// drains leave) on the draining node.
type credNode struct {
	ID       string  `json:"ID"`
	Weight   float64 `json:"Weight"`
	Draining bool    `json:"draining,omitempty"`
	Joining  bool    `json:"joining,omitempty"`
	Dead     bool    `json:"dead,omitempty"`
	Since    uint64  `json:"since,omitempty"` // Node.Since
}

func credNodes(m *Map) []credNode {
	out := make([]credNode, len(m.Nodes))
	for i, n := range m.Nodes {
		out[i] = credNode{ID: n.Addr, Weight: n.Weight, Draining: m.Draining[n.Addr], Joining: m.Joining[n.Addr],
			Dead: m.Dead[n.Addr] || m.Suspect[n.Addr], Since: n.Since}
	}
	return out
}

func credLostNodes(m *Map) []credLost {
	var out []credLost
	for _, l := range m.Lost {
		out = append(out, credLost(l))
	}
	return out
}

// credMap is the map a credential carries.
func (c *credential) credMap() Map {
	m := Map{Job: c.Job, Token: c.Token, Tier: c.Tier, Epoch: c.Epoch, Nodes: make([]Node, len(c.Nodes))}
	for i, n := range c.Nodes {
		m.Nodes[i] = Node{Addr: n.ID, Weight: n.Weight, Since: n.Since}
		if n.Draining {
			if m.Draining == nil {
				m.Draining = map[string]bool{}
			}
			m.Draining[n.ID] = true
		}
		if n.Joining {
			if m.Joining == nil {
				m.Joining = map[string]bool{}
			}
			m.Joining[n.ID] = true
		}
		if n.Dead {
			if m.Suspect == nil {
				m.Suspect = map[string]bool{}
			}
			m.Suspect[n.ID] = true
		}
	}
	for _, l := range c.Lost {
		m.Lost = append(m.Lost, LostNode(l))
	}
	return m
}

// Credential returns the job's id, token and map as one printable string
// (base64 of JSON). It is a secret: whoever holds it can read and delete
// the job's values.
func (j *Job) Credential() string {
	m := j.snapshot()
	b, _ := json.Marshal(credential{Job: m.Job, Token: m.Token, Tier: m.Tier, Epoch: m.Epoch, Nodes: credNodes(&m), Lost: credLostNodes(&m)})
	return base64.RawURLEncoding.EncodeToString(b)
}

// OpenCredential opens a job from a Credential string: typically one that
// has been deregistered, to read or delete its persisted values. Calls that
// need the controller (Deregister, a map refresh) fail on such a job.
//
// A Store with a controller asks it (within credentialWait) whether the job
// is still live: then the Job is an ordinary one, with the controller's
// current map, whose refusals (an expired token, say) are errors; if the
// job ended and the controller kept its final map, the Job is an ended
// one (Job.Ended) on that map; if the controller does not know the job (wire.ErrUnknownJob, or
// wire.ErrBadToken: another job has its id now), or the Store has no
// controller, the Job is a deregistered one's, for which a node that
// answers revoked holds none of its values. An error from a controller
// that could not answer is returned (open the credential with a Store
// without a controller, NewStore(nil, ...), to read a deregistered job's
// values while the controller is down).
func (s *Store) OpenCredential(cred string) (*Job, error) {
	return s.OpenCredentialContext(context.Background(), cred)
}

// OpenCredentialContext is OpenCredential with ctx bounding the question
// to the controller (within credentialWait, 10 s, at most): a tool that
// falls back to a Store without a controller when this one cannot answer
// promptly passes a short deadline; the error then wraps ctx's.
func (s *Store) OpenCredentialContext(ctx context.Context, cred string) (*Job, error) {
	c, err := decodeCredential(cred)
	if err != nil {
		return nil, err
	}
	j, err := s.newJob(c.credMap())
	if err != nil {
		return nil, err
	}
	if s.ctl == nil {
		j.retired.Store(true)
		return j, nil
	}
	ctx, cancel := context.WithTimeout(ctx, credentialWait)
	defer cancel()
	m, err := s.ctl.GetMap(ctx, c.Job, c.Token)
	switch {
	case err == nil && m.Ended:
		// Ended, and the controller kept the map it ended with: a
		// credential of an earlier epoch (taken while the job ran, and
		// its map changed since) reads by that one.
		if m.Epoch > c.Epoch {
			j.setMap(m)
		} else if cur := j.snapshot(); m.Epoch == c.Epoch && (namesMoreLost(m, cur) || namesFewerNodes(m, cur)) {
			// The same map with nodes lost since the job ended (their
			// process restarted or was retired: package controller,
			// ended_lost.go): their keys read lost, not "not found"; or
			// with nodes that left it since, drained with their values
			// moved: a read no longer asks them. The credential's suspect
			// marks stay on the nodes left.
			m.Suspect = keptSuspects(cur.Suspect, m)
			j.setMap(m)
		}
		j.retired.Store(true)
	case err == nil:
		j.setMap(m)
	case errors.Is(err, wire.ErrUnknownJob), errors.Is(err, wire.ErrBadToken):
		j.retired.Store(true)
	case errors.Is(err, wire.ErrRevoked):
		// Live, its token expired: its calls report that.
	default:
		return nil, fmt.Errorf("pocket: open credential: asking the controller whether job %s is live: %w", c.Job, err)
	}
	return j, nil
}

// credentialWait bounds OpenCredential's question to the controller.
const credentialWait = 10 * time.Second

// CredentialJob returns the id of the job a Credential string opens.
func CredentialJob(cred string) (string, error) {
	c, err := decodeCredential(cred)
	return c.Job, err
}

func decodeCredential(cred string) (credential, error) {
	var c credential
	b, err := base64.RawURLEncoding.DecodeString(cred)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		// Said as what it is not: a new user's trial read "invalid
		// character '\u0081' looking for beginning of value", and "unexpected
		// end of JSON input" for an empty one.
		return c, fmt.Errorf("pocket: %s is not a job credential (the string Job.Credential and pocket job credential print): %w",
			credShown(cred), err)
	}
	if c.Job == "" || len(c.Nodes) == 0 && len(c.Lost) == 0 {
		// A final map whose nodes were all lost since the job ended names
		// none but lost ones (package controller, ended_lost.go).
		return c, fmt.Errorf("pocket: credential names no job or no node")
	}
	if len(c.Lost) > wire.MaxLostNodes {
		return c, fmt.Errorf("pocket: credential names %d lost nodes, over the limit of %d", len(c.Lost), wire.MaxLostNodes)
	}
	return c, nil
}

// credShown names a credential that did not decode: empty, or its length
// (it may be a secret cut short, so none of it is shown).
func credShown(cred string) string {
	if cred == "" {
		return "an empty string"
	}
	return fmt.Sprintf("the %d-character string given", len(cred))
}

// namesFewerNodes reports whether m is cur with nodes taken out: each of
// m's nodes is one of cur's, and cur names more.
func namesFewerNodes(m, cur Map) bool {
	for _, n := range m.Nodes {
		if !slices.ContainsFunc(cur.Nodes, func(c Node) bool { return c.Addr == n.Addr }) {
			return false
		}
	}
	return len(m.Nodes) < len(cur.Nodes)
}

// namesMoreLost reports whether m names a lost node that cur does not.
func namesMoreLost(m, cur Map) bool {
	for _, l := range m.Lost {
		if !slices.ContainsFunc(cur.Lost, func(c LostNode) bool { return c.Addr == l.Addr && c.Epoch == l.Epoch }) {
			return true
		}
	}
	return false
}

// keptSuspects is the suspect marks of suspect on nodes m still has.
func keptSuspects(suspect map[string]bool, m Map) map[string]bool {
	var out map[string]bool
	for _, n := range m.Nodes {
		if suspect[n.Addr] {
			if out == nil {
				out = map[string]bool{}
			}
			out[n.Addr] = true
		}
	}
	return out
}
