package identity_test

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/net/identity"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, created, err := identity.LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, identity.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	b, created, err := identity.LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("second start: created %v, %v", created, err)
	}
	if a.Pub != b.Pub {
		t.Fatal("the key changed between starts")
	}
	k, err := identity.ParsePublicKey(a.Pub.String())
	if err != nil || k != a.Pub {
		t.Fatalf("parse %s: %v", a.Pub, err)
	}
	if err := os.Chmod(filepath.Join(dir, identity.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := identity.LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key was accepted: %v", err)
	}
}

// handshake runs TLS 1.3 between a server and a client over a pipe and
// returns the key each saw.
func handshake(t *testing.T, srv, cli *identity.Identity, pin func(identity.PublicKey) error) (seenBySrv, seenByCli identity.PublicKey, err error) {
	t.Helper()
	// TCP, not net.Pipe: TLS 1.3 servers write session tickets that an
	// unbuffered pipe would block on
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	sc := tls.Server(a, srv.ServerConfig("stoke/1"))
	cc := tls.Client(b, cli.ClientConfig("stoke/1", pin))
	done := make(chan error, 1)
	go func() { done <- sc.Handshake() }()
	err = cc.Handshake()
	if err != nil {
		a.Close()
		<-done
		return
	}
	if err = <-done; err != nil {
		return
	}
	if p := cc.ConnectionState().NegotiatedProtocol; p != "stoke/1" {
		t.Fatalf("ALPN %q", p)
	}
	if v := cc.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("TLS version %#x", v)
	}
	seenBySrv, err = identity.PeerKeyOf(sc.ConnectionState())
	if err != nil {
		return
	}
	seenByCli, err = identity.PeerKeyOf(cc.ConnectionState())
	return
}

func TestMutualTLS(t *testing.T) {
	srv, _ := identity.Generate()
	cli, _ := identity.Generate()
	s, c, err := handshake(t, srv, cli, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s != cli.Pub || c != srv.Pub {
		t.Fatalf("keys: server saw %s (want %s), client saw %s (want %s)", s.Short(), cli.Pub.Short(), c.Short(), srv.Pub.Short())
	}

	// pinning: the right key passes, another fails
	want := srv.Pub
	if _, _, err := handshake(t, srv, cli, identity.Pin("", "x", &want)); err != nil {
		t.Fatal(err)
	}
	other, _ := identity.Generate()
	if _, _, err := handshake(t, other, cli, identity.Pin("", "x", &want)); err == nil || !errors.Is(err, identity.ErrKeyMismatch) {
		t.Fatalf("a server with another key was accepted: %v", err)
	}
}

func TestTrustOnFirstUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known")
	srv, _ := identity.Generate()
	cli, _ := identity.Generate()
	pin := identity.Pin(path, "coord:7000", nil)
	for range 2 {
		if _, _, err := handshake(t, srv, cli, pin); err != nil {
			t.Fatal(err)
		}
	}
	impostor, _ := identity.Generate()
	if _, _, err := handshake(t, impostor, cli, pin); !errors.Is(err, identity.ErrKeyMismatch) {
		t.Fatalf("an impostor was accepted on a pinned address: %v", err)
	}
	// another address pins its own key
	if _, _, err := handshake(t, impostor, cli, identity.Pin(path, "other:7000", nil)); err != nil {
		t.Fatal(err)
	}
}

func TestPeerKeyRejects(t *testing.T) {
	a, _ := identity.Generate()
	b, _ := identity.Generate()
	if _, err := identity.PeerKey(nil); err == nil {
		t.Fatal("no certificate accepted")
	}
	if _, err := identity.PeerKey([][]byte{a.Cert.Certificate[0], b.Cert.Certificate[0]}); err == nil {
		t.Fatal("a chain accepted")
	}
	bad := append([]byte(nil), a.Cert.Certificate[0]...)
	bad[len(bad)-1] ^= 1 // the signature
	if _, err := identity.PeerKey([][]byte{bad}); err == nil {
		t.Fatal("a certificate with a broken signature accepted")
	}
}
