package orchestrator

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Environment variables KubernetesFlags reads; the manifests in
// deploy/kubernetes set them from the downward API.
const (
	EnvPodName      = "POD_NAME"      // metadata.name of the controller's Pod
	EnvPodUID       = "POD_UID"       // metadata.uid of the controller's Pod
	EnvPodNamespace = "POD_NAMESPACE" // metadata.namespace of the controller's Pod
)

// serviceAccountNamespace is where every Pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// KubernetesFlags are the command-line flags of a controller that runs its
// nodes as Kubernetes Pods (`pocket controller --orchestrator kubernetes`).
// Bind them, parse, then call New.
type KubernetesFlags struct {
	cfg          KubernetesConfig
	antiAffinity string
	labels       string
	noOwner      bool
}

// Bind registers the --k8s-* flags on fs.
func (f *KubernetesFlags) Bind(fs *flag.FlagSet) {
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
	fs.BoolVar(&f.noOwner, "k8s-no-owner", false, "do not make node pods owned by the controller pod (by default deleting that pod deletes its nodes)")
}

// Config returns the configuration the flags describe, completed from the
// environment: the namespace from $POD_NAMESPACE or the service account's
// namespace file, and the owner from $POD_NAME and $POD_UID.
func (f *KubernetesFlags) Config() (KubernetesConfig, error) {
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
	if cfg.Controller == "" {
		return cfg, errors.New("--k8s-controller is required: the address node pods reach the controller at, e.g. pocket-controller.pocket.svc:7000")
	}
	if !f.noOwner {
		cfg.OwnerName, cfg.OwnerUID = os.Getenv(EnvPodName), os.Getenv(EnvPodUID)
		if cfg.OwnerName == "" || cfg.OwnerUID == "" {
			return cfg, fmt.Errorf("node pods are owned by the controller pod: set $%s and $%s from the downward API (metadata.name, metadata.uid), or give --k8s-no-owner", EnvPodName, EnvPodUID)
		}
	}
	return cfg, nil
}

// New returns the orchestrator the flags describe, reaching the API server
// with the Pod's service account (NewKubernetesInCluster).
func (f *KubernetesFlags) New() (*Kubernetes, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	return NewKubernetesInCluster(cfg)
}

// KubernetesFromEnv is the orchestrator of a controller running in a Pod,
// configured by the flags' defaults and the environment alone:
// $POCKET_K8S_IMAGE, $POCKET_K8S_CONTROLLER (required) and the variables of
// KubernetesFlags.Config.
func KubernetesFromEnv() (*Kubernetes, error) {
	var f KubernetesFlags
	fs := flag.NewFlagSet("kubernetes", flag.ContinueOnError)
	f.Bind(fs)
	f.cfg.Image = os.Getenv("POCKET_K8S_IMAGE")
	f.cfg.Controller = os.Getenv("POCKET_K8S_CONTROLLER")
	return f.New()
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
		out[k] = v
	}
	return out, nil
}
