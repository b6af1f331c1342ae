//go:build linux

package gguf

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// OpenInMemory reads the file at path into anonymous memory, rather than
// mapping it, and parses it: llama.cpp's --no-mmap. The memory is asked
// for in transparent huge pages (MADV_HUGEPAGE) and made read-only once
// filled, so the weights stay immutable as in a read-only mapping. A
// weight matrix then spans a few 2 MiB pages instead of thousands of
// 4 KiB page-cache pages: on the 2-core development machine decode of a
// 1B Q8_0 model, bound by memory bandwidth, went from 29–35 to 43–45 GB/s
// of weights (BenchmarkDecode's Q8_0/threads=2 against …/no-mmap, four
// runs; Q4_0, bound there by compute, did not change). The cost is the
// copy: the weights take private memory, and the page cache may
// hold the file too until the kernel needs the room.
func OpenInMemory(path string) (*File, error) {
	fd, size, err := openSized(path, "load")
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	data, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("gguf: allocating %d bytes for %s: %w", size, path, err)
	}
	free := func() error { return unix.Munmap(data) }
	// Huge pages are a request: a kernel without transparent huge pages,
	// or with them off, refuses it and the load goes on with small pages.
	_ = unix.Madvise(data, unix.MADV_HUGEPAGE)
	if _, err := io.ReadFull(fd, data); err != nil {
		return nil, errors.Join(fmt.Errorf("gguf: reading %s: %w", path, err), free())
	}
	if err := unix.Mprotect(data, unix.PROT_READ); err != nil {
		return nil, errors.Join(fmt.Errorf("gguf: %w", err), free())
	}
	f, err := Parse(data)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%w (%s)", err, path), free())
	}
	f.unmap = free
	return f, nil
}
