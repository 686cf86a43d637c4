package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// TestManifestControllerArgs: the args of the controller's StatefulSet in
// deploy/kubernetes parse with pocket controller's own flags and pass its
// checks (every flag exists, --orchestrator kubernetes with the
// autoscaler's flags is a valid combination).
func TestManifestControllerArgs(t *testing.T) {
	data, err := os.ReadFile("../../deploy/kubernetes/20-controller.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var sts appsv1.StatefulSet
		err := dec.Decode(&sts)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if sts.Kind == "StatefulSet" && sts.Name == "pocket-controller" {
			args = sts.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) < 2 || args[0] != "controller" {
		t.Fatalf("controller StatefulSet args %q: want controller FLAGS...", args)
	}
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f, serve, _ := bindController(fs)
	if err := fs.Parse(args[1:]); err != nil {
		t.Fatalf("manifest args %q: %v", args[1:], err)
	}
	f.orch.limits.visited(fs, "node-")
	if err := f.check(serve); err != nil {
		t.Fatalf("manifest args %q: %v", args[1:], err)
	}
	if f.orch.kind != "kubernetes" || f.orch.up.scale.MinNodes < 1 || f.orch.dram == "" {
		t.Fatalf("manifest args %q: orchestrator %q, min nodes %d, node DRAM %q", args[1:], f.orch.kind, f.orch.up.scale.MinNodes, f.orch.dram)
	}
}
