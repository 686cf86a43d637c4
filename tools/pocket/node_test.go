package main

import (
	"testing"
	"time"
)

func TestOptDuration(t *testing.T) {
	d := optDuration(-1)
	if d.String() != "auto" {
		t.Fatalf("unset flag prints %q, want auto", d.String())
	}
	if err := d.Set("20us"); err != nil || time.Duration(d) != 20*time.Microsecond {
		t.Fatalf("Set(20us) = %v, value %v", err, time.Duration(d))
	}
	if err := d.Set("-1us"); err == nil {
		t.Fatal("a negative duration was accepted")
	}
	if err := d.Set("auto"); err != nil || d >= 0 {
		t.Fatalf("Set(auto) = %v, value %v", err, time.Duration(d))
	}
}

func TestDefaultBusyPoll(t *testing.T) {
	if defaultBusyPoll(false) <= 0 {
		t.Error("a DRAM-only node should spin by default")
	}
	if defaultBusyPoll(true) != 0 {
		t.Error("a node with an NVMe tier should not spin by default")
	}
}
