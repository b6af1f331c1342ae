// Package wire is the DePIN protocol between a Stoke coordinator and its
// nodes, spoken over QUIC streams.
//
// The QUIC connection negotiates the protocol version by ALPN (ALPN,
// "stoke/1"); Hello and Welcome repeat it so a version mismatch is
// reported in words. Every message is one frame:
//
//	frame   = type:u8 | length:u32 (big-endian) | payload[length]
//	payload = the message's fields in order:
//	          integers  uvarint, floats 4 bytes IEEE-754 big-endian,
//	          bools     one byte 0 or 1, sha256 32 raw bytes,
//	          strings   uvarint length | UTF-8 bytes,
//	          bytes     uvarint length | bytes,
//	          tokens    uvarint count | count × uvarint token id,
//	          lists     uvarint count | items
//
// Every length read from the wire is checked against a named limit and
// against the bytes actually present before anything is allocated; a
// payload with bytes left over, a bool that is not 0 or 1, invalid UTF-8
// or an unknown type is an error. Encoding checks the same limits, so a
// peer never sends what the other side would refuse.
//
// Streams: the node opens one control stream (Hello → Welcome or Error,
// then Heartbeats); the coordinator opens one stream per job (JobRequest
// → Tokens… → JobEnd or Error) and per verification (VerifyRequest →
// VerifyResult or Error).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocol identity.
const (
	Version = 1
	ALPN    = "stoke/1"
)

// Limits on every length in a message.
const (
	HeaderSize        = 5       // type + length
	MaxFrame          = 4 << 20 // payload bytes
	MaxTokens         = 1 << 18 // token ids in a prompt or output
	MaxTokenID        = 1<<24 - 1
	MaxTokensPerFrame = 4096 // ids in one Tokens message
	MaxString         = 1024 // names, reasons, messages, stop strings
	MaxStops          = 16   // stop strings in a job
	MaxModels         = 16   // models one node advertises
	MaxProof          = 1 << 20
	MaxFinish         = 16 // bytes of a finish reason
)

// Type names a message.
type Type uint8

// Message types.
const (
	TypeHello Type = iota + 1
	TypeWelcome
	TypeHeartbeat
	TypeJobRequest
	TypeTokens
	TypeJobEnd
	TypeVerifyRequest
	TypeVerifyResult
	TypeError
	typeEnd
)

var typeNames = [...]string{"", "hello", "welcome", "heartbeat", "job-request", "tokens", "job-end", "verify-request", "verify-result", "error"}

func (t Type) String() string {
	if t > 0 && t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Message is one protocol message.
type Message interface {
	Type() Type
	encode(e *encoder)
	decode(d *decoder)
}

func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeHeartbeat:
		return new(Heartbeat)
	case TypeJobRequest:
		return new(JobRequest)
	case TypeTokens:
		return new(Tokens)
	case TypeJobEnd:
		return new(JobEnd)
	case TypeVerifyRequest:
		return new(VerifyRequest)
	case TypeVerifyResult:
		return new(VerifyResult)
	case TypeError:
		return new(Error)
	}
	return nil
}

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("wire: malformed message")

// AppendFrame appends m's frame to b.
func AppendFrame(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, byte(m.Type()), 0, 0, 0, 0)
	e := encoder{b: b}
	m.encode(&e)
	if e.err != nil {
		return b[:start], fmt.Errorf("wire: encoding %s: %w", m.Type(), e.err)
	}
	n := len(e.b) - start - HeaderSize
	if n > MaxFrame {
		return b[:start], fmt.Errorf("wire: %s of %d bytes is over the frame limit of %d", m.Type(), n, MaxFrame)
	}
	binary.BigEndian.PutUint32(e.b[start+1:], uint32(n))
	return e.b, nil
}

// Encode returns m's frame.
func Encode(m Message) ([]byte, error) { return AppendFrame(nil, m) }

// Write writes m's frame to w in one call.
func Write(w io.Writer, m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Decode parses a payload of type t.
func Decode(t Type, payload []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, uint8(t))
	}
	if len(payload) > MaxFrame {
		return nil, fmt.Errorf("%w: %s of %d bytes is over the frame limit of %d", ErrMalformed, t, len(payload), MaxFrame)
	}
	d := decoder{b: payload}
	m.decode(&d)
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, t, d.err)
	}
	return m, nil
}

// DecodeFrame parses one frame at the start of b and returns the message
// and the bytes it used.
func DecodeFrame(b []byte) (Message, int, error) {
	if len(b) < HeaderSize {
		return nil, 0, io.ErrUnexpectedEOF
	}
	n := binary.BigEndian.Uint32(b[1:])
	if n > MaxFrame {
		return nil, 0, fmt.Errorf("%w: frame of %d bytes is over the limit of %d", ErrMalformed, n, MaxFrame)
	}
	if uint64(len(b)-HeaderSize) < uint64(n) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	m, err := Decode(Type(b[0]), b[HeaderSize:HeaderSize+int(n)])
	return m, HeaderSize + int(n), err
}

// Read reads one frame from r. The payload is allocated only after its
// length passed the limit; io.EOF means r ended cleanly between frames.
func Read(r io.Reader) (Message, error) { return ReadMax(r, MaxFrame) }

// MaxControlFrame bounds frames on a control stream (Hello, Welcome,
// Heartbeat, Error): a peer cannot make the other allocate more.
const MaxControlFrame = 128 << 10

// ReadMax is Read with a tighter payload limit.
func ReadMax(r io.Reader, limit uint32) (Message, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	t := Type(h[0])
	if newMessage(t) == nil {
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, h[0])
	}
	n := binary.BigEndian.Uint32(h[1:])
	if limit := min(limit, MaxFrame); n > limit {
		return nil, fmt.Errorf("%w: %s frame of %d bytes is over the limit of %d", ErrMalformed, t, n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(t, p)
}

// Code is an error code: in Error messages, and as the QUIC application
// error code of a closed connection or a cancelled stream.
type Code uint64

// Error codes.
const (
	CodeOK          Code = iota // a clean close
	CodeProtocol                // malformed or unexpected message
	CodeNotAdmitted             // the key is not registered or staked
	CodeQuarantined             // the key failed spot checks
	CodeDraining                // the node is shutting down: retry elsewhere
	CodeBusy                    // every slot and the queue are full
	CodeContextFull             // the prompt does not fit the node's context
	CodeBadRequest              // invalid parameters
	CodeWrongModel              // the node does not serve that model
	CodeInternal                // the node failed
	CodeCancelled               // the requester went away
	CodeVersion                 // unsupported protocol version
	CodeTimeout                 // missed heartbeats
	CodeReplaced                // the same key connected again
	codeEnd
)

var codeNames = [...]string{"ok", "protocol", "not-admitted", "quarantined", "draining", "busy", "context-full",
	"bad-request", "wrong-model", "internal", "cancelled", "version", "timeout", "replaced"}

func (c Code) String() string {
	if c < codeEnd {
		return codeNames[c]
	}
	return fmt.Sprintf("code-%d", uint64(c))
}
