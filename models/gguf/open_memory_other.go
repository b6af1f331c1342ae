//go:build !linux

package gguf

import (
	"errors"
	"fmt"
	"os"
)

// OpenInMemory reads the file at path into memory and parses it, rather
// than mapping it (see the Linux version, which also asks for huge
// pages).
func OpenInMemory(path string) (*File, error) { return readParse(path) }

// readParse reads the file at path with os.ReadFile and parses it: both
// Open and OpenInMemory where there is no mapping to prefer.
func readParse(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	f.owned = true
	return f, nil
}

// writable does nothing: a file read with os.ReadFile is writable memory
// throughout.
func (f *File) writable(bool) error { return nil }

// InMemoryHugePages reports whether OpenInMemory gets huge pages here:
// only on Linux.
func InMemoryHugePages() bool { return false }

// AvailableMemory returns the bytes the kernel can give a process
// without swapping; only Linux reports it.
func AvailableMemory() (int64, error) {
	return 0, errors.New("gguf: available memory is known on Linux only")
}

// Prefault brings a mapped file into memory on Linux (see there); it does
// nothing here.
func (f *File) Prefault() {}
