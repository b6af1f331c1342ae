package coord

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stokehq/stoke/net/identity"
)

// The ledger's buckets. Keys: nodes by public key (32 bytes), jobs and
// checks by a big-endian sequence number (bbolt's NextSequence, so
// records list in the order they were committed). Values are JSON.
var (
	bucketNodes  = []byte("nodes")
	bucketJobs   = []byte("jobs")
	bucketChecks = []byte("checks")
)

// WindowSize is how many recent check outcomes a node record keeps for
// the quarantine test.
const WindowSize = 64

// NodeRecord is what the ledger knows of a key.
type NodeRecord struct {
	Key      identity.PublicKey `json:"key"`
	Name     string             `json:"name"`
	Admitted bool               `json:"admitted"`
	Stake    int64              `json:"stake"`   // credits at stake, slashed on failed checks
	Balance  int64              `json:"balance"` // rewards earned
	Slashed  int64              `json:"slashed"` // total stake lost

	Jobs   int64 `json:"jobs"`   // jobs finished
	Tokens int64 `json:"tokens"` // tokens generated in them
	Lost   int64 `json:"lost"`   // jobs lost mid-stream

	Checks int64 `json:"checks"` // spot checks run on its jobs
	Failed int64 `json:"failed"`
	// Window holds the last WindowLen check outcomes, newest in bit 0, a
	// set bit a failure.
	Window    uint64 `json:"window"`
	WindowLen int    `json:"window_len"`

	Quarantined   bool      `json:"quarantined"`
	QuarantinedAt time.Time `json:"quarantined_at,omitzero"`
	Why           string    `json:"why,omitempty"` // why it was quarantined

	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// Reputation is the posterior mean of the pass rate of its checks under
// a uniform prior, (passed + 1) / (checks + 2): 0.5 for a new node, and a
// failed check lowers it.
func (r *NodeRecord) Reputation() float64 {
	return float64(r.Checks-r.Failed+1) / float64(r.Checks+2)
}

// WindowFailures is the number of failures among the recent checks.
func (r *NodeRecord) WindowFailures() int { return bits.OnesCount64(r.Window) }

// addCheck shifts an outcome into the window.
func (r *NodeRecord) addCheck(ok bool) {
	r.Checks++
	r.Window <<= 1
	if !ok {
		r.Failed++
		r.Window |= 1
	}
	r.WindowLen = min(r.WindowLen+1, WindowSize)
	if r.WindowLen < WindowSize {
		r.Window &= 1<<r.WindowLen - 1
	}
}

// JobRecord is one attempt at a job on one node.
type JobRecord struct {
	ID      uint64             `json:"id"`
	Request string             `json:"request"` // the gateway request it served
	Attempt int                `json:"attempt"` // 0 for the first node tried
	Node    identity.PublicKey `json:"node"`
	Model   string             `json:"model"` // sha256 prefix
	Prompt  int                `json:"prompt_tokens"`
	Tokens  int                `json:"tokens"`
	Finish  string             `json:"finish,omitempty"`
	Outcome string             `json:"outcome"` // done, lost, refused: …
	Proof   int                `json:"proof_bytes"`
	Reward  int64              `json:"reward"`
	Start   time.Time          `json:"start"`
	End     time.Time          `json:"end"`
}

// CheckRecord is one spot check.
type CheckRecord struct {
	ID       uint64             `json:"id"`
	Job      uint64             `json:"job"`
	Node     identity.PublicKey `json:"node"`
	Verifier string             `json:"verifier"` // "coordinator" or a node key
	OK       bool               `json:"ok"`
	Reason   string             `json:"reason"`
	Slashed  int64              `json:"slashed"`
	// Tail is P(at least this many failures in the window | honest node),
	// the quarantine statistic (1 after a pass).
	Tail        float64   `json:"tail"`
	Quarantined bool      `json:"quarantined"`
	Time        time.Time `json:"time"`
}

// Ledger is the coordinator's durable state in one bbolt file: every
// Update is one transaction, fsynced before it returns, so a record
// whose Update returned survives kill -9.
type Ledger struct {
	db *bolt.DB
}

// OpenLedger opens (creating) the ledger at path. The file is locked:
// a second coordinator on the same data fails after a second.
func OpenLedger(path string) (*Ledger, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("ledger %s is locked by another process (is a coordinator running on this data directory?)", path)
		}
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNodes, bucketJobs, bucketChecks} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Ledger{db: db}, nil
}

// Close closes the file.
func (l *Ledger) Close() error { return l.db.Close() }

// Tx is a ledger transaction.
type Tx struct{ tx *bolt.Tx }

// Update runs fn in one read-write transaction, committed (and synced)
// when fn returns nil.
func (l *Ledger) Update(fn func(*Tx) error) error {
	return l.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// Batch is Update for many concurrent writers: bbolt commits the calls
// that arrive together in one transaction (one fsync). fn may run more
// than once and must only depend on the transaction; each call returns
// after its records are committed.
func (l *Ledger) Batch(fn func(*Tx) error) error {
	return l.db.Batch(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// View runs fn in a read-only transaction.
func (l *Ledger) View(fn func(*Tx) error) error {
	return l.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// Node reads a node record.
func (t *Tx) Node(k identity.PublicKey) (NodeRecord, bool, error) {
	var r NodeRecord
	b := t.tx.Bucket(bucketNodes).Get(k[:])
	if b == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("ledger: node %s: %w", k.Short(), err)
	}
	return r, true, nil
}

// PutNode writes a node record.
func (t *Tx) PutNode(r NodeRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketNodes).Put(r.Key[:], b)
}

// Nodes lists every node record.
func (t *Tx) Nodes() ([]NodeRecord, error) {
	var out []NodeRecord
	err := t.tx.Bucket(bucketNodes).ForEach(func(_, v []byte) error {
		var r NodeRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func appendRecord(b *bolt.Bucket, id *uint64, v any) error {
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	*id = n
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(seqKey(n), data)
}

// AppendJob stores a job record, setting its ID.
func (t *Tx) AppendJob(r *JobRecord) error { return appendRecord(t.tx.Bucket(bucketJobs), &r.ID, r) }

// AppendCheck stores a check record, setting its ID.
func (t *Tx) AppendCheck(r *CheckRecord) error {
	return appendRecord(t.tx.Bucket(bucketChecks), &r.ID, r)
}

// Job reads a job record.
func (t *Tx) Job(id uint64) (JobRecord, bool, error) {
	var r JobRecord
	b := t.tx.Bucket(bucketJobs).Get(seqKey(id))
	if b == nil {
		return r, false, nil
	}
	return r, true, json.Unmarshal(b, &r)
}

// PutJob rewrites a job record.
func (t *Tx) PutJob(r JobRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketJobs).Put(seqKey(r.ID), b)
}

// Jobs lists job records in order.
func (t *Tx) Jobs() ([]JobRecord, error) { return list[JobRecord](t.tx.Bucket(bucketJobs)) }

// Checks lists check records in order.
func (t *Tx) Checks() ([]CheckRecord, error) { return list[CheckRecord](t.tx.Bucket(bucketChecks)) }

// LastJobs lists the last n job records, oldest first.
func (t *Tx) LastJobs(n int) ([]JobRecord, error) { return last[JobRecord](t.tx.Bucket(bucketJobs), n) }

// LastChecks lists the last n check records, oldest first.
func (t *Tx) LastChecks(n int) ([]CheckRecord, error) {
	return last[CheckRecord](t.tx.Bucket(bucketChecks), n)
}

func last[T any](b *bolt.Bucket, n int) ([]T, error) {
	out := []T{}
	c := b.Cursor()
	for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.Reverse(out)
	return out, nil
}

func list[T any](b *bolt.Bucket) ([]T, error) {
	var out []T
	err := b.ForEach(func(_, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Admit registers key with a stake, lifting any quarantine (the
// operator's decision).
func (l *Ledger) Admit(key identity.PublicKey, name string, stake int64) error {
	return l.Update(func(t *Tx) error {
		r, ok, err := t.Node(key)
		if err != nil {
			return err
		}
		if !ok {
			r = NodeRecord{Key: key, FirstSeen: time.Now()}
		}
		if name != "" {
			r.Name = name
		}
		r.Admitted, r.Stake = true, stake
		r.Quarantined, r.Why, r.QuarantinedAt = false, "", time.Time{}
		r.Window, r.WindowLen = 0, 0
		return t.PutNode(r)
	})
}

// Revoke withdraws a key's admission.
func (l *Ledger) Revoke(key identity.PublicKey) error {
	return l.Update(func(t *Tx) error {
		r, ok, err := t.Node(key)
		if err != nil || !ok {
			return err
		}
		r.Admitted = false
		return t.PutNode(r)
	})
}

// NodeRecords lists all node records.
func (l *Ledger) NodeRecords() (out []NodeRecord, err error) {
	err = l.View(func(t *Tx) error {
		out, err = t.Nodes()
		return err
	})
	return out, err
}

// Record reads one node record.
func (l *Ledger) Record(key identity.PublicKey) (r NodeRecord, ok bool, err error) {
	err = l.View(func(t *Tx) error {
		r, ok, err = t.Node(key)
		return err
	})
	return r, ok, err
}

// JobRecords lists all job records.
func (l *Ledger) JobRecords() (out []JobRecord, err error) {
	err = l.View(func(t *Tx) error {
		out, err = t.Jobs()
		return err
	})
	return out, err
}

// CheckRecords lists all check records.
func (l *Ledger) CheckRecords() (out []CheckRecord, err error) {
	err = l.View(func(t *Tx) error {
		out, err = t.Checks()
		return err
	})
	return out, err
}
