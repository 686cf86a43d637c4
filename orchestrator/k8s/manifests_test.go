package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// manifestDir holds the Kubernetes manifests, from this package.
const manifestDir = "../../deploy/kubernetes"

// manifests decodes every document of every YAML file under manifestDir
// with client-go's scheme, strictly: an unknown kind, an unknown or
// repeated field (a typo) fails the test. It returns the objects by
// "Kind/name".
func manifests(t *testing.T) map[string]runtime.Object {
	t.Helper()
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	objs := map[string]runtime.Object{}
	err := filepath.WalkDir(manifestDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		for i, doc := range yamlDocs(t, path) {
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", path, i+1, err)
				continue
			}
			key := gvk.Kind + "/" + obj.(interface{ GetName() string }).GetName()
			if _, dup := objs[key]; dup {
				t.Errorf("%s: %s defined twice", path, key)
			}
			objs[key] = obj
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatalf("no manifests under %s", manifestDir)
	}
	return objs
}

func yamlDocs(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func object[T runtime.Object](t *testing.T, objs map[string]runtime.Object, key string) T {
	t.Helper()
	o, ok := objs[key].(T)
	if !ok {
		t.Fatalf("no %s in the manifests (have %v)", key, slices.Sorted(maps.Keys(objs)))
	}
	return o
}

// TestManifestsDecode: every manifest is a valid Kubernetes object, in
// the pocket namespace.
func TestManifestsDecode(t *testing.T) {
	for key, o := range manifests(t) {
		ns := o.(interface{ GetNamespace() string }).GetNamespace()
		if strings.HasPrefix(key, "Namespace/") {
			continue
		}
		if ns != "pocket" {
			t.Errorf("%s in namespace %q, want pocket", key, ns)
		}
	}
}

// TestManifestsGrantWhatTheCodeUses: the controller's Role grants exactly
// the pod verbs the orchestrator uses, the spot handler's only list.
func TestManifestsGrantWhatTheCodeUses(t *testing.T) {
	objs := manifests(t)
	for role, verbs := range map[string][]string{"pocket-controller": PodVerbs, "pocket-spot": {"list"}} {
		r := object[*rbacv1.Role](t, objs, "Role/"+role)
		want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: verbs}}
		if len(r.Rules) != 1 || !slices.Equal(r.Rules[0].Verbs, verbs) || !slices.Equal(r.Rules[0].Resources, want[0].Resources) ||
			!slices.Equal(r.Rules[0].APIGroups, want[0].APIGroups) {
			t.Errorf("Role %s rules %+v, want %+v", role, r.Rules, want)
		}
		b := object[*rbacv1.RoleBinding](t, objs, "RoleBinding/"+role)
		sa := object[*corev1.ServiceAccount](t, objs, "ServiceAccount/"+role)
		if b.RoleRef.Name != role || len(b.Subjects) != 1 || b.Subjects[0].Name != sa.Name || b.Subjects[0].Namespace != sa.Namespace {
			t.Errorf("RoleBinding %s %+v: want Role %s to ServiceAccount %s", role, b, role, sa.Name)
		}
	}
	np := object[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy/pocket-nodes")
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, nodeLabels) {
		t.Errorf("NetworkPolicy selects %v, want the node labels %v", np.Spec.PodSelector.MatchLabels, nodeLabels)
	}
}

// TestManifestsControllerFlags: the controller's --k8s-* flags parse and
// make a valid orchestrator config whose Secrets are the templates', and
// its pod gives the environment the flags read.
func TestManifestsControllerFlags(t *testing.T) {
	objs := manifests(t)
	sts := object[*appsv1.StatefulSet](t, objs, "StatefulSet/pocket-controller")
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("controller replicas %v, want 1", sts.Spec.Replicas)
	}
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	var f Flags
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	f.Bind(fs)
	var k8sArgs []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--k8s-") {
			k8sArgs = append(k8sArgs, a)
		}
	}
	if err := fs.Parse(k8sArgs); err != nil {
		t.Fatalf("controller args %q: %v", k8sArgs, err)
	}
	t.Setenv(EnvPodNamespace, sts.Namespace)
	cfg, err := f.Config()
	if err == nil {
		err = cfg.withDefaults()
	}
	if err != nil {
		t.Fatalf("controller args %q: %v", k8sArgs, err)
	}
	object[*corev1.Secret](t, objs, "Secret/"+cfg.Secret)
	object[*corev1.Secret](t, objs, "Secret/"+cfg.TLSSecret)
	if !slices.Contains(c.Args, "--orchestrator=kubernetes") || !slices.Contains(c.Args, "--data-dir=/data") {
		t.Errorf("controller args %q: want --orchestrator=kubernetes --data-dir=/data", c.Args)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/data" || c.VolumeMounts[0].Name != sts.Spec.VolumeClaimTemplates[0].Name {
		t.Errorf("controller mounts %+v: want its claim at /data", c.VolumeMounts)
	}
	checkFieldEnv(t, c.Env, map[string]string{EnvPodName: "metadata.name", EnvPodNamespace: "metadata.namespace"})
	if pod.ServiceAccountName != "pocket-controller" {
		t.Errorf("controller service account %q", pod.ServiceAccountName)
	}
	svc := object[*corev1.Service](t, objs, "Service/pocket-controller")
	if !selects(svc.Spec.Selector, sts.Spec.Template.Labels) || svc.Spec.Ports[0].Port != 7000 {
		t.Errorf("Service %+v does not reach the controller on 7000", svc.Spec)
	}
	if !strings.HasPrefix(cfg.Controller, svc.Name+"."+svc.Namespace+".svc:") {
		t.Errorf("--k8s-controller %s is not the Service %s", cfg.Controller, svc.Name)
	}
}

func checkFieldEnv(t *testing.T, env []corev1.EnvVar, want map[string]string) {
	t.Helper()
	for name, path := range want {
		i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == name })
		if i < 0 || env[i].ValueFrom == nil || env[i].ValueFrom.FieldRef == nil || env[i].ValueFrom.FieldRef.FieldPath != path {
			t.Errorf("env %s: want it from %s", name, path)
		}
	}
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// TestManifestsSpotHandler: the DaemonSet runs `pocket spot` for its own
// host with the operator certificate's Secret.
func TestManifestsSpotHandler(t *testing.T) {
	objs := manifests(t)
	ds := object[*appsv1.DaemonSet](t, objs, "DaemonSet/pocket-spot")
	c := ds.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "spot" || !slices.Contains(c.Args, "--k8s-host=$(NODE_NAME)") ||
		!slices.ContainsFunc(c.Args, func(a string) bool { return a == "--provider=aws" || a == "--provider=gce" }) {
		t.Errorf("spot args %q: want spot --provider=aws|gce --k8s-host=$(NODE_NAME)", c.Args)
	}
	checkFieldEnv(t, c.Env, map[string]string{"NODE_NAME": "spec.nodeName", EnvPodNamespace: "metadata.namespace"})
	vs := ds.Spec.Template.Spec.Volumes
	if len(vs) != 1 || vs[0].Secret == nil || vs[0].Secret.DefaultMode == nil || *vs[0].Secret.DefaultMode != 0o440 {
		t.Fatalf("spot volumes %+v: want the operator certificate, mode 0440 (the group fsGroup reads it)", vs)
	}
	sec := object[*corev1.Secret](t, objs, "Secret/"+vs[0].Secret.SecretName)
	if _, ok := sec.StringData["operator.pem"]; !ok {
		t.Errorf("Secret %s has no operator.pem", sec.Name)
	}
	if ds.Spec.Template.Spec.ServiceAccountName != "pocket-spot" {
		t.Errorf("spot service account %q", ds.Spec.Template.Spec.ServiceAccountName)
	}
}
