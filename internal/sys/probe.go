package sys

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// ErrNotSupported is wrapped by every probe that finds a feature missing on
// this kernel or machine.
var ErrNotSupported = errors.New("sys: not supported")

// HugePageSize is the size of the huge pages this package maps: 2 MiB, the
// x86-64 and arm64 (4 KiB granule) PMD size.
const HugePageSize = 2 << 20

var (
	hugeTLBOnce sync.Once
	hugeTLBErr  error
	thpOnce     sync.Once
	thpErr      error
)

// HugeTLBSupported reports whether 2 MiB pages are reserved in the kernel's
// hugetlb pool (HugePages_Total > 0 with Hugepagesize 2048 kB in
// /proc/meminfo). A nil answer does not promise that a given mapping will
// fit in the free pages; Map still falls back when the mmap fails. The answer
// is computed once per process.
func HugeTLBSupported() error {
	hugeTLBOnce.Do(func() { hugeTLBErr = probeHugeTLB("/proc/meminfo") })
	return hugeTLBErr
}

// THPSupported reports whether transparent huge pages can back a region
// that asks for them with MADV_HUGEPAGE (mode "always" or "madvise" in
// /sys/kernel/mm/transparent_hugepage/enabled). Computed once per process.
func THPSupported() error {
	thpOnce.Do(func() { thpErr = probeTHP("/sys/kernel/mm/transparent_hugepage/enabled") })
	return thpErr
}

func probeHugeTLB(meminfo string) error {
	data, err := os.ReadFile(meminfo)
	if err != nil {
		return fmt.Errorf("hugetlb pages: %w: %w", ErrNotSupported, err)
	}
	fields := parseMeminfo(data)
	if fields["Hugepagesize"] != HugePageSize/1024 {
		return fmt.Errorf("hugetlb pages: default huge page is %d kB, want %d kB: %w",
			fields["Hugepagesize"], HugePageSize/1024, ErrNotSupported)
	}
	if fields["HugePages_Total"] <= 0 {
		return fmt.Errorf("hugetlb pages: none reserved (vm.nr_hugepages is 0): %w", ErrNotSupported)
	}
	return nil
}

// parseMeminfo reads "Name:   value [kB]" lines into a map of the numbers.
func parseMeminfo(data []byte) map[string]int64 {
	out := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		num, _, _ := bytes.Cut(bytes.TrimSpace(rest), []byte(" "))
		if v, err := strconv.ParseInt(string(num), 10, 64); err == nil {
			out[string(name)] = v
		}
	}
	return out
}

func probeTHP(enabledFile string) error {
	data, err := os.ReadFile(enabledFile)
	if err != nil {
		return fmt.Errorf("transparent huge pages: %w: %w", ErrNotSupported, err)
	}
	if bytes.Contains(data, []byte("[always]")) || bytes.Contains(data, []byte("[madvise]")) {
		return nil
	}
	return fmt.Errorf("transparent huge pages: disabled (%s): %w", bytes.TrimSpace(data), ErrNotSupported)
}
