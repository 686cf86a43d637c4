package nvme

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// lockBacking locks the file behind a loop device (flock LOCK_EX|LOCK_NB,
// on a descriptor of its own, returned for the Device to hold until it is
// closed; -1 when rdev is no loop device or its file cannot be opened, as
// when it was deleted). O_EXCL on a block device and flock on a file do not
// see each other, and two loop devices over one file are two devices: a
// hostile re-check started one node on /dev/loop0 and another on the file
// behind it, and a control job read 96 of 100 values back with wrong
// bytes and no error. A regular file is flocked where it is opened
// (openDirect), so the loop device's node and the file's node now take the
// same lock, whichever starts first. The backing file is found in sysfs
// (/sys/dev/block/MAJOR:MINOR/loop/backing_file).
func lockBacking(path string, rdev uint64) (int, error) {
	sys := fmt.Sprintf("/sys/dev/block/%d:%d/loop/backing_file", unix.Major(rdev), unix.Minor(rdev))
	b, err := os.ReadFile(sys)
	if err != nil {
		return -1, nil // not a loop device, or no file behind it
	}
	file := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil // gone or unreachable from here: no other node can open it either
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return -1, inUse(path, fmt.Errorf("its backing file %s is held: %w", file, os.NewSyscallError("flock", err)))
		}
		return -1, fmt.Errorf("nvme: %s: backing file %s: %w", path, file, os.NewSyscallError("flock", err))
	}
	return fd, nil
}
