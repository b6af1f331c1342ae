// Package identity gives every coordinator and node an ed25519 key, kept
// in a file readable by its owner only, and binds TLS 1.3 certificates to
// it: a peer's identity is the public key in its self-signed certificate,
// which the TLS handshake proves it holds. There is no certificate
// authority; the coordinator admits keys it knows (or any key in open
// mode) and a node pins its coordinator's key.
package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// KeyFile is the key's file name in a data directory.
const KeyFile = "key.pem"

// PublicKey is an ed25519 public key usable as a map key.
type PublicKey [ed25519.PublicKeySize]byte

func (k PublicKey) String() string { return hex.EncodeToString(k[:]) }

// Short is the first 8 bytes in hex, for logs.
func (k PublicKey) Short() string { return hex.EncodeToString(k[:8]) }

// ParsePublicKey reads a key in hex (as String writes it).
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("identity: %q is not a %d-byte hex public key", s, len(k))
	}
	copy(k[:], b)
	return k, nil
}

// Identity is a private key and the certificate bound to it.
type Identity struct {
	Key  ed25519.PrivateKey
	Pub  PublicKey
	Cert tls.Certificate
}

// New makes an identity from a key.
func New(key ed25519.PrivateKey) (*Identity, error) {
	id := &Identity{Key: key}
	copy(id.Pub[:], key.Public().(ed25519.PublicKey))
	cert, err := selfSigned(key)
	if err != nil {
		return nil, err
	}
	id.Cert = cert
	return id, nil
}

// Generate makes a fresh identity (tests, ephemeral peers).
func Generate() (*Identity, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return New(key)
}

// LoadOrCreate loads dir/key.pem, creating the directory (0700) and the
// key (0600) on first use. A key file that others may read is refused,
// as ssh does. created reports a new key.
func LoadOrCreate(dir string) (id *Identity, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		st, err := os.Stat(path)
		if err != nil {
			return nil, false, err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("identity: %s has permissions %#o: a private key must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
		}
		key, err := parseKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("identity: %s: %w", path, err)
		}
		id, err := New(key)
		return id, false, err
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	// O_EXCL: two processes starting at once must not both write a key
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreate(dir)
		}
		return nil, false, err
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err != nil {
		os.Remove(path)
		return nil, false, err
	}
	id, err = New(key)
	return id, true, err
}

func parseKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, want ed25519", k)
	}
	return key, nil
}

// selfSigned makes a certificate for key signed by key. It is made afresh
// at every start: the key, not the certificate, is the identity.
func selfSigned(key ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	var pub PublicKey
	copy(pub[:], key.Public().(ed25519.PublicKey))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "stoke " + pub.Short()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}

// PeerKey checks a peer's certificate chain: exactly one certificate,
// self-signed by an ed25519 key, currently valid; it returns that key.
// (TLS 1.3 has already checked that the peer holds the private key.)
func PeerKey(rawCerts [][]byte) (PublicKey, error) {
	var k PublicKey
	if len(rawCerts) != 1 {
		return k, fmt.Errorf("identity: the peer sent %d certificates, want 1", len(rawCerts))
	}
	c, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return k, fmt.Errorf("identity: peer certificate: %w", err)
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return k, fmt.Errorf("identity: the peer's key is %T, want ed25519", c.PublicKey)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return k, fmt.Errorf("identity: the peer's certificate is not signed by its own key: %w", err)
	}
	if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return k, fmt.Errorf("identity: the peer's certificate is valid from %s to %s", c.NotBefore, c.NotAfter)
	}
	copy(k[:], pub)
	return k, nil
}

// PeerKeyOf returns the key of a completed TLS connection's peer.
func PeerKeyOf(cs tls.ConnectionState) (PublicKey, error) {
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return PeerKey(raw)
}

// ServerConfig is the TLS configuration of a listener speaking alpn: TLS
// 1.3 only, a client certificate required and checked by PeerKey. Which
// keys are admitted is decided after the handshake, where a refusal can
// say why.
func (id *Identity) ServerConfig(alpn string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{alpn},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := PeerKey(raw)
			return err
		},
	}
}

// ClientConfig is the TLS configuration of a dialer speaking alpn. pin
// decides whether the server's key is the expected one (nil: any key).
func (id *Identity) ClientConfig(alpn string, pin func(PublicKey) error) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.Cert},
		NextProtos:         []string{alpn},
		ServerName:         "stoke",
		InsecureSkipVerify: true, // no CA: VerifyPeerCertificate checks the key instead
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			k, err := PeerKey(raw)
			if err != nil {
				return err
			}
			if pin != nil {
				return pin(k)
			}
			return nil
		},
	}
}

// MarshalText writes the key in hex (JSON, logs).
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a hex key.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}
