//go:build !linux

package gguf

import (
	"fmt"
	"os"
)

// OpenInMemory reads the file at path into memory and parses it, rather
// than mapping it (see the Linux version, which also asks for huge
// pages).
func OpenInMemory(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return f, nil
}
