package identity

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// ErrKeyMismatch is returned when a peer's key is not the pinned one.
var ErrKeyMismatch = errors.New("identity: the peer's key is not the pinned key")

var pinMu sync.Mutex

// Pin returns a check of a server's key for ClientConfig. With want set,
// the key must be want. Otherwise the key is trusted on first use: the
// first key seen for addr is written to the file at path (lines "addr
// hexkey") and every later connection must present the same one.
func Pin(path, addr string, want *PublicKey) func(PublicKey) error {
	return func(k PublicKey) error {
		if want != nil {
			if k != *want {
				return fmt.Errorf("%w: %s presented %s, want %s", ErrKeyMismatch, addr, k, want)
			}
			return nil
		}
		pinMu.Lock()
		defer pinMu.Unlock()
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0] != addr {
				continue
			}
			known, err := ParsePublicKey(f[1])
			if err != nil {
				return fmt.Errorf("identity: %s: %w", path, err)
			}
			if known != k {
				return fmt.Errorf("%w: %s presented %s but %s pins %s (remove that line if the coordinator's key really changed)", ErrKeyMismatch, addr, k, path, known)
			}
			return nil
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "%s %s\n", addr, k)
		if err == nil {
			err = f.Sync()
		}
		if e := f.Close(); err == nil {
			err = e
		}
		return err
	}
}
