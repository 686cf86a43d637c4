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
// # Kubernetes, on paper
//
// A Kubernetes implementation would create one Pod per Start, not a
// Deployment or StatefulSet replica: scale-in chooses which node leaves
// (the emptiest), and a StatefulSet always removes the highest ordinal.
//
//   - Pod template: the `pocket node` image with spec's flags as args,
//     `--listen 0.0.0.0:7100 --advertise $(POD_IP):7100` (POD_IP from the
//     downward API), POCKET_SECRET from a Secret, the node certificate
//     (`pocket cert issue --role node`) from a Secret mounted read-only
//     as the directory given to `--tls-dir`, resource requests for
//     memory (the DRAM tier; hugepages-2Mi when reserved) and, for NVMe, a
//     local PersistentVolume in Block mode; pod anti-affinity so that two
//     storage nodes do not share a host's NIC; an ownerReference to the
//     controller's Pod so nodes go when the controller goes.
//   - Start creates the Pod, watches it until its readiness probe (a TCP
//     check of port 7100) passes, and returns the Pod's name as ID and
//     POD_IP:7100 as Addr.
//   - Stop deletes the Pod with a short grace period; the drain already
//     ran. Nodes lists Pods by a label the implementation sets.
//   - Spot or preemptible hosts: a node-termination handler that receives
//     the provider's notice runs `pocket node drain ADDR --deadline 2m`, so
//     the node's data moves before the host goes.
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
