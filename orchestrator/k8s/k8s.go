package k8s

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// The labels every node Pod carries. Nodes lists Pods by all three, so
// Pods of another application in the namespace are never taken for nodes.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// nodeLabels are the values of the labels above on a node Pod.
var nodeLabels = map[string]string{
	LabelName:      "pocket",
	LabelComponent: "node",
	LabelManagedBy: "pocket-controller",
}

// PodVerbs are the verbs on pods the orchestrator uses, all it needs of
// the API (the Role in deploy/kubernetes grants exactly these; a test
// checks): create (Start), get and watch (Start's wait, Stop, the
// controller's own pod for --k8s-owner), list (Nodes) and delete (Stop,
// Close, a Start that failed).
var PodVerbs = []string{"create", "get", "list", "watch", "delete"}

// DataPort is the port a node Pod serves the data plane on; a node's
// address is its Pod IP and this port.
const DataPort = 7100

// AntiAffinity says how strictly node Pods keep off each other's hosts.
type AntiAffinity string

// AntiAffinity values.
const (
	// AntiAffinityRequired schedules at most one node per host
	// (kubernetes.io/hostname); a Start beyond the hosts stays Pending
	// until its context ends.
	AntiAffinityRequired AntiAffinity = "required"
	// AntiAffinityPreferred spreads nodes over hosts where it can and
	// shares hosts where it must (a one-host cluster such as kind).
	AntiAffinityPreferred AntiAffinity = "preferred"
	// AntiAffinityNone lets the scheduler place nodes as it likes.
	AntiAffinityNone AntiAffinity = "none"
)

// Config configures an Orchestrator. Namespace and Image are
// required, and TLSSecret unless Insecure; other zero fields take the
// defaults their comments name.
type Config struct {
	Namespace string // namespace of the node Pods (and of the Secrets)
	Image     string // image whose entrypoint is the pocket binary
	// ImagePullPolicy of the node container ("": the cluster's default).
	ImagePullPolicy corev1.PullPolicy
	// Labels are added to every node Pod; they may not redefine the
	// app.kubernetes.io labels the orchestrator lists nodes by.
	Labels map[string]string
	// Secret names the Secret whose key SecretKey (default "secret") holds
	// the cluster secret; the node gets it as $POCKET_SECRET. Required.
	Secret    string
	SecretKey string
	// TLSSecret names the Secret holding ca.pem, node.pem and node-key.pem
	// (`pocket cert issue --role node --out DIR`), mounted read-only at
	// TLSDir (default /etc/pocket/tls) and given to --tls-dir.
	TLSSecret string
	TLSDir    string
	// Insecure runs the nodes with --insecure (plain TCP to the
	// controller) and mounts no certificate: for tests only.
	Insecure bool
	// Controller, when set, is the address nodes register with, in place
	// of orchestrator.NodeSpec.Controller (a controller's listen address, such as
	// 0.0.0.0:7000, is no address for another Pod): the controller's
	// Service, e.g. pocket-controller.pocket.svc:7000.
	Controller string
	// Owner, when set, becomes every node Pod's controlling
	// ownerReference, so Kubernetes deletes the nodes when the owner is
	// deleted: the controller's Pod, or that Pod's StatefulSet, whose
	// nodes then outlive a restart of the Pod (Flags'
	// --k8s-owner). Nil: nodes outlive the controller, and a new
	// controller finds them with Nodes.
	Owner *metav1.OwnerReference
	// ServiceAccount of the node Pods ("": the namespace's default). Nodes
	// call no Kubernetes API; the token is not mounted.
	ServiceAccount string
	// MemoryOverhead is memory beyond the DRAM tier (Go heap, connection
	// buffers, NVMe staging), as a Kubernetes quantity; default "512Mi".
	MemoryOverhead string
	// HugePages requests the DRAM tier as hugepages-2Mi (rounded up to
	// 2 MiB), so its arena is backed by reserved huge pages; memory then
	// covers the overhead alone.
	HugePages bool
	// CPU requested per node, a Kubernetes quantity ("": none).
	CPU string
	// NVMeStorageClass is the StorageClass of the per-node Block volume
	// claimed when a orchestrator.NodeSpec asks for NVMe (a local-volume class; its
	// volumes are raw devices on the node's host). Required for NVMe.
	NVMeStorageClass string
	// AntiAffinity between node Pods (default AntiAffinityRequired).
	AntiAffinity AntiAffinity
	// NodeSelector restricts node Pods to matching hosts; Tolerations let
	// them onto tainted ones (spot pools often are).
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	// StopGrace is the deletion grace period of Stop and Close (default
	// 5 s): the controller has drained the node already.
	StopGrace time.Duration
	// RunAsUser is the UID (and group and fsGroup) node containers run as
	// (default 65532, the image's user).
	RunAsUser int64
}

// Orchestrator is an orchestrator.Orchestrator that runs each node as one Pod in a
// namespace (see the package doc). It is safe for concurrent use.
type Orchestrator struct {
	cfg    Config
	client corev1client.PodsGetter

	mu      sync.Mutex
	started map[string]orchestrator.Node // by Pod name: the Pods this value started
	closed  bool
}

var _ orchestrator.Orchestrator = (*Orchestrator)(nil)

// ErrClosed: Start was called after Close, or its node became ready after
// Close (the node is deleted). It carries wire.CodeClosed, the one
// definition of "closed": errors.Is matches it against wire.ErrClosed and
// every other package's ErrClosed.
var ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "kubernetes orchestrator closed"}

// NewInCluster returns a Kubernetes orchestrator that reaches
// the API server with the Pod's service account (InClusterClient): the
// controller runs in the cluster. The service account needs pods create,
// get, list, watch and delete in cfg.Namespace.
func NewInCluster(cfg Config) (*Orchestrator, error) {
	cs, err := InClusterClient()
	if err != nil {
		return nil, err
	}
	return New(cs, cfg)
}

// InClusterClient is a client of the core API group of the cluster this
// process runs in, with its Pod's service account (rest.InClusterConfig);
// outside a Pod it returns an error saying so. Only the core group: the
// full clientset would link every API group's client into the binary.
func InClusterClient() (corev1client.CoreV1Interface, error) {
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("orchestrator: kubernetes API from inside the cluster: %w", err)
	}
	cs, err := corev1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: kubernetes client: %w", err)
	}
	return cs, nil
}

// New returns a Kubernetes orchestrator over client: a
// clientset's CoreV1() (kubernetes.Interface; the fake clientset's in
// tests). It checks cfg and returns an error naming the
// first field that is missing or malformed.
func New(client corev1client.PodsGetter, cfg Config) (*Orchestrator, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return &Orchestrator{cfg: cfg, client: client, started: map[string]orchestrator.Node{}}, nil
}

func (c *Config) withDefaults() error {
	if err := c.checkRequired(); err != nil {
		return err
	}
	if c.SecretKey == "" {
		c.SecretKey = "secret"
	}
	if c.TLSDir == "" {
		c.TLSDir = "/etc/pocket/tls"
	}
	if c.MemoryOverhead == "" {
		c.MemoryOverhead = "512Mi"
	}
	if c.AntiAffinity == "" {
		c.AntiAffinity = AntiAffinityRequired
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 5 * time.Second
	}
	if c.RunAsUser == 0 {
		c.RunAsUser = 65532
	}
	return c.checkValues()
}

func (c *Config) checkRequired() error {
	switch {
	case c.Namespace == "":
		return errors.New("orchestrator: kubernetes: Namespace is required")
	case c.Image == "":
		return errors.New("orchestrator: kubernetes: Image is required (the pocket image, e.g. pocket:dev)")
	case c.Secret == "":
		return errors.New("orchestrator: kubernetes: Secret is required (the Secret holding the cluster secret)")
	case c.TLSSecret == "" && !c.Insecure:
		return errors.New("orchestrator: kubernetes: TLSSecret is required (the Secret holding the node certificate), or Insecure")
	case c.TLSSecret != "" && c.Insecure:
		return errors.New("orchestrator: kubernetes: TLSSecret and Insecure: give one")
	case c.Owner != nil && (c.Owner.APIVersion == "" || c.Owner.Kind == "" || c.Owner.Name == "" || c.Owner.UID == ""):
		return fmt.Errorf("orchestrator: kubernetes: owner %+v: want its API version, kind, name and UID", *c.Owner)
	}
	return nil
}

func (c *Config) checkValues() error {
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return fmt.Errorf("orchestrator: kubernetes: namespace %q: %s", c.Namespace, strings.Join(errs, "; "))
	}
	switch c.AntiAffinity {
	case AntiAffinityRequired, AntiAffinityPreferred, AntiAffinityNone:
	default:
		return fmt.Errorf("orchestrator: kubernetes: anti-affinity %q: want required, preferred or none", c.AntiAffinity)
	}
	for k, v := range c.Labels {
		if _, ok := nodeLabels[k]; ok {
			return fmt.Errorf("orchestrator: kubernetes: label %s is the orchestrator's own", k)
		}
		if err := checkLabel(k, v); err != nil {
			return fmt.Errorf("orchestrator: kubernetes: %w", err)
		}
	}
	if _, err := quantity("memory overhead", c.MemoryOverhead); err != nil {
		return err
	}
	if c.CPU != "" {
		if _, err := quantity("CPU", c.CPU); err != nil {
			return err
		}
	}
	return nil
}

// checkLabel refuses a label the API server would refuse in a Pod: a key
// that is no qualified name ([prefix/]name), a value that is no label
// value (63 characters at most, alphanumeric at both ends). Before, such a
// label was taken until the first node Pod's creation failed.
func checkLabel(k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Errorf("label %s value %q: %s", k, v, strings.Join(errs, "; "))
	}
	return nil
}

// Start implements Orchestrator: it creates the node's Pod and waits until
// the Pod is Ready (its data port accepts connections) with a Pod IP. If
// ctx ends first, or the Pod fails or is deleted, the Pod is deleted and
// the error says what the Pod was waiting for.
func (k *Orchestrator) Start(ctx context.Context, spec orchestrator.NodeSpec) (orchestrator.Node, error) {
	if k.isClosed() {
		return orchestrator.Node{}, ErrClosed
	}
	pod, err := k.createPod(ctx, spec)
	if err != nil {
		return orchestrator.Node{}, err
	}
	ready, err := k.awaitReady(ctx, pod.Name)
	if err == nil {
		var n orchestrator.Node
		if n, err = nodeOf(ready); err == nil {
			return n, k.track(n)
		}
	}
	k.deleteQuietly(pod.Name)
	return orchestrator.Node{}, err
}

// createPod creates the node's Pod under a fresh name, trying another name
// if one is taken.
func (k *Orchestrator) createPod(ctx context.Context, spec orchestrator.NodeSpec) (*corev1.Pod, error) {
	for attempt := 0; ; attempt++ {
		pod, err := k.podFor(spec, "pocket-node-"+randomSuffix())
		if err != nil {
			return nil, err
		}
		created, err := k.client.Pods(k.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("orchestrator: create node pod in namespace %s: %w", k.cfg.Namespace, err)
		}
		return created, nil
	}
}

// track records a started node; a node that became ready after Close is
// deleted at once.
func (k *Orchestrator) track(n orchestrator.Node) error {
	k.mu.Lock()
	closed := k.closed
	if !closed {
		k.started[n.ID] = n
	}
	k.mu.Unlock()
	if closed {
		k.deleteQuietly(n.ID)
		return ErrClosed
	}
	return nil
}

func (k *Orchestrator) isClosed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closed
}

// nodeOf is a ready Pod's node: its name, and its Pod IP with the data
// port, the address the node advertises ($(POD_IP):7100).
func nodeOf(pod *corev1.Pod) (orchestrator.Node, error) {
	ip := net.ParseIP(pod.Status.PodIP)
	if ip == nil || ip.To4() == nil {
		// --advertise $(POD_IP):7100 is no address for an IPv6 Pod IP.
		return orchestrator.Node{}, fmt.Errorf("orchestrator: pod %s has IP %q: node pods need an IPv4 pod IP", pod.Name, pod.Status.PodIP)
	}
	return orchestrator.Node{ID: pod.Name, Addr: fmt.Sprintf("%s:%d", ip, DataPort)}, nil
}

// Stop implements Orchestrator: it deletes the node's Pod with
// StopGrace. The Pod need not have been started by this value (a
// restarted controller stops the nodes Nodes lists), but it must carry the
// node labels; any other id returns orchestrator.ErrUnknownNode.
func (k *Orchestrator) Stop(ctx context.Context, id string) error {
	pods := k.client.Pods(k.cfg.Namespace)
	pod, err := pods.Get(ctx, id, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		k.forget(id)
		return fmt.Errorf("%w: %s (no such pod in namespace %s)", orchestrator.ErrUnknownNode, id, k.cfg.Namespace)
	}
	if err != nil {
		return fmt.Errorf("orchestrator: get pod %s: %w", id, err)
	}
	if !isNodePod(pod) {
		return fmt.Errorf("%w: pod %s is not a pocket node", orchestrator.ErrUnknownNode, id)
	}
	err = k.delete(ctx, id, pod.UID)
	k.forget(id)
	return err
}

func (k *Orchestrator) forget(id string) {
	k.mu.Lock()
	delete(k.started, id)
	k.mu.Unlock()
}

// delete deletes a Pod with StopGrace; uid, when set, guards against
// deleting a newer Pod of the same name. A Pod already gone is no error.
func (k *Orchestrator) delete(ctx context.Context, name string, uid types.UID) error {
	grace := int64(k.cfg.StopGrace.Round(time.Second) / time.Second)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &grace}
	if uid != "" {
		opts.Preconditions = metav1.NewUIDPreconditions(string(uid))
	}
	err := k.client.Pods(k.cfg.Namespace).Delete(ctx, name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("orchestrator: delete pod %s: %w", name, err)
	}
	return nil
}

// deleteQuietly deletes a Pod Start gave up on, on its own short context:
// Start's may be done already.
func (k *Orchestrator) deleteQuietly(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = k.delete(ctx, name, "")
}

// Nodes implements Orchestrator: the node Pods in the namespace that have
// a Pod IP and are neither being deleted nor finished, whoever started them (listed by the
// node labels from the API server, so a restarted controller sees the
// nodes of its previous run). If the API server cannot be reached within
// 10 s, it returns the nodes this value started and knows to be running.
func (k *Orchestrator) Nodes() []orchestrator.Node {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := k.ListNodes(ctx, "")
	if err != nil {
		k.mu.Lock()
		defer k.mu.Unlock()
		return slicesOf(k.started)
	}
	return ns
}

// ListNodes lists the node Pods as Nodes does, and, when host is set,
// only those scheduled on that Kubernetes node (ListNodePods).
func (k *Orchestrator) ListNodes(ctx context.Context, host string) ([]orchestrator.Node, error) {
	return ListNodePods(ctx, k.client, k.cfg.Namespace, host)
}

// ListNodePods lists the node Pods in namespace that have a Pod IP and are
// neither being deleted nor finished (Succeeded or Failed), by the node
// labels; when host is set, only those
// scheduled on that Kubernetes node (spec.nodeName), which is how the spot
// termination handler finds the nodes of its own host.
func ListNodePods(ctx context.Context, client corev1client.PodsGetter, namespace, host string) ([]orchestrator.Node, error) {
	opts := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(nodeLabels).String()}
	if host != "" {
		opts.FieldSelector = "spec.nodeName=" + host
	}
	list, err := client.Pods(namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: list node pods in namespace %s: %w", namespace, err)
	}
	var out []orchestrator.Node
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || !isNodePod(p) || (host != "" && p.Spec.NodeName != host) || finished(p) {
			continue
		}
		if n, err := nodeOf(p); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// finished reports whether a node Pod has stopped for good (a node drained
// and retired by its controller exits 0, and is not restarted).
func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func isNodePod(p *corev1.Pod) bool {
	for k, v := range nodeLabels {
		if p.Labels[k] != v {
			return false
		}
	}
	return true
}

func slicesOf(m map[string]orchestrator.Node) []orchestrator.Node {
	out := make([]orchestrator.Node, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	return out
}

// Close implements Orchestrator: it deletes every Pod this value started
// (not those of an earlier controller) and makes later Starts fail with
// ErrClosed. It returns the first deletion error.
func (k *Orchestrator) Close() error {
	k.mu.Lock()
	k.closed = true
	started := maps.Clone(k.started)
	clear(k.started)
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for id := range started {
		if err := k.delete(ctx, id, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// randomSuffix is five characters of [a-z0-9], as Kubernetes's
// generateName uses (the fake clientset does not generate names).
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [5]byte
	_, _ = rand.Read(b[:])
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return s.String()
}
