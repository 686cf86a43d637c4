package k8s

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/pocketstore/pocket/orchestrator"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const testNS = "pocket-test"

func testConfig() Config {
	return Config{
		Namespace:  testNS,
		Image:      "pocket:test",
		Secret:     "cluster-secret",
		TLSSecret:  "node-tls",
		Controller: "pocket-controller.pocket-test.svc:7000",
		Owner: &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "pocket-controller",
			UID: "3f1c0a52-0000-4000-8000-000000000001"},
		Labels: map[string]string{"team": "analytics"},
	}
}

func newTestOrch(t *testing.T, cfg Config) (*Orchestrator, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset()
	k, err := New(cs.CoreV1(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k, cs
}

// kubelet stands in for the kubelet the fake clientset lacks: every node
// Pod it sees gets ip(n) as its Pod IP and turns Ready (or, with fail, ends
// in phase Failed), delay after it first saw the Pod. It stops with the
// test.
func kubelet(t *testing.T, cs *fake.Clientset, fail bool, delay ...time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		seen := map[string]time.Time{}
		done := map[string]bool{}
		for ctx.Err() == nil {
			list, err := cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range list.Items {
					p := &list.Items[i]
					if _, ok := seen[p.Name]; !ok {
						seen[p.Name] = time.Now()
					}
					if !done[p.Name] && (len(delay) == 0 || time.Since(seen[p.Name]) >= delay[0]) {
						done[p.Name] = true
						setStatus(ctx, cs, p, len(done), fail)
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

func setStatus(ctx context.Context, cs *fake.Clientset, p *corev1.Pod, n int, fail bool) {
	if fail {
		p.Status = corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "node", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}},
		}}}
	} else {
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.0.%d", n),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	}
	_, _ = cs.CoreV1().Pods(testNS).UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

func getPod(t *testing.T, cs *fake.Clientset, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func podNames(t *testing.T, cs *fake.Clientset) []string {
	t.Helper()
	list, err := cs.CoreV1().Pods(testNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func startOne(t *testing.T, k *Orchestrator, spec orchestrator.NodeSpec) orchestrator.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := k.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKubernetesStartReturnsReadyPod(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	kubelet(t, cs, false)
	n := startOne(t, k, orchestrator.NodeSpec{DRAM: "1GiB", Args: []string{"--log-format", "json"}})
	p := getPod(t, cs, n.ID)
	if !strings.HasPrefix(n.ID, "pocket-node-") || n.Addr != p.Status.PodIP+":7100" {
		t.Fatalf("node %+v, pod IP %q: want ID pocket-node-*, Addr POD_IP:7100", n, p.Status.PodIP)
	}
	checkNodeArgs(t, p.Spec.Containers[0].Args, "1GiB", "--tls-dir", "/etc/pocket/tls", "--log-format", "json")
	checkMeta(t, p)
	checkEnv(t, p.Spec.Containers[0].Env)
	checkTLSVolume(t, p)
	checkProbeAndSecurity(t, p)
	checkAntiAffinity(t, p.Spec.Affinity, true)
	checkResources(t, p.Spec.Containers[0].Resources, corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1536Mi")})
	if got := k.Nodes(); len(got) != 1 || got[0] != n {
		t.Fatalf("Nodes = %v, want [%v]", got, n)
	}
}

// checkNodeArgs checks the node's arguments: node, the flags the
// orchestrator owns in order, then tail.
func checkNodeArgs(t *testing.T, args []string, dram string, tail ...string) {
	t.Helper()
	want := append([]string{"node", "--listen", "0.0.0.0:7100", "--advertise", "$(POD_IP):7100",
		"--controller", "pocket-controller.pocket-test.svc:7000", "--dram", dram}, tail...)
	if !slices.Equal(args, want) {
		t.Fatalf("args\n %q\nwant\n %q", args, want)
	}
}

func checkMeta(t *testing.T, p *corev1.Pod) {
	t.Helper()
	for k, v := range map[string]string{LabelName: "pocket", LabelComponent: "node", LabelManagedBy: "pocket-controller", "team": "analytics"} {
		if p.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
		}
	}
	refs := p.OwnerReferences
	if len(refs) != 1 || refs[0].Kind != "StatefulSet" || refs[0].APIVersion != "apps/v1" || refs[0].Name != "pocket-controller" ||
		refs[0].UID != "3f1c0a52-0000-4000-8000-000000000001" || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references %+v: want the controller's StatefulSet", refs)
	}
	if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Error("the node pod mounts a service account token it does not need")
	}
	if g := p.Spec.TerminationGracePeriodSeconds; g == nil || *g != 5 {
		t.Errorf("termination grace %v, want 5 s", g)
	}
}

func checkEnv(t *testing.T, env []corev1.EnvVar) {
	t.Helper()
	var podIP, secret bool
	for _, e := range env {
		switch {
		case e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			podIP = e.ValueFrom.FieldRef.FieldPath == "status.podIP"
		case e.Name == "POCKET_SECRET" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			secret = r.Name == "cluster-secret" && r.Key == "secret" && e.Value == ""
		}
	}
	if !podIP || !secret {
		t.Errorf("env %+v: want POD_IP from status.podIP and POCKET_SECRET from Secret cluster-secret key secret", env)
	}
}

func checkTLSVolume(t *testing.T, p *corev1.Pod) {
	t.Helper()
	vs := p.Spec.Volumes
	if len(vs) != 1 || vs[0].Secret == nil || vs[0].Secret.SecretName != "node-tls" || *vs[0].Secret.DefaultMode != 0o440 {
		t.Fatalf("volumes %+v: want the node-tls Secret", vs)
	}
	ms := p.Spec.Containers[0].VolumeMounts
	if len(ms) != 1 || ms[0].Name != vs[0].Name || ms[0].MountPath != "/etc/pocket/tls" || !ms[0].ReadOnly {
		t.Fatalf("mounts %+v: want the TLS Secret read-only at /etc/pocket/tls", ms)
	}
	if fs := p.Spec.SecurityContext.FSGroup; fs == nil || *fs != 65532 {
		t.Errorf("fsGroup %v: the non-root node could not read its key", fs)
	}
}

func checkProbeAndSecurity(t *testing.T, p *corev1.Pod) {
	t.Helper()
	c := p.Spec.Containers[0]
	if c.Image != "pocket:test" || c.ReadinessProbe == nil || c.ReadinessProbe.TCPSocket == nil || c.ReadinessProbe.TCPSocket.Port.IntValue() != 7100 {
		t.Errorf("image %q probe %+v: want pocket:test, a TCP readiness probe on 7100", c.Image, c.ReadinessProbe)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 7100 {
		t.Errorf("ports %+v: want 7100", c.Ports)
	}
	sc := p.Spec.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != 65532 {
		t.Errorf("pod security %+v: want non-root 65532", sc)
	}
}

func checkAntiAffinity(t *testing.T, a *corev1.Affinity, required bool) {
	t.Helper()
	var term corev1.PodAffinityTerm
	switch {
	case a == nil || a.PodAntiAffinity == nil:
		t.Fatal("no pod anti-affinity")
	case required && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 1:
		term = a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	case !required && len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 1:
		term = a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	default:
		t.Fatalf("anti-affinity %+v: want one %s term", a.PodAntiAffinity, map[bool]string{true: "required", false: "preferred"}[required])
	}
	if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector.MatchLabels[LabelComponent] != "node" {
		t.Errorf("anti-affinity term %+v: want node pods apart by hostname", term)
	}
}

func checkResources(t *testing.T, r corev1.ResourceRequirements, want corev1.ResourceList) {
	t.Helper()
	for _, l := range []corev1.ResourceList{r.Limits, r.Requests} {
		for name, q := range want {
			if got, ok := l[name]; !ok || got.Cmp(q) != 0 {
				t.Errorf("%s = %v, want %v (requests %v, limits %v)", name, l[name], q.String(), r.Requests, r.Limits)
			}
		}
	}
}

// Start learns of readiness from its watch: it reads the Pod once, after
// the watch started, not in a polling loop.
func TestKubernetesStartWatches(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	kubelet(t, cs, false, 300*time.Millisecond)
	startOne(t, k, orchestrator.NodeSpec{DRAM: "1GiB"})
	var gets, watches int
	for _, a := range cs.Actions() {
		if a.GetResource().Resource == "pods" && a.GetNamespace() == testNS {
			switch a.GetVerb() {
			case "get":
				gets++
			case "watch":
				watches++
			}
		}
	}
	if gets != 1 || watches != 1 {
		t.Fatalf("Start made %d get(s) and %d watch(es) of its pod, want 1 and 1", gets, watches)
	}
}

func TestKubernetesStartHugePagesAndNVMe(t *testing.T) {
	cfg := testConfig()
	cfg.HugePages, cfg.NVMeStorageClass, cfg.AntiAffinity, cfg.CPU = true, "local-nvme", AntiAffinityPreferred, "2"
	k, cs := newTestOrch(t, cfg)
	kubelet(t, cs, false)
	n := startOne(t, k, orchestrator.NodeSpec{DRAM: "1025MiB", NVMe: "/ignored/path:100GiB", Controller: "ignored:7000"})
	p := getPod(t, cs, n.ID)
	checkNodeArgs(t, p.Spec.Containers[0].Args, "1025MiB", "--nvme", "/dev/pocket-nvme:100GiB", "--tls-dir", "/etc/pocket/tls")
	r := p.Spec.Containers[0].Resources
	// 1025 MiB round up to 1026 MiB of 2 MiB pages; memory covers the overhead.
	checkResources(t, r, corev1.ResourceList{"hugepages-2Mi": resource.MustParse("1026Mi"), corev1.ResourceMemory: resource.MustParse("512Mi")})
	cpu := r.Requests[corev1.ResourceCPU]
	if _, limited := r.Limits[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("2")) != 0 || limited {
		t.Errorf("cpu requests %v limits %v: want a request of 2 and no limit", r.Requests, r.Limits)
	}
	checkAntiAffinity(t, p.Spec.Affinity, false)
	checkNVMeVolume(t, p)
}

func checkNVMeVolume(t *testing.T, p *corev1.Pod) {
	t.Helper()
	var eph *corev1.EphemeralVolumeSource
	var name string
	for _, v := range p.Spec.Volumes {
		if v.Ephemeral != nil {
			eph, name = v.Ephemeral, v.Name
		}
	}
	if eph == nil {
		t.Fatalf("volumes %+v: no claimed NVMe volume", p.Spec.Volumes)
	}
	s := eph.VolumeClaimTemplate.Spec
	size := s.Resources.Requests[corev1.ResourceStorage]
	if s.VolumeMode == nil || *s.VolumeMode != corev1.PersistentVolumeBlock || *s.StorageClassName != "local-nvme" ||
		size.Cmp(resource.MustParse("100Gi")) != 0 || !slices.Equal(s.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("claim %+v: want a 100Gi Block volume of class local-nvme", s)
	}
	ds := p.Spec.Containers[0].VolumeDevices
	if len(ds) != 1 || ds[0].Name != name || ds[0].DevicePath != "/dev/pocket-nvme" {
		t.Errorf("devices %+v: want the claim at /dev/pocket-nvme", ds)
	}
	if !slices.Contains(p.Spec.SecurityContext.SupplementalGroups, 6) {
		t.Errorf("groups %v: the node cannot open a disk-group device", p.Spec.SecurityContext.SupplementalGroups)
	}
}

func TestKubernetesStartInsecureWithoutOwner(t *testing.T) {
	cfg := testConfig()
	cfg.TLSSecret, cfg.Insecure, cfg.Owner, cfg.AntiAffinity = "", true, nil, AntiAffinityNone
	k, cs := newTestOrch(t, cfg)
	kubelet(t, cs, false)
	p := getPod(t, cs, startOne(t, k, orchestrator.NodeSpec{DRAM: "1GiB"}).ID)
	checkNodeArgs(t, p.Spec.Containers[0].Args, "1GiB", "--insecure")
	if len(p.Spec.Volumes) != 0 || len(p.OwnerReferences) != 0 || p.Spec.Affinity != nil {
		t.Errorf("volumes %v, owners %v, affinity %v: want none", p.Spec.Volumes, p.OwnerReferences, p.Spec.Affinity)
	}
}

// A Pod that never turns Ready is deleted when Start's context ends, and
// the error says so and what the Pod was doing.
func TestKubernetesStartDeadlineDeletesPod(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"timeout", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, cs := newTestOrch(t, testConfig())
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err := k.Start(ctx, orchestrator.NodeSpec{DRAM: "1GiB"})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "not ready") {
				t.Fatalf("Start = %v, want %v and why", err, tc.want)
			}
			if names := podNames(t, cs); len(names) != 0 {
				t.Fatalf("pods left %v", names)
			}
			if n := k.Nodes(); len(n) != 0 {
				t.Fatalf("Nodes = %v", n)
			}
		})
	}
}

func TestKubernetesStartFailedPod(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	kubelet(t, cs, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := k.Start(ctx, orchestrator.NodeSpec{DRAM: "1GiB"})
	if err == nil || !strings.Contains(err.Error(), "stopped before it was ready") || !strings.Contains(err.Error(), "exited 1") {
		t.Fatalf("Start = %v, want the pod's failure", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Start waited for its deadline instead of seeing the failure")
	}
	if names := podNames(t, cs); len(names) != 0 {
		t.Fatalf("pods left %v", names)
	}
}

func TestKubernetesStop(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	kubelet(t, cs, false)
	ctx := context.Background()
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}}
	if _, err := cs.CoreV1().Pods(testNS).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pocket-node-none", "web"} {
		if err := k.Stop(ctx, id); !errors.Is(err, orchestrator.ErrUnknownNode) {
			t.Errorf("Stop(%s) = %v, want orchestrator.ErrUnknownNode", id, err)
		}
	}
	n := startOne(t, k, orchestrator.NodeSpec{DRAM: "1GiB"})
	cs.ClearActions()
	if err := k.Stop(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if names := podNames(t, cs); !slices.Equal(names, []string{"web"}) {
		t.Fatalf("pods after Stop %v, want [web]", names)
	}
	checkDeleteGrace(t, cs.Actions(), n.ID, 5)
	if err := k.Stop(ctx, n.ID); !errors.Is(err, orchestrator.ErrUnknownNode) {
		t.Errorf("second Stop = %v, want orchestrator.ErrUnknownNode", err)
	}
}

func checkDeleteGrace(t *testing.T, actions []k8stesting.Action, name string, grace int64) {
	t.Helper()
	for _, a := range actions {
		if d, ok := a.(k8stesting.DeleteAction); ok && d.GetName() == name {
			g := d.GetDeleteOptions().GracePeriodSeconds
			if g == nil || *g != grace {
				t.Errorf("delete of %s with grace %v, want %d s", name, g, grace)
			}
			return
		}
	}
	t.Errorf("no delete of %s in %v", name, actions)
}

// Nodes lists node Pods by label, including those an earlier controller
// started; Close deletes only this value's own.
func TestKubernetesNodesAndClose(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	kubelet(t, cs, false)
	ctx := context.Background()
	earlier := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pocket-node-old", Namespace: testNS, Labels: nodeLabels},
		Spec: corev1.PodSpec{NodeName: "host-b"}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS, Labels: map[string]string{LabelName: "pocket"}}}
	for _, p := range []*corev1.Pod{earlier, other} {
		if _, err := cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	started := startConcurrently(t, k, 4)
	waitReady(t, cs, "pocket-node-old")
	want := append(slices.Clone(started), orchestrator.Node{ID: "pocket-node-old", Addr: getPod(t, cs, "pocket-node-old").Status.PodIP + ":7100"})
	if got := sortedNodes(k.Nodes()); !slices.Equal(got, sortedNodes(want)) {
		t.Fatalf("Nodes = %v, want %v", got, sortedNodes(want))
	}
	onB, err := k.ListNodes(ctx, "host-b")
	if err != nil || len(onB) != 1 || onB[0].ID != "pocket-node-old" {
		t.Fatalf("ListNodes(host-b) = %v, %v: want pocket-node-old", onB, err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if names := podNames(t, cs); !slices.Equal(names, []string{"pocket-node-old", "web"}) {
		t.Fatalf("pods after Close %v, want the earlier controller's node and web", names)
	}
	if _, err := k.Start(ctx, orchestrator.NodeSpec{DRAM: "1GiB"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

func startConcurrently(t *testing.T, k *Orchestrator, n int) []orchestrator.Node {
	t.Helper()
	nodes := make([]orchestrator.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			nodes[i], errs[i] = k.Start(ctx, orchestrator.NodeSpec{DRAM: "64MiB"})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return nodes
}

func waitReady(t *testing.T, cs *fake.Clientset, name string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok, _ := readiness(getPod(t, cs, name)); ok {
			return
		}
	}
	t.Fatalf("pod %s never ready", name)
}

func sortedNodes(ns []orchestrator.Node) []orchestrator.Node {
	out := slices.Clone(ns)
	slices.SortFunc(out, func(a, b orchestrator.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func TestKubernetesConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Namespace = "" }, "Namespace is required"},
		{func(c *Config) { c.Image = "" }, "Image is required"},
		{func(c *Config) { c.Secret = "" }, "Secret is required"},
		{func(c *Config) { c.TLSSecret = "" }, "TLSSecret is required"},
		{func(c *Config) { c.Insecure = true }, "give one"},
		{func(c *Config) { c.Owner.UID = "" }, "want its API version, kind, name and UID"},
		{func(c *Config) { c.AntiAffinity = "sometimes" }, `anti-affinity "sometimes"`},
		{func(c *Config) { c.Labels = map[string]string{LabelComponent: "x"} }, "orchestrator's own"},
		{func(c *Config) { c.MemoryOverhead = "lots" }, `memory overhead "lots"`},
		// Taken until the API server refused a pod (a hostile trial); a
		// negative overhead left a pod less memory than its DRAM tier.
		{func(c *Config) { c.MemoryOverhead = "-10Gi" }, `memory overhead "-10Gi": want a quantity not below 0`},
		{func(c *Config) { c.CPU = "-2" }, `CPU "-2": want a quantity not below 0`},
		{func(c *Config) { c.Namespace = "Bad_NS" }, `namespace "Bad_NS": a lowercase RFC 1123 label`},
		// Taken until the API server refused the first node Pod (a known limit).
		{func(c *Config) { c.Labels = map[string]string{"team name": "x"} }, `label key "team name": name part must consist of alphanumeric`},
		{func(c *Config) { c.Labels = map[string]string{"a/b/c": "x"} }, `label key "a/b/c"`},
		{func(c *Config) { c.Labels = map[string]string{"team": "has space"} }, `label team value "has space"`},
		{func(c *Config) { c.Labels = map[string]string{"team": strings.Repeat("x", 64)} }, "must be no more than 63 bytes"},
	} {
		cfg := testConfig()
		tc.change(&cfg)
		if _, err := New(fake.NewClientset().CoreV1(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New = %v, want an error with %q", err, tc.want)
		}
	}
}

func TestKubernetesSpecErrors(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	for _, tc := range []struct {
		spec orchestrator.NodeSpec
		want string
	}{
		{orchestrator.NodeSpec{DRAM: "1GiB", Args: []string{"--tls-dir=/x"}}, "--tls-dir, which the orchestrator sets"},
		{orchestrator.NodeSpec{DRAM: "1GiB", Args: []string{"-advertise", "a:1"}}, "--advertise, which the orchestrator sets"},
		{orchestrator.NodeSpec{DRAM: "1GiB", NVMe: "/dev/x:10GiB"}, "no NVMe storage class"},
		{orchestrator.NodeSpec{DRAM: "1GiB", NVMe: "10GiB"}, "want PATH:SIZE"},
		{orchestrator.NodeSpec{DRAM: "lots"}, `size "lots"`},
	} {
		if _, err := k.Start(context.Background(), tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error with %q", tc.spec, err, tc.want)
		}
	}
	if names := podNames(t, cs); len(names) != 0 {
		t.Fatalf("a refused spec left pods %v", names)
	}
}

func TestKubernetesFlags(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pocket-controller-0", Namespace: "pocket", UID: "pod-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "pocket-controller", UID: "sts-uid", Controller: ptr(true)}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "by-hand", Namespace: "pocket", UID: "hand-uid"}})
	build := func(args ...string) (*Orchestrator, error) {
		var f Flags
		fs := flag.NewFlagSet("controller", flag.ContinueOnError)
		f.Bind(fs)
		if err := fs.Parse(append([]string{"--k8s-image", "pocket:dev", "--k8s-controller", "pocket-controller.pocket.svc:7000"}, args...)); err != nil {
			t.Fatal(err)
		}
		return f.Build(ctx, cs.CoreV1())
	}
	t.Setenv(EnvPodNamespace, "pocket")
	t.Setenv(EnvPodName, "pocket-controller-0")
	k, err := build("--k8s-anti-affinity", "preferred", "--k8s-labels", "a=1,b=2", "--k8s-hugepages")
	if err != nil {
		t.Fatal(err)
	}
	cfg := k.cfg
	if cfg.Namespace != "pocket" || cfg.Secret != "pocket-secret" || cfg.TLSSecret != "pocket-node-tls" ||
		cfg.AntiAffinity != AntiAffinityPreferred || !cfg.HugePages || cfg.Labels["a"] != "1" || cfg.Labels["b"] != "2" {
		t.Fatalf("config %+v", cfg)
	}
	if o := cfg.Owner; o == nil || o.Kind != "StatefulSet" || o.Name != "pocket-controller" || o.UID != "sts-uid" {
		t.Fatalf("owner %+v: want the controller pod's StatefulSet", o)
	}
	if k, err := build("--k8s-owner", "pod"); err != nil || k.cfg.Owner.Kind != "Pod" || k.cfg.Owner.UID != "pod-uid" {
		t.Fatalf("--k8s-owner pod: %v: want the controller's pod", err)
	}
	for _, tc := range []struct {
		pod  string
		args []string
		want string
	}{
		{"by-hand", nil, "has no controller"},
		{"", nil, "--k8s-owner none"},
		{"gone", nil, "pods \"gone\" not found"},
		{"pocket-controller-0", []string{"--k8s-owner", "mine"}, `--k8s-owner "mine"`},
		{"pocket-controller-0", []string{"--k8s-labels", "a"}, "KEY=VALUE"},
		{"pocket-controller-0", []string{"--k8s-controller", ""}, "required flag missing: --k8s-controller ("},
	} {
		t.Setenv(EnvPodName, tc.pod)
		if _, err := build(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pod %q %v: %v, want an error with %q", tc.pod, tc.args, err, tc.want)
		}
	}
	t.Setenv(EnvPodName, "")
	if k, err := build("--k8s-owner", "none"); err != nil || k.cfg.Owner != nil {
		t.Errorf("--k8s-owner none: %v", err)
	}
	var f Flags
	f.Bind(flag.NewFlagSet("controller", flag.ContinueOnError))
	f.cfg.Image, f.cfg.Controller, f.owner = "pocket:dev", "c:7000", OwnerNone
	f.SetInsecure(true)
	if k, err := f.Build(ctx, cs.CoreV1()); err != nil || !k.cfg.Insecure || k.cfg.TLSSecret != "" {
		t.Errorf("SetInsecure(true): %v", err)
	}
}

// TestKubernetesRetiredNodeStaysStopped: a node pod is restarted only when
// it fails (a node drained and retired by its controller exits 0 and
// must not come back as a new, empty node a minute later, which it did
// under RestartPolicyAlways), and a pod that has finished is no node.
func TestKubernetesRetiredNodeStaysStopped(t *testing.T) {
	k, cs := newTestOrch(t, testConfig())
	kubelet(t, cs, false)
	ctx := context.Background()
	n := startOne(t, k, orchestrator.NodeSpec{DRAM: "1GiB"})
	p := getPod(t, cs, n.ID)
	if p.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Fatalf("restart policy %q, want %q", p.Spec.RestartPolicy, corev1.RestartPolicyOnFailure)
	}
	p.Status.Phase = corev1.PodSucceeded
	if _, err := cs.CoreV1().Pods(testNS).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := k.Nodes(); len(got) != 0 {
		t.Fatalf("Nodes = %v after the node's pod finished, want none", got)
	}
}
