package blkbpf

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// layout holds the byte offsets of the kernel struct fields the programs
// read, found in the running kernel's BTF.
type layout struct {
	rqCmdFlags   int32 // struct request, cmd_flags (u32: op in the low 8 bits)
	rqQueue      int32 // struct request, q (struct request_queue *)
	queueDisk    int32 // struct request_queue, disk (struct gendisk *)
	diskMajor    int32 // struct gendisk, major (int)
	diskMinorBeg int32 // struct gendisk, first_minor (int)
}

// kernelLayout reads the field offsets from /sys/kernel/btf/vmlinux (or
// wherever cilium/ebpf finds the kernel's BTF).
func kernelLayout() (layout, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return layout{}, fmt.Errorf("kernel BTF: %w", err)
	}
	return layoutFrom(spec)
}

// layoutFrom finds the offsets in spec; split out so tests can check the
// lookups against a spec they build.
func layoutFrom(spec *btf.Spec) (layout, error) {
	var l layout
	fields := []struct {
		strct, member string
		dst           *int32
	}{
		{"request", "cmd_flags", &l.rqCmdFlags},
		{"request", "q", &l.rqQueue},
		{"request_queue", "disk", &l.queueDisk},
		{"gendisk", "major", &l.diskMajor},
		{"gendisk", "first_minor", &l.diskMinorBeg},
	}
	for _, f := range fields {
		off, err := memberOffset(spec, f.strct, f.member)
		if err != nil {
			return layout{}, err
		}
		*f.dst = off
	}
	return l, nil
}

// memberOffset returns the byte offset of a top-level, byte-aligned member.
func memberOffset(spec *btf.Spec, strct, member string) (int32, error) {
	var s *btf.Struct
	if err := spec.TypeByName(strct, &s); err != nil {
		return 0, fmt.Errorf("BTF struct %s: %w", strct, err)
	}
	for _, m := range s.Members {
		if m.Name != member {
			continue
		}
		if m.BitfieldSize != 0 || m.Offset%8 != 0 {
			return 0, fmt.Errorf("BTF %s.%s is a bitfield", strct, member)
		}
		return int32(m.Offset / 8), nil
	}
	return 0, fmt.Errorf("BTF struct %s has no member %s", strct, member)
}
