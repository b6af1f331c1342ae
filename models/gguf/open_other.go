//go:build !unix

package gguf

// Open reads the file at path into memory and parses it (this platform
// has no mmap path).
func Open(path string) (*File, error) { return readParse(path) }
