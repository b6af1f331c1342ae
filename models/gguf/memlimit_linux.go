//go:build linux

package gguf

import (
	"bufio"
	"os"
	"path"
	"strconv"
	"strings"
)

// cgroupAvailable returns what the memory cgroups of this process leave
// it: over the process's cgroup and its ancestors, the least of limit −
// anonymous memory in use (page cache is reclaimable, as MemAvailable
// counts it), for cgroup v2 (memory.max, memory.stat anon) and v1
// (memory.limit_in_bytes, memory.stat total_rss). ok is false when no
// limit applies. root is the file system root ("/"; tests pass another).
//
// Why: in a container /proc/meminfo describes the host. A model read
// into private memory there counts against the container's limit, and
// one over it is killed, where a mapped file's pages could be reclaimed.
func cgroupAvailable(root string) (avail int64, ok bool) {
	f, err := os.Open(path.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "0::/path" (v2) or "4:memory:/path" (v1, perhaps "memory,foo")
		id, rest, ok1 := strings.Cut(sc.Text(), ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			continue
		}
		var dir, limitFile, anonKey string
		switch {
		case id == "0" && ctrls == "":
			dir, limitFile, anonKey = "sys/fs/cgroup", "memory.max", "anon"
		case hasController(ctrls, "memory"):
			dir, limitFile, anonKey = "sys/fs/cgroup/memory", "memory.limit_in_bytes", "total_rss"
		default:
			continue
		}
		for d := path.Clean(p); ; d = path.Dir(d) {
			base := path.Join(root, dir, d)
			if limit, lok := readBytes(path.Join(base, limitFile)); lok {
				a := limit - statValue(path.Join(base, "memory.stat"), anonKey)
				if !ok || a < avail {
					avail, ok = max(a, 0), true
				}
			}
			if d == "/" {
				break
			}
		}
	}
	return avail, ok
}

func hasController(list, c string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == c {
			return true
		}
	}
	return false
}

// readBytes reads a limit file: a byte count, or "max" (or a v1 value
// near 2⁶³, which means none) for no limit (ok false).
func readBytes(p string) (n int64, ok bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 || v >= 1<<62 {
		return 0, false
	}
	return v, true
}

// statValue returns key's value in a memory.stat file (0 when absent).
func statValue(p, key string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k == key {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n >= 0 {
				return n
			}
		}
	}
	return 0
}
