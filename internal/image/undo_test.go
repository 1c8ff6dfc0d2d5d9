package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// edit is one write of an edit sequence.
type edit struct {
	off  int64
	data []byte
}

// editScript is a sequence of transactions over an image; states[i] is the
// image after transaction i-1 commits (states[0] is the original).
type editScript struct {
	txs    [][]edit
	states [][]byte
}

func apply(img []byte, e edit) []byte {
	if end := e.off + int64(len(e.data)); end > int64(len(img)) {
		img = append(img, make([]byte, end-int64(len(img)))...)
	}
	copy(img[e.off:], e.data)
	return img
}

// makeScript builds ntx transactions over a random image of size bytes:
// unaligned writes, writes spanning blocks, rewrites of one block, and
// writes past the end that grow the image.
func makeScript(seed int64, size int64, ntx int) *editScript {
	r := rand.New(rand.NewSource(seed))
	orig := make([]byte, size)
	r.Read(orig)
	s := &editScript{states: [][]byte{orig}}
	cur := append([]byte(nil), orig...)
	for t := 0; t < ntx; t++ {
		var tx []edit
		for i := 0; i < 3+r.Intn(4); i++ {
			var off int64
			switch r.Intn(4) {
			case 0: // aligned block
				off = r.Int63n(int64(len(cur))/4096) * 4096
			case 1: // past the current end
				off = int64(len(cur)) + r.Int63n(10000)
			default:
				off = r.Int63n(int64(len(cur)))
			}
			n := 1 + r.Intn(9000)
			if r.Intn(3) == 0 && len(tx) > 0 { // rewrite inside an earlier write
				off = tx[0].off
			}
			d := make([]byte, n)
			r.Read(d)
			tx = append(tx, edit{off, d})
			cur = apply(cur, edit{off, d})
		}
		s.txs = append(s.txs, tx)
		s.states = append(s.states, append([]byte(nil), cur...))
	}
	return s
}

func writeImage(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runScript runs the script's transactions through u; it returns the index
// of the transaction that failed (len(txs) if none) and the error.
func runScript(u *Undo, s *editScript) (int, error) {
	for i, tx := range s.txs {
		for _, e := range tx {
			if n, err := u.WriteAt(e.data, e.off); err != nil {
				return i, err
			} else if n != len(e.data) {
				return i, fmt.Errorf("short write %d of %d", n, len(e.data))
			}
		}
		if err := u.Commit(); err != nil {
			return i, err
		}
	}
	return len(s.txs), nil
}

// faultUndo opens path under an undo journal whose image and journal
// writes both go through plan.
func faultUndo(t *testing.T, path string, plan *FaultPlan) *Undo {
	t.Helper()
	u, err := OpenFaultyUndo(path, plan)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// abandon drops u as a dying process would: files closed, nothing rolled
// back or removed.
func abandon(u *Undo) {
	if u.j != nil {
		u.j.Close()
	}
	u.dev.Close()
}

func TestUndoCommitRollback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	s := makeScript(1, 64*4096, 3)
	writeImage(t, path, s.states[0])
	u, err := OpenAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	// Transaction 1, committed.
	for _, e := range s.txs[0] {
		if _, err := u.WriteAt(e.data, e.off); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + UndoSuffix); err != nil {
		t.Fatalf("no journal during a transaction: %v", err)
	}
	got := make([]byte, len(s.states[1]))
	if n, err := u.ReadAt(got, 0); n != len(got) || !bytes.Equal(got, s.states[1]) {
		t.Fatalf("reads do not see the writes (n=%d err=%v)", n, err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + UndoSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left after commit: %v", err)
	}
	// Transaction 2, rolled back explicitly.
	for _, e := range s.txs[1] {
		if _, err := u.WriteAt(e.data, e.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Rollback(); err != nil {
		t.Fatal(err)
	}
	if u.Size() != int64(len(s.states[1])) {
		t.Fatalf("size after rollback %d, want %d", u.Size(), len(s.states[1]))
	}
	// Transaction 3 (= script's 2nd), abandoned by Close.
	for _, e := range s.txs[1] {
		if _, err := u.WriteAt(e.data, e.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, path), s.states[1]) {
		t.Fatal("image is not the committed state after rollback and close")
	}
	if _, err := os.Stat(path + UndoSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left after close: %v", err)
	}
}

// TestUndoCrashEveryWrite crashes a multi-transaction edit at every
// mutating operation of image and journal (torn writes; and with a volatile
// cache losing a random subset of unsynced writes) and checks that recovery
// always yields exactly the image before the interrupted transaction.
func TestUndoCrashEveryWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	for seed := int64(1); seed <= 3; seed++ {
		s := makeScript(seed, 48*4096, 3)
		// Count the operations of an uninterrupted run.
		writeImage(t, path, s.states[0])
		plan := &FaultPlan{}
		u := faultUndo(t, path, plan)
		if i, err := runScript(u, s); err != nil || i != len(s.txs) {
			t.Fatalf("clean run: tx %d: %v", i, err)
		}
		u.Close()
		if !bytes.Equal(fileBytes(t, path), s.states[len(s.txs)]) {
			t.Fatal("clean run through the fault layer produced the wrong image")
		}
		total := plan.Ops()
		for _, volatile := range []bool{false, true} {
			for k := 1; k <= total; k++ {
				writeImage(t, path, s.states[0])
				plan := &FaultPlan{CrashAt: k, TornBytes: -1, Volatile: volatile, Seed: seed*1000 + int64(k)}
				u := faultUndo(t, path, plan)
				i, err := runScript(u, s)
				if !errors.Is(err, ErrCrashed) {
					t.Fatalf("seed %d crash at %d/%d: run ended with %v at tx %d", seed, k, total, err, i)
				}
				abandon(u)
				if _, err := Recover(path); err != nil {
					t.Fatalf("seed %d crash at %d/%d (volatile %v): recover: %v", seed, k, total, volatile, err)
				}
				got := fileBytes(t, path)
				if !bytes.Equal(got, s.states[i]) {
					which := "neither"
					if bytes.Equal(got, s.states[i+1]) {
						which = "the new state (commit point not respected)"
					}
					t.Fatalf("seed %d crash at op %d/%d in tx %d (volatile %v): recovered image is %s", seed, k, total, i, volatile, which)
				}
				if _, err := os.Stat(path + UndoSuffix); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("journal left after recovery: %v", err)
				}
			}
		}
	}
}

// TestUndoInjectedError: a failed write or fsync anywhere makes the
// transaction roll back in-process to the previous commit.
func TestUndoInjectedError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	s := makeScript(9, 32*4096, 2)
	writeImage(t, path, s.states[0])
	plan := &FaultPlan{}
	u := faultUndo(t, path, plan)
	runScript(u, s)
	u.Close()
	total := plan.Ops()
	for k := 1; k <= total; k++ {
		writeImage(t, path, s.states[0])
		plan := &FaultPlan{FailAt: k}
		u := faultUndo(t, path, plan)
		i, err := runScript(u, s)
		if !errors.Is(err, ErrInjected) {
			t.Fatalf("fail at %d: %v", k, err)
		}
		// After a failed write, further writes and commit are refused
		// until rollback.
		if u.broken != nil {
			if _, err := u.WriteAt([]byte{1}, 0); err == nil {
				t.Fatalf("fail at %d: write accepted after a failed write", k)
			}
			if err := u.Commit(); err == nil {
				t.Fatalf("fail at %d: commit accepted after a failed write", k)
			}
		}
		if err := u.Rollback(); err != nil {
			t.Fatalf("fail at %d: rollback: %v", k, err)
		}
		u.Close()
		if got := fileBytes(t, path); !bytes.Equal(got, s.states[i]) {
			t.Fatalf("fail at %d (tx %d): image after rollback is not the last commit", k, i)
		}
	}
}

// TestUndoTornJournal builds a journal whose last entry is torn (bad CRC,
// its image block never written) and one with garbage after the entries;
// recovery must restore the earlier entries and ignore the rest.
func TestUndoTornJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	r := rand.New(rand.NewSource(3))
	old := make([]byte, 16*4096)
	r.Read(old)
	writeImage(t, path, old)
	u, err := OpenAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	blk := make([]byte, 4096)
	for _, b := range []int64{2, 7, 11} {
		r.Read(blk)
		if _, err := u.WriteAt(blk, b*4096); err != nil {
			t.Fatal(err)
		}
	}
	jsize := u.JournalSize()
	if want := int64(undoHeaderSize + 3*(undoEntryHdrSize+4096)); jsize != want {
		t.Fatalf("journal holds %d bytes, want %d", jsize, want)
	}
	abandon(u)
	// Tear the third entry and undo its image write, as a crash between
	// the journal append and its fsync would leave things.
	j, err := os.OpenFile(path+UndoSuffix, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	third := int64(undoHeaderSize + 2*(undoEntryHdrSize+4096))
	j.WriteAt(bytes.Repeat([]byte{0xee}, 1000), third+undoEntryHdrSize+2000)
	j.WriteAt(bytes.Repeat([]byte{0x77}, 5000), jsize) // trailing garbage
	j.Close()
	img, _ := os.OpenFile(path, os.O_RDWR, 0)
	img.WriteAt(old[11*4096:12*4096], 11*4096)
	img.Close()
	rolled, err := Recover(path)
	if err != nil || !rolled {
		t.Fatalf("recover: rolled=%v err=%v", rolled, err)
	}
	if !bytes.Equal(fileBytes(t, path), old) {
		t.Fatal("image not restored from the valid journal prefix")
	}

	// A journal with a torn header: nothing was written; it is removed.
	writeImage(t, path+UndoSuffix, []byte(undoMagic+"garbage"))
	if rolled, err := Recover(path); err != nil || rolled {
		t.Fatalf("torn header: rolled=%v err=%v", rolled, err)
	}
	if _, err := os.Stat(path + UndoSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("torn journal not removed")
	}
	// A file that is not a journal is refused and kept.
	writeImage(t, path+UndoSuffix, bytes.Repeat([]byte("not a journal "), 100))
	if _, err := Recover(path); err == nil || !strings.Contains(err.Error(), "not an xfskit undo journal") {
		t.Fatalf("foreign file: %v", err)
	}
	if _, err := OpenAtomic(path); err == nil {
		t.Fatal("OpenAtomic ignored a foreign journal file")
	}
	os.Remove(path + UndoSuffix)
}

// TestUndoIdentity: a journal is not applied to a different image.
func TestUndoIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	s := makeScript(5, 32*4096, 1)
	writeImage(t, path, s.states[0])
	u, err := OpenAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.txs[0] {
		u.WriteAt(e.data, e.off)
	}
	abandon(u)
	// Replace the image by another one under the same name.
	other := makeScript(6, 32*4096, 0).states[0]
	writeImage(t, path, other)
	if _, err := Recover(path); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("identity mismatch not refused: %v", err)
	}
	if !bytes.Equal(fileBytes(t, path), other) {
		t.Fatal("refused recovery changed the image")
	}
	if _, err := os.Stat(path + UndoSuffix); err != nil {
		t.Fatal("refused journal was removed")
	}
}

// TestUndoGrowth: writes past the old end are undone by cutting the image
// back, including after a crash.
func TestUndoGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	old := bytes.Repeat([]byte{0xab}, 10000) // not block aligned
	writeImage(t, path, old)
	u, err := OpenAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt(bytes.Repeat([]byte{1}, 8000), 6000); err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte{2}, 1<<20); err != nil {
		t.Fatal(err)
	}
	if u.Size() != 1<<20+1 {
		t.Fatalf("size %d after growth", u.Size())
	}
	abandon(u)
	if rolled, err := Recover(path); err != nil || !rolled {
		t.Fatalf("recover: %v %v", rolled, err)
	}
	if !bytes.Equal(fileBytes(t, path), old) {
		t.Fatal("grown image not cut back to its old contents")
	}
}

func TestOpenWriteModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	writeImage(t, path, make([]byte, 8192))
	d, err := OpenWrite(path, false)
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt([]byte("abc"), 100)
	if _, err := os.Stat(path + UndoSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("atomic=no created a journal")
	}
	if err := d.Rollback(); !errors.Is(err, ErrNotAtomic) {
		t.Fatalf("Rollback with atomic=no: %v", err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	// The image is locked while open.
	if _, err := OpenAtomic(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a locked image: %v", err)
	}
	d.Close()
	a, err := OpenWrite(path, true)
	if err != nil {
		t.Fatal(err)
	}
	a.WriteAt([]byte("xyz"), 100)
	if err := a.Rollback(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if got := fileBytes(t, path); string(got[100:103]) != "abc" {
		t.Fatalf("after atomic rollback: %q", got[100:103])
	}
}

// TestUndoCostProportional: editing 100 blocks of a 2 GiB sparse image
// costs time and journal space for those blocks only.
func TestUndoCostProportional(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	u, err := OpenAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(7))
	blk := make([]byte, 4096)
	offs := map[int64]bool{}
	for len(offs) < 100 {
		off := r.Int63n((2<<30)/4096) * 4096
		if offs[off] {
			continue
		}
		offs[off] = true
		r.Read(blk)
		if _, err := u.WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
	}
	js := u.JournalSize()
	jst, err := os.Stat(path + UndoSuffix)
	if err != nil || jst.Size() > 1<<20 {
		t.Fatalf("journal file during a 100-block edit: %v, %v", jst.Size(), err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	u.Close()
	el := time.Since(start)
	if max := int64(undoHeaderSize + 100*(undoEntryHdrSize+4096)); js != max {
		t.Fatalf("journal for 100 blocks holds %d bytes, want %d", js, max)
	}
	if el > time.Second {
		t.Fatalf("100-block atomic edit of a 2 GiB image took %v", el)
	}
	st, _ := os.Stat(path)
	if st.Size() != 2<<30 {
		t.Fatalf("image size changed to %d", st.Size())
	}
	t.Logf("100 blocks of 2 GiB: %v, journal %d bytes", el, js)
}

const (
	killChildEnv = "XFSKIT_UNDO_KILL_CHILD" // image path for the child to edit
	killSeedEnv  = "XFSKIT_UNDO_KILL_SEED"
	killTxs      = 30
	killSize     = 256 << 10
)

// TestUndoKillChild is the child side of TestUndoSIGKILL: it runs the edit
// script through OpenAtomic, reporting each commit, until killed.
func TestUndoKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("helper process for TestUndoSIGKILL")
	}
	var seed int64
	fmt.Sscan(os.Getenv(killSeedEnv), &seed)
	s := makeScript(seed, killSize, killTxs)
	u, err := OpenAtomic(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	for i, tx := range s.txs {
		for _, e := range tx {
			if _, err := u.WriteAt(e.data, e.off); err != nil {
				fmt.Println("error", err)
				os.Exit(3)
			}
		}
		if err := u.Commit(); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Printf("committed %d\n", i+1)
	}
	os.Exit(0)
}

// TestUndoSIGKILL kills a real process editing an image at random moments;
// after Recover the image is always one of the committed states: the last
// one the child reported, or the next (killed between commit and report).
func TestUndoSIGKILL(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip("in child")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	run := func(seed int64, killAfter time.Duration) (reported int, out string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestUndoKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path, fmt.Sprintf("%s=%d", killSeedEnv, seed))
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		ready := make(chan struct{})
		done := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				buf.WriteString(sc.Text() + "\n")
				if sc.Text() == "ready" {
					close(ready)
				}
			}
			close(done)
		}()
		if killAfter >= 0 {
			// Kill while editing, not while the child is still starting.
			select {
			case <-ready:
			case <-done:
			}
			time.Sleep(killAfter)
			cmd.Process.Signal(syscall.SIGKILL)
		}
		<-done
		cmd.Wait()
		out = buf.String()
		if strings.Contains(out, "error") {
			t.Fatalf("child failed:\n%s", out)
		}
		for _, line := range strings.Split(out, "\n") {
			var n int
			if _, err := fmt.Sscanf(line, "committed %d", &n); err == nil {
				reported = n
			}
		}
		return reported, out
	}
	// Calibrate: how long an uninterrupted run takes.
	s := makeScript(1, killSize, killTxs)
	writeImage(t, path, s.states[0])
	start := time.Now()
	if n, out := run(1, -1); n != killTxs {
		t.Fatalf("uninterrupted child committed %d of %d:\n%s", n, killTxs, out)
	}
	// An upper bound of the editing time (process start included).
	full := time.Since(start)
	if !bytes.Equal(fileBytes(t, path), s.states[killTxs]) {
		t.Fatal("uninterrupted child left the wrong image")
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	mid := 0
	for it := 0; it < 12; it++ {
		seed := int64(it + 2)
		s := makeScript(seed, killSize, killTxs)
		writeImage(t, path, s.states[0])
		delay := time.Duration(r.Int63n(int64(full)))
		n, _ := run(seed, delay)
		rolled, err := Recover(path)
		if err != nil {
			t.Fatalf("kill after %v: recover: %v", delay, err)
		}
		got := fileBytes(t, path)
		ok := bytes.Equal(got, s.states[n]) || n < killTxs && bytes.Equal(got, s.states[n+1])
		if !ok {
			t.Fatalf("kill after %v (%d commits reported, rolled back %v): image matches no committed state", delay, n, rolled)
		}
		if n > 0 && n < killTxs {
			mid++
		}
	}
	t.Logf("uninterrupted run %v; %d of 12 kills landed mid-sequence", full, mid)
}
