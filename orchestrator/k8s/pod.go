package k8s

import (
	"fmt"
	"github.com/pocketstore/pocket/orchestrator"
	"maps"
	"strconv"
	"strings"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NVMeDevicePath is where a node Pod's Block volume appears in its
// container; the node is given --nvme NVMeDevicePath:SIZE.
const NVMeDevicePath = "/dev/pocket-nvme"

// Names inside a node Pod.
const (
	nodeContainer = "node"
	tlsVolume     = "tls"
	nvmeVolume    = "nvme"
	hostnameKey   = "kubernetes.io/hostname"
	hugePages2Mi  = corev1.ResourceName("hugepages-2Mi")
	diskGroup     = 6 // the group owning block devices on Debian-like hosts
	defaultDRAM   = "1GiB"
)

// ownedFlags are the node flags the orchestrator sets itself; orchestrator.NodeSpec.Args
// may not repeat them.
var ownedFlags = []string{"listen", "advertise", "controller", "dram", "nvme", "tls-dir", "insecure", "secret-file"}

// podFor is the Pod of one node: the design in the package doc.
func (k *Orchestrator) podFor(spec orchestrator.NodeSpec, name string) (*corev1.Pod, error) {
	res, err := k.resources(spec)
	if err != nil {
		return nil, err
	}
	nvme, err := nvmeSize(spec.NVMe)
	if err != nil {
		return nil, err
	}
	if nvme != "" && k.cfg.NVMeStorageClass == "" {
		return nil, fmt.Errorf("orchestrator: kubernetes: node spec asks for NVMe (%s) but no NVMe storage class is configured", spec.NVMe)
	}
	args, err := k.nodeArgs(spec, nvme)
	if err != nil {
		return nil, err
	}
	c := k.container(args, res)
	pod := &corev1.Pod{
		ObjectMeta: k.podMeta(name),
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{c},
			// A node that ends by itself was drained and retired by its
			// controller (pocket node exits 0): restarted, it would come
			// back as a new, empty node a minute later. Any other end
			// (exit non-zero, a crash) restarts it.
			RestartPolicy:                 corev1.RestartPolicyOnFailure,
			TerminationGracePeriodSeconds: ptr(int64(k.cfg.StopGrace.Seconds())),
			ServiceAccountName:            k.cfg.ServiceAccount,
			AutomountServiceAccountToken:  ptr(false),
			NodeSelector:                  k.cfg.NodeSelector,
			Tolerations:                   k.cfg.Tolerations,
			Affinity:                      k.affinity(),
			SecurityContext:               k.podSecurity(nvme != ""),
		},
	}
	k.addTLS(pod)
	k.addNVMe(pod, nvme)
	return pod, nil
}

func (k *Orchestrator) podMeta(name string) metav1.ObjectMeta {
	l := maps.Clone(k.cfg.Labels)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, nodeLabels)
	m := metav1.ObjectMeta{Name: name, Namespace: k.cfg.Namespace, Labels: l}
	if o := k.cfg.Owner; o != nil {
		m.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID, Controller: ptr(true),
		}}
	}
	return m
}

// nodeArgs are the container's arguments: `node` with the flags the
// orchestrator owns, then spec.Args. A flag of ownedFlags in spec.Args is
// an error, not a silent override.
func (k *Orchestrator) nodeArgs(spec orchestrator.NodeSpec, nvmeSize string) ([]string, error) {
	for _, a := range spec.Args {
		if f := ownedFlag(a); f != "" {
			return nil, fmt.Errorf("orchestrator: kubernetes: orchestrator.NodeSpec.Args has --%s, which the orchestrator sets itself", f)
		}
	}
	ctl := k.cfg.Controller
	if ctl == "" {
		ctl = spec.Controller
	}
	if ctl == "" {
		return nil, fmt.Errorf("orchestrator: kubernetes: no controller address for the nodes (orchestrator.NodeSpec.Controller or Config.Controller)")
	}
	args := []string{"node",
		"--listen", "0.0.0.0:" + strconv.Itoa(DataPort),
		"--advertise", "$(POD_IP):" + strconv.Itoa(DataPort),
		"--controller", ctl,
		"--dram", dramOf(spec),
	}
	if nvmeSize != "" {
		args = append(args, "--nvme", NVMeDevicePath+":"+nvmeSize)
	}
	if k.cfg.Insecure {
		args = append(args, "--insecure")
	} else {
		args = append(args, "--tls-dir", k.cfg.TLSDir)
	}
	return append(args, spec.Args...), nil
}

// ownedFlag returns the name of the owned flag arg sets (-f, --f, --f=v),
// or "".
func ownedFlag(arg string) string {
	if !strings.HasPrefix(arg, "-") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range ownedFlags {
		if name == f {
			return f
		}
	}
	return ""
}

func dramOf(spec orchestrator.NodeSpec) string {
	if spec.DRAM == "" {
		return defaultDRAM
	}
	return spec.DRAM
}

// nvmeSize is the SIZE of an NVMe spec PATH:SIZE ("" for none). The PATH is
// the local orchestrator's; here the device is the Pod's Block volume.
func nvmeSize(nvme string) (string, error) {
	if nvme == "" {
		return "", nil
	}
	i := strings.LastIndexByte(nvme, ':')
	if i < 0 {
		return "", fmt.Errorf("orchestrator: NVMe %q: want PATH:SIZE", nvme)
	}
	size := nvme[i+1:]
	n, err := units.ParseSize(size)
	if err != nil {
		return "", fmt.Errorf("orchestrator: NVMe %q: %w", nvme, err)
	}
	if n <= 0 {
		return "", fmt.Errorf("orchestrator: NVMe %q: size must be positive", nvme)
	}
	return size, nil
}

func (k *Orchestrator) container(args []string, res corev1.ResourceRequirements) corev1.Container {
	return corev1.Container{
		Name:            nodeContainer,
		Image:           k.cfg.Image,
		ImagePullPolicy: k.cfg.ImagePullPolicy,
		Args:            args,
		Ports:           []corev1.ContainerPort{{Name: "data", ContainerPort: DataPort, Protocol: corev1.ProtocolTCP}},
		Env:             k.env(),
		Resources:       res,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(DataPort)}},
			PeriodSeconds:    1,
			TimeoutSeconds:   1,
			FailureThreshold: 3,
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

// env gives the node its Pod IP (for --advertise) and the cluster secret,
// which never goes on a command line.
func (k *Orchestrator) env() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: token.EnvSecret, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: k.cfg.Secret}, Key: k.cfg.SecretKey,
		}}},
	}
}

// resources: memory for the DRAM tier and the overhead, or hugepages-2Mi
// for the tier and memory for the overhead; requests equal limits, so a
// node's memory is reserved and the node is among the last evicted.
func (k *Orchestrator) resources(spec orchestrator.NodeSpec) (corev1.ResourceRequirements, error) {
	dram, err := units.ParseSize(dramOf(spec))
	if err != nil {
		return corev1.ResourceRequirements{}, fmt.Errorf("orchestrator: DRAM: %w", err)
	}
	mem, err := quantity("memory overhead", k.cfg.MemoryOverhead)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	l := corev1.ResourceList{}
	if k.cfg.HugePages && dram > 0 {
		const page = 2 << 20
		l[hugePages2Mi] = *resource.NewQuantity((dram+page-1)/page*page, resource.BinarySI)
	} else {
		mem.Add(*resource.NewQuantity(dram, resource.BinarySI))
	}
	l[corev1.ResourceMemory] = mem
	req := l.DeepCopy()
	if k.cfg.CPU != "" {
		cpu, err := quantity("CPU", k.cfg.CPU)
		if err != nil {
			return corev1.ResourceRequirements{}, err
		}
		req[corev1.ResourceCPU] = cpu
	}
	return corev1.ResourceRequirements{Requests: req, Limits: l}, nil
}

func quantity(what, s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return q, fmt.Errorf("orchestrator: kubernetes: %s %q: want a Kubernetes quantity such as 512Mi or 2: %w", what, s, err)
	}
	if q.Sign() < 0 {
		return q, fmt.Errorf("orchestrator: kubernetes: %s %q: want a quantity not below 0", what, s)
	}
	return q, nil
}

// affinity keeps node Pods off each other's hosts, by the node labels.
func (k *Orchestrator) affinity() *corev1.Affinity {
	term := corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{MatchLabels: maps.Clone(nodeLabels)},
		TopologyKey:   hostnameKey,
	}
	switch k.cfg.AntiAffinity {
	case AntiAffinityRequired:
		return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term},
		}}
	case AntiAffinityPreferred:
		return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}},
		}}
	}
	return nil
}

// podSecurity runs the node as RunAsUser, not root; the TLS Secret's
// files are readable by its group (fsGroup). A Block volume's device is
// owned by the host's disk group, which the node then joins.
func (k *Orchestrator) podSecurity(nvme bool) *corev1.PodSecurityContext {
	u := k.cfg.RunAsUser
	sc := &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: &u, RunAsGroup: &u, FSGroup: &u}
	if nvme {
		sc.SupplementalGroups = []int64{diskGroup}
	}
	return sc
}

// addTLS mounts the node certificate's Secret read-only at TLSDir.
func (k *Orchestrator) addTLS(pod *corev1.Pod) {
	if k.cfg.Insecure {
		return
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
		Name: tlsVolume,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: k.cfg.TLSSecret, DefaultMode: ptr(int32(0o440)),
		}},
	})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: tlsVolume, MountPath: k.cfg.TLSDir, ReadOnly: true})
}

// addNVMe claims a Block volume of size for the Pod (a generic ephemeral
// volume: its PersistentVolumeClaim is created with the Pod and deleted
// with it, as the node's data is) and exposes it at NVMeDevicePath.
func (k *Orchestrator) addNVMe(pod *corev1.Pod, size string) {
	if size == "" {
		return
	}
	n, _ := units.ParseSize(size) // checked by nvmeSize
	block := corev1.PersistentVolumeBlock
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
		Name: nvmeVolume,
		VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
			VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(nodeLabels)},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					VolumeMode:       &block,
					StorageClassName: ptr(k.cfg.NVMeStorageClass),
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: *resource.NewQuantity(n, resource.BinarySI),
					}},
				},
			},
		}},
	})
	c := &pod.Spec.Containers[0]
	c.VolumeDevices = append(c.VolumeDevices, corev1.VolumeDevice{Name: nvmeVolume, DevicePath: NVMeDevicePath})
}

func ptr[T any](v T) *T { return &v }
