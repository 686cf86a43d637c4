// Package orchestrator starts and stops storage nodes for the controller's
// autoscaler and for `pocket up`.
//
// The Orchestrator interface is what a cluster manager implements. Local
// runs `pocket node` processes on this machine; a Kubernetes implementation
// would create a pod per node from a template (the node's flags as the
// container's arguments, the secret from a Secret), report the pod's
// address once its readiness probe (a TCP check of the data-plane port)
// passes, and delete the pod on Stop after the controller has drained it.
package orchestrator

import (
	"context"
	"errors"
)

// NodeSpec is what a new node is given.
type NodeSpec struct {
	DRAM       string // DRAM tier size, e.g. "1GiB"
	NVMe       string // optional PATH:SIZE
	Controller string // controller address the node registers with
	Args       []string
}

// Node is a started node: its id (the orchestrator's handle) and its
// data-plane address as the controller will see it.
type Node struct {
	ID   string
	Addr string
}

// Orchestrator starts and stops nodes. Implementations are safe for
// concurrent use. Start returns once the node accepts connections; the
// node then registers with the controller by itself. Stop is called only
// after the controller has drained the node.
type Orchestrator interface {
	Start(ctx context.Context, spec NodeSpec) (Node, error)
	Stop(ctx context.Context, id string) error
	Nodes() []Node
	Close() error
}

// ErrUnknownNode: Stop was given an id the orchestrator did not start.
var ErrUnknownNode = errors.New("orchestrator: unknown node")
