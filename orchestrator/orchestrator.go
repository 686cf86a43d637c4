// Package orchestrator starts and stops storage nodes for the controller's
// autoscaler and for `pocket up`.
//
// # The contract
//
// The Orchestrator interface is what a cluster manager implements. The
// controller's autoscaler (controller.StartAutoscaler) calls it; nothing
// else in the controller depends on where nodes run.
//
//   - Start(spec) runs one `pocket node` with the spec's tier sizes and
//     extra flags, registered with spec.Controller, and holding the
//     cluster secret (token.EnvSecret) by some means the implementation
//     chooses. Over mutual TLS the node also needs a node certificate:
//     `pocket up` puts `--tls-dir DIR` (a path, never a key) in spec.Args
//     for nodes on its host; elsewhere the implementation provides one
//     (`pocket cert issue --role node`). It returns once the node accepts data-plane connections,
//     with an ID (the implementation's handle) and the address clients
//     and the controller will dial: the node must advertise that same
//     address (`--advertise`) when it differs from the one it binds. The
//     node then registers by itself; the autoscaler waits for that.
//     A new node should serve within seconds: Local's do in milliseconds.
//   - Stop(id) ends a node. The controller calls it only after a drain has
//     retired the node (its data moved, or its deadline passed), so Stop
//     may be abrupt. An unknown id returns ErrUnknownNode.
//   - Nodes lists the nodes the orchestrator runs, so a restarted
//     controller can tell its own nodes (which it may drain and stop) from
//     nodes started by hand (which it drains but leaves running).
//   - Close stops every node this orchestrator started.
//
// Every method is safe for concurrent use: the autoscaler may start
// several nodes at once while retiring another.
//
// # Local
//
// Local runs each node as a child process of this one on this machine
// (`pocket up`, `pocket up --autoscale`, `pocket trace`).
//
// # Kubernetes
//
// Package orchestrator/k8s runs each node as a Pod (`pocket controller
// --orchestrator kubernetes`): the `pocket node` image with `--advertise
// $(POD_IP):7100`, the cluster secret and the node certificate from
// Secrets, memory or hugepages-2Mi for the DRAM tier, a local Block volume
// for NVMe, pod anti-affinity, and an owner reference to the controller;
// Start returns when the Pod is Ready (its data port accepts connections).
// Its package doc has the design. It is a package of its own so that the
// controller, which imports this package for the interface, does not link
// client-go. Package orchestrator/spot turns a spot host's termination
// notice into drains of its nodes (`pocket spot`).
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
