package coord_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stokehq/stoke/net/coord"
	"github.com/stokehq/stoke/net/identity"
)

// TestLedgerKill9: a process commits job records and reports each one;
// it is killed with SIGKILL mid-stream; every record it reported is in
// the file when it is opened again.
func TestLedgerKill9(t *testing.T) {
	if os.Getenv("STOKE_LEDGER_CHILD") != "" {
		ledgerChild()
		return
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLedgerKill9$")
	cmd.Env = append(os.Environ(), "STOKE_LEDGER_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	committed := 0
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			continue
		}
		committed, _ = strconv.Atoi(n)
		if committed == 50 {
			break
		}
	}
	// the child keeps writing: kill it in the middle of a transaction
	time.Sleep(5 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
		}
	}
	cmd.Wait()
	if committed < 50 {
		t.Fatalf("the child committed only %d records", committed)
	}
	l, err := coord.OpenLedger(path)
	if err != nil {
		t.Fatalf("reopening after kill -9: %v", err)
	}
	defer l.Close()
	jobs, err := l.JobRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) < committed {
		t.Fatalf("%d job records after kill -9, %d were reported committed", len(jobs), committed)
	}
	for i, j := range jobs {
		if j.ID != uint64(i+1) || j.Tokens != i {
			t.Fatalf("record %d: %+v", i, j)
		}
	}
	recs, err := l.NodeRecords()
	if err != nil || len(recs) != 1 || recs[0].Jobs != int64(len(jobs)) {
		t.Fatalf("node record after kill -9: %+v, %v (%d jobs)", recs, err, len(jobs))
	}
	t.Logf("%d records reported committed before SIGKILL, %d in the file", committed, len(jobs))
}

// ledgerChild writes job records until it is killed.
func ledgerChild() {
	l, err := coord.OpenLedger(os.Getenv("STOKE_LEDGER_CHILD"))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	key := identity.PublicKey{1}
	if err := l.Admit(key, "n", 10); err != nil {
		os.Exit(1)
	}
	for i := 0; ; i++ {
		err := l.Update(func(t *coord.Tx) error {
			if err := t.AppendJob(&coord.JobRecord{Node: key, Tokens: i, Outcome: "done"}); err != nil {
				return err
			}
			r, _, err := t.Node(key)
			if err != nil {
				return err
			}
			r.Jobs++
			return t.PutNode(r)
		})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("committed %d\n", i+1)
	}
}

// TestLedgerLocked: a second opener of the same file fails with a
// message, instead of corrupting it.
func TestLedgerLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := coord.OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := coord.OpenLedger(path); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v", err)
	}
}

func TestLedgerAdmit(t *testing.T) {
	l, err := coord.OpenLedger(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	k := identity.PublicKey{7}
	if err := l.Admit(k, "a", 50); err != nil {
		t.Fatal(err)
	}
	err = l.Update(func(tx *coord.Tx) error {
		r, _, _ := tx.Node(k)
		r.Quarantined, r.Why = true, "test"
		return tx.PutNode(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Admit(k, "", 60); err != nil {
		t.Fatal(err)
	}
	r, ok, err := l.Record(k)
	if err != nil || !ok || r.Quarantined || r.Stake != 60 || r.Name != "a" || !r.Admitted {
		t.Fatalf("after re-admission: %+v", r)
	}
	if err := l.Revoke(k); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := l.Record(k); r.Admitted {
		t.Fatal("revoked key still admitted")
	}
}
