//go:build linux

package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMemAvailable(t *testing.T) {
	good := "MemTotal:       24591836 kB\nMemFree:        22000000 kB\nMemAvailable:   23020456 kB\nBuffers: 1 kB\n"
	if n, err := memAvailable(good); err != nil || n != 23020456<<10 {
		t.Errorf("memAvailable = %d, %v; want %d", n, err, int64(23020456)<<10)
	}
	for _, bad := range []string{
		"",
		"MemTotal: 1 kB\n",
		"MemAvailable: x kB\n",
		"MemAvailable: -5 kB\n",
		"MemAvailable: 99999999999999999999 kB\n",
		"MemAvailable: 9223372036854775807 kB\n", // overflows in bytes
	} {
		if n, err := memAvailable(bad); err == nil {
			t.Errorf("memAvailable(%q) = %d, want an error", bad, n)
		}
	}
	if n, err := AvailableMemory(); err != nil || n <= 0 {
		t.Errorf("AvailableMemory() = %d, %v", n, err)
	}
}

func TestTHPOn(t *testing.T) {
	for s, want := range map[string]bool{
		"[always] madvise never\n": true,
		"always [madvise] never\n": true,
		"always madvise [never]\n": false,
		"":                         false,
	} {
		if got := thpOn(s); got != want {
			t.Errorf("thpOn(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestPrefault: Prefault brings a mapped file that the page cache does
// not hold into it (mincore), and leaves a copy in memory alone.
func TestPrefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.bin")
	const size = 8 << 20
	if err := os.WriteFile(path, bytes.Repeat([]byte{1, 2, 3, 4}, size/4), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Sync(); err != nil { // dirty pages would not drop
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(fd.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	resident := func() int {
		vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	pages := size / os.Getpagesize()
	before := resident()
	if before == pages {
		t.Skip("the kernel kept the file in the page cache despite FADV_DONTNEED")
	}
	(&File{data: data}).Prefault() // a copy in memory: left alone
	if r := resident(); r > before+pages/8 {
		t.Errorf("Prefault of an unmapped File brought in %d of %d pages", r-before, pages)
	}
	(&File{data: data, mapped: true}).Prefault()
	if r := resident(); r != pages {
		t.Errorf("after Prefault %d of %d pages are in the page cache (before: %d)", r, pages, before)
	}
}
