//go:build unix

package gguf

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Open maps the file at path read-only and parses it. The mapping lives
// until Close.
func Open(path string) (*File, error) {
	fd, size, err := openSized(path, "map")
	if err != nil {
		return nil, err
	}
	defer fd.Close() // the mapping outlives the descriptor
	data, err := syscall.Mmap(int(fd.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%w (%s)", err, path), syscall.Munmap(data))
	}
	f.unmap = func() error { return syscall.Munmap(data) }
	f.mapped = true
	return f, nil
}

// openSized opens the regular file at path and returns it with its size,
// which fits an int (verb says what the caller would fail to do with a
// larger one). An empty file gets Parse's error for empty input, since
// neither mmap nor an anonymous mapping takes a length of 0.
func openSized(path, verb string) (*os.File, int, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("gguf: %w", err)
	}
	st, err := fd.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("gguf: %w", err)
	case !st.Mode().IsRegular():
		err = fmt.Errorf("gguf: %s is not a regular file", path)
	case st.Size() == 0:
		_, err = Parse(nil)
		err = fmt.Errorf("%w (%s)", err, path)
	case int64(int(st.Size())) != st.Size():
		err = fmt.Errorf("gguf: %s is %d bytes, too large to %s", path, st.Size(), verb)
	}
	if err != nil {
		fd.Close()
		return nil, 0, err
	}
	return fd, int(st.Size()), nil
}
