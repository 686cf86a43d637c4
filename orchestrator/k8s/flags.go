package k8s

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Environment variables Flags reads; the manifests in
// deploy/kubernetes set them from the downward API.
const (
	EnvPodName      = "POD_NAME"      // metadata.name of the controller's Pod
	EnvPodNamespace = "POD_NAMESPACE" // metadata.namespace of the controller's Pod
)

// serviceAccountNamespace is where every Pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Flags are the command-line flags of a controller that runs its
// nodes as Kubernetes Pods (`pocket controller --orchestrator kubernetes`).
// Bind them, parse, then call New (Build in tests).
type Flags struct {
	cfg          Config
	antiAffinity string
	labels       string
	owner        string
}

// Owner modes of --k8s-owner.
const (
	OwnerController = "controller" // the controller Pod's own controller (its StatefulSet)
	OwnerPod        = "pod"        // the controller's Pod
	OwnerNone       = "none"
)

// Bind registers the --k8s-* flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&f.cfg.Namespace, "k8s-namespace", "", "namespace of the node pods (default $"+EnvPodNamespace+", else the controller pod's own)")
	fs.StringVar(&f.cfg.Image, "k8s-image", "", "image of the node pods, its entrypoint the pocket binary (required with --orchestrator kubernetes)")
	fs.StringVar((*string)(&f.cfg.ImagePullPolicy), "k8s-image-pull-policy", "", "Always, IfNotPresent or Never (default: the cluster's)")
	fs.StringVar(&f.cfg.Secret, "k8s-secret", "pocket-secret", "Secret whose key \"secret\" holds the cluster secret, given to nodes as $POCKET_SECRET")
	fs.StringVar(&f.cfg.TLSSecret, "k8s-tls-secret", "pocket-node-tls", "Secret with ca.pem, node.pem and node-key.pem (pocket cert issue --role node), mounted as the nodes' --tls-dir")
	fs.StringVar(&f.cfg.Controller, "k8s-controller", "", "address node pods register with: the controller's Service, e.g. pocket-controller.pocket.svc:7000 (required)")
	fs.StringVar(&f.cfg.MemoryOverhead, "k8s-memory-overhead", "512Mi", "memory each node pod gets beyond its DRAM tier (Kubernetes quantity)")
	fs.BoolVar(&f.cfg.HugePages, "k8s-hugepages", false, "request the DRAM tier as hugepages-2Mi (the hosts must reserve them)")
	fs.StringVar(&f.cfg.CPU, "k8s-cpu", "", "CPU each node pod requests (Kubernetes quantity, e.g. 2; default none)")
	fs.StringVar(&f.cfg.NVMeStorageClass, "k8s-nvme-storage-class", "", "StorageClass of the Block volume a node with NVMe claims (a local-volume class)")
	fs.StringVar(&f.antiAffinity, "k8s-anti-affinity", string(AntiAffinityRequired), "keep node pods on separate hosts: required, preferred (share a host when there is no other) or none")
	fs.StringVar(&f.labels, "k8s-labels", "", "extra labels of node pods, KEY=VALUE,...")
	fs.StringVar(&f.cfg.ServiceAccount, "k8s-node-service-account", "", "service account of node pods (default: the namespace's default; nodes call no Kubernetes API)")
	fs.StringVar(&f.owner, "k8s-owner", OwnerController, "what owns the node pods, which Kubernetes deletes with it: controller (the StatefulSet of the controller's pod: nodes outlive a restart of the pod),\npod (the controller's pod) or none")
}

// SetInsecure follows a controller serving plain TCP (its --insecure): the
// nodes then get --insecure and no certificate Secret.
func (f *Flags) SetInsecure(insecure bool) {
	f.cfg.Insecure = insecure
	if insecure {
		f.cfg.TLSSecret = ""
	}
}

// Config returns the configuration the flags describe, completed from the
// environment: the namespace from $POD_NAMESPACE or the service account's
// namespace file. The owner is left to Build, which asks the API server.
func (f *Flags) Config() (Config, error) {
	cfg := f.cfg
	cfg.AntiAffinity = AntiAffinity(f.antiAffinity)
	labels, err := parseLabels(f.labels)
	if err != nil {
		return cfg, err
	}
	cfg.Labels = labels
	if cfg.Namespace == "" {
		cfg.Namespace = ownNamespace()
	}
	if err := missingFlags(&cfg); err != nil {
		return cfg, err
	}
	switch f.owner {
	case OwnerController, OwnerPod, OwnerNone:
	default:
		return cfg, fmt.Errorf("--k8s-owner %q: want controller, pod or none", f.owner)
	}
	return cfg, nil
}

// New returns the orchestrator the flags describe, reaching the API server
// with the Pod's service account (InClusterClient).
func (f *Flags) New(ctx context.Context) (*Orchestrator, error) {
	cs, err := InClusterClient()
	if err != nil {
		return nil, err
	}
	return f.Build(ctx, cs)
}

// missingFlags names, all at once, the flags cfg requires that are empty.
func missingFlags(cfg *Config) error {
	var missing []string
	for _, m := range []struct {
		empty      bool
		flag, what string
	}{
		{cfg.Controller == "", "--k8s-controller", "the address node pods reach the controller at, e.g. pocket-controller.pocket.svc:7000"},
		{cfg.Image == "", "--k8s-image", "the node pods' image, its entrypoint the pocket binary, e.g. pocket:dev"},
		{cfg.Secret == "", "--k8s-secret", "the Secret holding the cluster secret"},
		{cfg.TLSSecret == "" && !cfg.Insecure, "--k8s-tls-secret", "over TLS, the Secret holding the nodes' certificate (pocket cert issue --role node)"},
	} {
		if m.empty {
			missing = append(missing, m.flag+" ("+m.what+")")
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return errors.New("required flag missing: " + missing[0])
	}
	return errors.New("required flags missing: " + strings.Join(missing, ", "))
}

// Build returns the orchestrator the flags describe over client. Unless
// --k8s-owner is none, it reads the controller's own Pod ($POD_NAME) to
// name the owner of the node pods.
func (f *Flags) Build(ctx context.Context, client corev1client.PodsGetter) (*Orchestrator, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	if f.owner != OwnerNone {
		if cfg.Owner, err = ownerOf(ctx, client, cfg.Namespace, f.owner); err != nil {
			return nil, err
		}
	}
	return New(client, cfg)
}

// ownerOf is the owner the node pods get: the controller's Pod ($POD_NAME
// in namespace) or, for OwnerController, the controller of that Pod.
func ownerOf(ctx context.Context, client corev1client.PodsGetter, namespace, mode string) (*metav1.OwnerReference, error) {
	name := os.Getenv(EnvPodName)
	if name == "" {
		return nil, fmt.Errorf("node pods are owned by the controller's pod or its StatefulSet: set $%s from the downward API (metadata.name), or give --k8s-owner none", EnvPodName)
	}
	pod, err := client.Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the controller's own pod %s in namespace %s: %w", name, namespace, err)
	}
	if mode == OwnerPod {
		return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}, nil
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, fmt.Errorf("the controller's pod %s has no controller (no StatefulSet): give --k8s-owner pod or none", name)
	}
	return &metav1.OwnerReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID}, nil
}

// FromEnv is the orchestrator of a controller running in a Pod,
// configured by the flags' defaults and the environment alone:
// $POCKET_K8S_IMAGE, $POCKET_K8S_CONTROLLER (required), $POD_NAMESPACE and
// $POD_NAME (the owner, the StatefulSet of the controller's Pod).
func FromEnv(ctx context.Context) (*Orchestrator, error) {
	var f Flags
	fs := flag.NewFlagSet("kubernetes", flag.ContinueOnError)
	f.Bind(fs)
	f.cfg.Image = os.Getenv("POCKET_K8S_IMAGE")
	f.cfg.Controller = os.Getenv("POCKET_K8S_CONTROLLER")
	return f.New(ctx)
}

func ownNamespace() string {
	if ns := os.Getenv(EnvPodNamespace); ns != "" {
		return ns
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// parseLabels parses KEY=VALUE,KEY=VALUE.
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--k8s-labels %q: want KEY=VALUE pairs separated by commas", s)
		}
		if err := checkLabel(k, v); err != nil {
			return nil, fmt.Errorf("--k8s-labels %q: %w", s, err)
		}
		out[k] = v
	}
	return out, nil
}
