package inventory

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	crashEnvDB      = "XFSKIT_INVENTORY_CRASH_DB"
	crashEnvSession = "XFSKIT_INVENTORY_CRASH_SESSION"
	crashFS         = "c4a5e1f0-9b8d-4f3e-8a7b-6c5d4e3f2a10"
)

// crashPayload is the opaque checkpoint blob for inode ino: several pages,
// derived from ino, so a torn or mixed update would be visible.
func crashPayload(ino uint64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "ino %d", ino))
	return bytes.Repeat(h[:], 300) // 9600 bytes: spans overflow pages
}

// crashChild is the dump stand-in run in a child process: it opens the
// inventory (migrating a fresh file), begins the session unless a previous
// child did, and then checkpoints both streams in a loop, every few steps
// also recording a media file and flipping the session interrupted and
// back (multi-row transactions), until it is killed.
func crashChild(path, id string) error {
	d, err := Open(path)
	if err != nil {
		return err
	}
	s, err := d.Session(id)
	if err != nil {
		if err := d.RecordFilesystem(Filesystem{UUID: crashFS, Label: "crash", Source: "/dev/null"}); err != nil {
			return err
		}
		if err := d.BeginSession(SessionInfo{ID: id, FSUUID: crashFS, Level: 0, Label: "crash"}); err != nil {
			return err
		}
		s = &Session{}
	} else if s.Status == StatusInterrupted {
		if err := d.ResumeSession(id); err != nil {
			return err
		}
	}
	for i := len(s.Streams); i < 2; i++ { // a kill may have come between AddStreams
		if err := d.AddStream(Stream{SessionID: id, Index: i, Count: 2, Dest: fmt.Sprint("/dev/null/", i)}); err != nil {
			return err
		}
	}
	// Resume after the inode every stream has passed, as dump -R would.
	var ino uint64
	cs, err := d.Checkpoints(id)
	if err != nil {
		return err
	}
	for i, c := range cs {
		if i == 0 || c.LastIno < ino {
			ino = c.LastIno
		}
	}
	if len(cs) < 2 { // a stream without a checkpoint starts from scratch
		ino = 0
	}
	fmt.Println("ready")
	deadline := time.Now().Add(20 * time.Second) // in case the parent is gone
	for time.Now().Before(deadline) {
		ino++
		for st := range 2 {
			if err := d.Checkpoint(Checkpoint{SessionID: id, Stream: st, LastIno: ino, Offset: int64(ino) * 4096,
				Data: crashPayload(ino)}); err != nil {
				return err
			}
		}
		if ino%4 == 0 {
			if err := d.AddMediaFile(MediaFile{SessionID: id, Stream: 0, Seq: int(ino / 4), Path: "m", Bytes: int64(ino)}); err != nil {
				return err
			}
		}
		if ino%3 == 0 {
			if err := d.MarkInterrupted(id, Counts{Files: int64(ino)}); err != nil {
				return err
			}
			if err := d.ResumeSession(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestCrashConsistency kills a child process that is writing the
// inventory at random moments — during Open and migration, during
// BeginSession, in the checkpoint loop — and checks after each kill that
// the database is intact and its contents consistent and monotonic.
func TestCrashConsistency(t *testing.T) {
	if p := os.Getenv(crashEnvDB); p != "" {
		if err := crashChild(p, os.Getenv(crashEnvSession)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	id := NewSessionID()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x1f))

	var prev uint64
	const rounds = 12
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashConsistency$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvDB+"="+path, crashEnvSession+"="+id)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kill := func() {
			cmd.Process.Signal(syscall.SIGKILL)
			err := cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() {
				t.Fatalf("round %d: child ended by itself (%v): %s", round, err, stderr.String())
			}
		}
		switch {
		case round%2 == 0:
			// Anywhere from process start; the early rounds favour the
			// first milliseconds (Open, migration, BeginSession, AddStream).
			max := 40_000
			if round < 4 {
				max = 12_000
			}
			time.Sleep(time.Duration(rng.IntN(max)) * time.Microsecond)
		default:
			ready := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(out)
				ok := false
				for sc.Scan() {
					if sc.Text() == "ready" && !ok {
						ok = true
						ready <- true
					}
				}
				if !ok {
					ready <- false
				}
			}()
			select {
			case ok := <-ready:
				if !ok {
					kill()
					t.Fatalf("round %d: child failed: %s", round, stderr.String())
				}
			case <-time.After(10 * time.Second):
				kill()
				t.Fatalf("round %d: child not ready: %s", round, stderr.String())
			}
			if round == rounds-1 {
				// Watch the database from this process while the child
				// writes, until it has made progress past prev.
				waitProgress(t, path, id, prev)
			}
			time.Sleep(time.Duration(rng.IntN(30_000)) * time.Microsecond)
		}
		kill()
		prev = checkAfterCrash(t, round, path, id, prev)
	}
	if prev == 0 {
		t.Fatal("no checkpoint survived any round; the test exercised nothing")
	}
	t.Logf("last checkpoint ino %d", prev)

	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, err := d.LatestInterrupted(crashFS)
	if err != nil || s == nil || s.ID != id {
		t.Fatalf("LatestInterrupted after crashes = %v, %v; want %s", s, err, id)
	}
	mustNil(t, d.MarkInterrupted(id, Counts{}))
	mustNil(t, d.ResumeSession(id))
	mustNil(t, d.CompleteSession(id, Counts{Files: int64(prev)}))
}

// waitProgress polls the inventory (concurrently with the writing child)
// until stream 0's checkpoint is beyond prev.
func waitProgress(t *testing.T, path, id string, prev uint64) {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c, err := d.LatestCheckpoint(id, 0)
		if err != nil {
			t.Fatalf("reading while the child writes: %v", err)
		}
		if c != nil && c.LastIno > prev {
			return
		}
	}
	t.Fatal("child made no progress")
}

// checkAfterCrash opens the database after a kill and checks it; it returns
// the checkpointed inode of stream 0.
func checkAfterCrash(t *testing.T, round int, path, id string, prev uint64) uint64 {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if prev != 0 {
			t.Fatalf("round %d: database vanished", round)
		}
		t.Logf("round %d: killed before the database was created", round)
		return 0
	}
	d, err := Open(path)
	if err != nil {
		t.Fatalf("round %d: reopen after kill: %v", round, err)
	}
	defer d.Close()
	var ic string
	if err := d.db.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("round %d: integrity_check = %q, %v", round, ic, err)
	}
	var fk int
	mustNil(t, d.db.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk))
	if fk != 0 {
		t.Fatalf("round %d: %d foreign key violations", round, fk)
	}
	if v, _ := d.schemaVersion(); v != SchemaVersion {
		t.Fatalf("round %d: schema version %d", round, v)
	}
	s, err := d.Session(id)
	if err != nil {
		if prev != 0 {
			t.Fatalf("round %d: session lost: %v", round, err)
		}
		t.Logf("round %d: killed before the session began", round)
		return 0
	}
	if s.Status != StatusInProgress && s.Status != StatusInterrupted {
		t.Fatalf("round %d: session status %s", round, s.Status)
	}
	// MarkInterrupted/ResumeSession update session and streams in one
	// transaction: their statuses must agree. (Streams may be missing if
	// the kill came between BeginSession and AddStream.)
	for _, st := range s.Streams {
		if st.Status != s.Status {
			t.Fatalf("round %d: session %s but stream %d %s (torn transaction)", round, s.Status, st.Index, st.Status)
		}
	}
	c0, err := d.LatestCheckpoint(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c0 == nil {
		if prev != 0 {
			t.Fatalf("round %d: checkpoint lost", round)
		}
		t.Logf("round %d: killed before the first checkpoint", round)
		return 0
	}
	if c0.LastIno < prev {
		t.Fatalf("round %d: checkpoint went back from ino %d to %d", round, prev, c0.LastIno)
	}
	c1, err := d.LatestCheckpoint(id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c1 == nil {
		// Killed between the very first checkpoints of the two streams.
		if c0.LastIno != 1 {
			t.Fatalf("round %d: stream 1 has no checkpoint but stream 0 is at ino %d", round, c0.LastIno)
		}
		c1 = &Checkpoint{Stream: 1, LastIno: 0, Data: crashPayload(0)}
	}
	for _, c := range []*Checkpoint{c0, c1} {
		if c.Offset != int64(c.LastIno)*4096 || !bytes.Equal(c.Data, crashPayload(c.LastIno)) {
			t.Fatalf("round %d: stream %d checkpoint fields disagree: ino %d offset %d, %d data bytes",
				round, c.Stream, c.LastIno, c.Offset, len(c.Data))
		}
	}
	// Stream 1 is checkpointed right after stream 0 with the same inode.
	if c1.LastIno != c0.LastIno && c1.LastIno+1 != c0.LastIno {
		t.Fatalf("round %d: stream checkpoints ino %d and %d out of step", round, c0.LastIno, c1.LastIno)
	}
	t.Logf("round %d: %s, checkpoint ino %d", round, s.Status, c0.LastIno)
	return c0.LastIno
}
