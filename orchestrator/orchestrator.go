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
// Kubernetes (kubernetes*.go) creates one Pod per Start, not a Deployment
// or StatefulSet replica: scale-in chooses which node leaves (the
// emptiest), and a StatefulSet always removes the highest ordinal.
//
//   - The Pod: the pocket image with `node --listen 0.0.0.0:7100
//     --advertise $(POD_IP):7100 --controller CTL --dram SIZE` and the
//     spec's flags (the flags the orchestrator sets may not appear in
//     spec.Args: an error, not an override). POD_IP comes from the
//     downward API, POCKET_SECRET from a Secret (KubernetesConfig.Secret),
//     the node certificate (`pocket cert issue --role node`) from a Secret
//     mounted read-only as the directory given to `--tls-dir`. Memory
//     requests and limits cover the DRAM tier and an overhead, or the tier
//     goes to hugepages-2Mi (HugePages). A spec with NVMe gets a Block
//     volume of NVMeStorageClass (a generic ephemeral volume: its
//     PersistentVolumeClaim lives and dies with the Pod) at
//     /dev/pocket-nvme. Pod anti-affinity on kubernetes.io/hostname keeps
//     two nodes off one host's NIC (required, preferred or none). An
//     ownerReference makes nodes go when the controller goes: by default
//     to the StatefulSet of the controller's Pod, so nodes and their data
//     outlive a restart of that Pod (the controller keeps its state) but
//     not the controller's removal; `--k8s-owner pod` ties them to the
//     Pod itself. The node runs as a non-root user with no service account
//     token.
//   - Start creates the Pod, watches it (re-reading it after each watch
//     starts, so no change is missed) until it is Ready (a TCP readiness
//     probe of port 7100) with a Pod IP, and returns the Pod's name as ID
//     and POD_IP:7100 as Addr. A Pod that fails, or is not ready when the
//     context ends, is deleted, and the error says what it was doing
//     (unschedulable, pulling its image, exited).
//   - Stop deletes the Pod with a short grace period (5 s); the drain
//     already ran. It stops any Pod with the node labels, so a restarted
//     controller can stop nodes its predecessor started. Nodes lists Pods
//     by those labels (app.kubernetes.io/name=pocket, component=node,
//     managed-by=pocket-controller). Close deletes the Pods this value
//     started.
//   - KubernetesFlags are the controller's --k8s-* flags; the manifests,
//     RBAC (pods: create, get, list, watch, delete) and a walk-through are
//     in deploy/kubernetes.
//   - Spot or preemptible hosts: `pocket spot` (package orchestrator/spot)
//     watches the provider's metadata for the termination notice and runs
//     `pocket node drain ADDR --deadline D` for the nodes of its host, so
//     the node's data moves before the host goes (deploy/kubernetes has
//     it as a DaemonSet).
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
