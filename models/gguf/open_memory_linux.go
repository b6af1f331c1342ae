//go:build linux

package gguf

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenInMemory reads the file at path into anonymous memory, rather than
// mapping it, and parses it: llama.cpp's --no-mmap. The memory is asked
// for in transparent huge pages (MADV_HUGEPAGE) and made read-only once
// filled, so the weights stay immutable as in a read-only mapping. A
// weight matrix then spans a few 2 MiB pages instead of thousands of
// 4 KiB page-cache pages, and decode, which reads every weight it uses
// once per token, runs faster (engine.InMemoryPays has the figures). The
// cost is the copy: the weights take private memory, and the page cache
// may hold the file too until the kernel needs the room.
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
	f.owned = true
	return f, nil
}

// writable makes an OpenInMemory file's data writable (on) or read-only
// again (Rewrite).
func (f *File) writable(on bool) error {
	prot := unix.PROT_READ
	if on {
		prot |= unix.PROT_WRITE
	}
	if err := unix.Mprotect(f.data, prot); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// InMemoryHugePages reports whether OpenInMemory gets huge pages here:
// the kernel's transparent huge pages are on ("always" or "madvise" in
// /sys/kernel/mm/transparent_hugepage/enabled).
func InMemoryHugePages() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && thpOn(string(b))
}

// thpOn parses the transparent_hugepage/enabled file: the bracketed word
// is the mode in force.
func thpOn(s string) bool {
	return strings.Contains(s, "[always]") || strings.Contains(s, "[madvise]")
}

// AvailableMemory returns the bytes the kernel can give this process
// without swapping: MemAvailable in /proc/meminfo (free memory plus the
// page cache and other memory it can reclaim), or less when a memory
// cgroup (a container's limit) leaves less.
func AvailableMemory() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	n, err := memAvailable(string(b))
	if err != nil {
		return 0, err
	}
	if c, ok := cgroupAvailable("/"); ok && c < n {
		n = c
	}
	return n, nil
}

// memAvailable parses /proc/meminfo's MemAvailable line ("MemAvailable:
// 22123456 kB").
func memAvailable(s string) (int64, error) {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "MemAvailable:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb < 0 || kb > math.MaxInt64>>10 {
				return 0, fmt.Errorf("gguf: bad MemAvailable line %q in /proc/meminfo", strings.TrimSpace(line))
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("gguf: no MemAvailable in /proc/meminfo")
}

// Prefault brings a mapped file (Open) into the page cache and maps every
// page, as llama.cpp's MAP_POPULATE does, when the file fits in the
// available memory; a file read into memory, or one too large, is left
// as it is. It asks for huge pages first (MADV_HUGEPAGE).
//
// Why: populated in one sequential pass, the page cache keeps the file
// in huge folios where the kernel can (Linux 6.x); brought in by the page
// faults of a decode, which touch the weights out of order, it kept
// 4 KiB pages on the development machine (Linux 6.18), and mapped decode
// ran at 0.73–0.90 of the in-memory speed; prefaulted, at 0.95–1.11
// (bench/results/cpu-2026-11-29c/page-cache*.txt). Best effort: a kernel
// without MADV_POPULATE_READ (before 5.14) skips it.
func (f *File) Prefault() {
	if !f.mapped || len(f.data) == 0 {
		return
	}
	if avail, err := AvailableMemory(); err != nil || int64(len(f.data)) > avail {
		return
	}
	_ = unix.Madvise(f.data, unix.MADV_HUGEPAGE)
	_ = unix.Madvise(f.data, unix.MADV_POPULATE_READ)
}
