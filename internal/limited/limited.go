// Package limited reads input of bounded size: files an operator names on
// the command line (a prices table, a device profile, a secret) read no
// further than their limit, so a wrong path (a disk image) answers an
// error at once instead of filling memory, and only regular files are
// read, so a pipe, a terminal or /dev/zero cannot hang the reader.
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

// ErrNotRegular is returned by Open and ReadFile for a path that is not a
// regular file: a named pipe, a socket or a device (a pipe with no writer,
// or a terminal, would wait for input for ever; /dev/zero never ends).
var ErrNotRegular = errors.New("not a regular file")

// Open opens the regular file at path for reading. Anything else is
// ErrNotRegular, at once: the file is opened without waiting (O_NONBLOCK,
// so a named pipe with no writer does not block the open) and looked at
// before anything is read.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w: %s", path, ErrNotRegular, kindOf(st.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile is ReadAll of the regular file at path (Open); its errors name
// the path.
func ReadFile(path string, max int) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := ReadAll(f, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// kindOf names what a file that is not regular is.
func kindOf(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return "a " + m.Type().String() + " file"
}
