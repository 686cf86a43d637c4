// Package k8s is the Kubernetes orchestrator. Orchestrator creates one Pod
// per Start, not a Deployment or StatefulSet replica: scale-in chooses
// which node leaves (the emptiest), and a StatefulSet always removes the
// highest ordinal. It lives apart from package orchestrator so that the
// controller, which imports the interface, does not link client-go (its
// package initialization doubled the pocket binary, 37 to 70 MB).
//
//   - The Pod: the pocket image with `node --listen 0.0.0.0:7100
//     --advertise $(POD_IP):7100 --controller CTL --dram SIZE` and the
//     spec's flags (the flags the orchestrator sets may not appear in
//     spec.Args: an error, not an override). POD_IP comes from the
//     downward API, POCKET_SECRET from a Secret (Config.Secret),
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
//   - Flags are the controller's --k8s-* flags; the manifests,
//     RBAC (pods: create, get, list, watch, delete) and a walk-through are
//     in deploy/kubernetes.
//   - Spot or preemptible hosts: `pocket spot` (package orchestrator/spot)
//     watches the provider's metadata for the termination notice and runs
//     `pocket node drain ADDR --deadline D` for the nodes of its host, so
//     the node's data moves before the host goes (deploy/kubernetes has
//     it as a DaemonSet).
package k8s
