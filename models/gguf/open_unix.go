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
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close() // the mapping outlives the descriptor
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gguf: %s is not a regular file", path)
	}
	if size == 0 {
		// mmap refuses empty mappings; parse the empty input for the error
		_, err := Parse(nil)
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("gguf: %s is %d bytes, too large to map", path, size)
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%w (%s)", err, path), syscall.Munmap(data))
	}
	f.unmap = func() error { return syscall.Munmap(data) }
	return f, nil
}
