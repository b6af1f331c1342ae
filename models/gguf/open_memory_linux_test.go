//go:build linux

package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
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

// TestCgroupAvailable: the least of limit − anonymous memory over the
// process's cgroup and its ancestors, for cgroup v2 and v1; no limit,
// no answer.
func TestCgroupAvailable(t *testing.T) {
	const gib = int64(1) << 30
	write := func(root, p, s string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }

	v2 := t.TempDir()
	write(v2, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
	write(v2, "sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n")
	write(v2, "sys/fs/cgroup/kubepods/pod1/memory.max", itoa(8*gib)+"\n")
	write(v2, "sys/fs/cgroup/kubepods/pod1/memory.stat", "anon "+itoa(3*gib)+"\nfile "+itoa(4*gib)+"\n")
	write(v2, "sys/fs/cgroup/kubepods/memory.max", itoa(16*gib)+"\n")
	if n, ok := cgroupAvailable(v2); !ok || n != 5*gib {
		t.Errorf("v2: %d, %v; want %d", n, ok, 5*gib)
	}

	v1 := t.TempDir()
	write(v1, "proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n")
	write(v1, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", itoa(2*gib)+"\n")
	write(v1, "sys/fs/cgroup/memory/docker/abc/memory.stat", "cache 5\nrss 7\ntotal_rss "+itoa(gib/2)+"\n")
	write(v1, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
	if n, ok := cgroupAvailable(v1); !ok || n != 2*gib-gib/2 {
		t.Errorf("v1: %d, %v; want %d", n, ok, 2*gib-gib/2)
	}

	none := t.TempDir()
	write(none, "proc/self/cgroup", "4:memory:/\n0::/\n")
	write(none, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
	if n, ok := cgroupAvailable(none); ok {
		t.Errorf("no limit: %d, %v", n, ok)
	}
	if n, ok := cgroupAvailable(filepath.Join(t.TempDir(), "missing")); ok {
		t.Errorf("no /proc: %d, %v", n, ok)
	}

	over := t.TempDir() // anonymous use past the limit: nothing left, not less
	write(over, "proc/self/cgroup", "0::/a\n")
	write(over, "sys/fs/cgroup/a/memory.max", "100\n")
	write(over, "sys/fs/cgroup/a/memory.stat", "anon 200\n")
	if n, ok := cgroupAvailable(over); !ok || n != 0 {
		t.Errorf("over the limit: %d, %v", n, ok)
	}
}
