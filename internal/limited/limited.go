// Package limited reads input of bounded size: files an operator names on
// the command line (a prices table, a device profile, a secret) read no
// further than their limit, so a wrong path (/dev/zero, a disk image)
// answers an error at once instead of filling memory.
package limited

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrTooLarge is returned for input over its limit.
var ErrTooLarge = errors.New("over its size limit")

// ReadAll reads r to its end, at most max bytes: input longer than max is
// ErrTooLarge, after reading max+1 bytes of it.
func ReadAll(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("larger than %d bytes: %w", max, ErrTooLarge)
	}
	return b, nil
}

// ErrPipe is returned by ReadFile for a named pipe or a socket.
var ErrPipe = errors.New("a pipe or socket, not a file: reading it would wait for a writer")

// ReadFile is ReadAll of the file at path; its errors name the path. A
// named pipe or a socket at path is ErrPipe, at once: the file is opened
// without waiting (O_NONBLOCK) and looked at before it is read, so a path
// that names one (by mistake, or planted) cannot hang the caller. A device
// such as /dev/zero is read up to the bound.
func ReadFile(path string, max int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrPipe)
	}
	b, err := ReadAll(f, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
