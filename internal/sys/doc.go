// Package sys is the project's small syscall layer for memory: it maps the
// anonymous regions that hold stored data (mmap, munmap, madvise) and probes
// whether the kernel can back them with 2 MiB pages.
//
// Besides netio and nvme it is the only package that imports
// golang.org/x/sys/unix, so every raw system call of the data plane's memory
// handling is written, named and tested in one place. Each failing call comes
// back as an *os.SyscallError naming the call ("mmap", "munmap", "madvise").
//
// Feature probes run once per process (sync.Once) and return an error that
// wraps ErrNotSupported when the feature is missing, so callers and tests can
// ask errors.Is(err, sys.ErrNotSupported) and fall back or skip.
package sys
