package nvme

import (
	"errors"

	"github.com/pocketstore/pocket/wire"
)

// Errors returned by this package. Callers match them with errors.Is; device
// errors from the kernel are returned wrapped in an *os.SyscallError, so
// errors.Is(err, syscall.EIO) and errors.Is(err, syscall.ENOSPC) work too.
var (
	// ErrNotSupported: a feature probe failed. The file system refuses
	// O_DIRECT, or the kernel has no (or a disabled) io_uring. Probes run
	// once and the answer is cached; tests skip on this error.
	ErrNotSupported = errors.New("nvme: not supported")
	// ErrClosed: the device or ring was closed (its owner is shutting
	// down). It carries wire.CodeClosed, so errors.Is matches it against
	// wire.ErrClosed and every other package's ErrClosed, and a node
	// answers it as "closed", not as an internal error. (wire is the
	// lowest layer and knows no keys or jobs: importing it keeps nvme
	// free of them.)
	ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "nvme device closed"}
	// ErrAlign: an offset, length or buffer address is not a multiple of
	// the device's direct-I/O alignment (see Device.Align, Device.MemAlign).
	ErrAlign = errors.New("nvme: misaligned direct I/O")
	// ErrRange: a transfer reaches past the end of the device.
	ErrRange = errors.New("nvme: transfer out of range")
	// ErrShortTransfer: the device transferred nothing although bytes
	// remained; partial transfers are retried and never surface.
	ErrShortTransfer = errors.New("nvme: short transfer")
	// ErrNoSpace: an allocator has no room for the request, or Open was
	// asked for a file larger than its file system's free space.
	ErrNoSpace = errors.New("nvme: no space")
	// ErrInUse: Open found the device or file held by another opener
	// (another node on the same path), or, for a block device, mounted.
	ErrInUse = errors.New("nvme: device or file in use")
	// ErrForeign: a buffer given back to a BufferSource was not one of
	// its own.
	ErrForeign = errors.New("nvme: foreign buffer")
)
