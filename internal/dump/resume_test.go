package dump

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
	"xfskit/inventory"
)

// childEnv makes the test binary run one dump (see TestMain) instead of
// the tests: the process the resume tests kill.
const childEnv = "XFSKIT_DUMP_TEST_CHILD"

// childSpec is the dump a child process runs.
type childSpec struct {
	Image     string
	Dests     []string
	Inventory string
	MediaSize int64
	ChunkSize int
	Level     int
	Resume    bool
	Delay     time.Duration // before each file and 4 KiB of data, so that kills land mid-dump
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o := Options{Image: s.Image, Dests: s.Dests, Inventory: s.Inventory, MediaSize: s.MediaSize,
		ChunkSize: s.ChunkSize, Level: s.Level, Resume: s.Resume, Concurrency: 1,
		beforeFile: func(uint64) { time.Sleep(s.Delay) },
		onData:     func(n int) { time.Sleep(s.Delay * time.Duration(n>>12)) }}
	if _, err := Dump(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts a child dump and returns a channel that receives its
// exit error.
func startChild(t *testing.T, s childSpec) (*exec.Cmd, chan error) {
	t.Helper()
	b, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// TestKillResume kills dump processes (SIGKILL) at random moments, up to
// three times per session (the later ones while resuming), then resumes in
// this process: the streams (two, split into media files) read back
// exactly as an uninterrupted dump's, and the inventory holds one complete
// session whose media files are all recorded.
func TestKillResume(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	const mediaSize, chunk = 1 << 20, 64 << 10
	ref := dumpT(t, Options{Image: img, Dests: dests(t, 2), Inventory: filepath.Join(t.TempDir(), "inv.db"), MediaSize: mediaSize, ChunkSize: chunk})
	want := readStreams(t, mediaOf(ref)).signature()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	resumed := 0
	for trial := range 5 {
		dir := t.TempDir()
		spec := childSpec{Image: img, Dests: []string{filepath.Join(dir, "s0"), filepath.Join(dir, "s1")},
			Inventory: filepath.Join(dir, "inv.db"), MediaSize: mediaSize, ChunkSize: chunk, Delay: time.Millisecond}
		finished := false
		kills := 1 + rng.IntN(3)
		for k := 0; k < kills && !finished; k++ {
			// Resume once a session exists (a kill may land before).
			spec.Resume = sessionBegun(t, spec.Inventory)
			cmd, done := startChild(t, spec)
			wait := time.Duration(rng.IntN(1200)) * time.Millisecond
			if trial == 0 && k == 0 {
				// At least one kill lands after the streams have begun.
				waitForData(t, stream.MediaName(spec.Dests[0], 0))
				wait = time.Duration(rng.IntN(300)) * time.Millisecond
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("trial %d: child dump failed: %v", trial, err)
				}
				finished = true
			case <-time.After(wait):
				cmd.Process.Kill()
				<-done
				left, _ := filepath.Glob(filepath.Join(dir, "s*"))
				var sizes []int64
				for _, f := range left {
					if fi, err := os.Stat(f); err == nil {
						sizes = append(sizes, fi.Size())
					}
				}
				t.Logf("trial %d: killed dump %d after %v: media sizes %v", trial, k, wait, sizes)
			}
		}
		r, err := Dump(context.Background(), Options{Image: img, Resume: true, Inventory: spec.Inventory})
		switch {
		case errors.Is(err, ErrNothingToResume):
			db := openInv(t, spec.Inventory)
			ss, _ := db.Sessions(inventory.Filter{})
			if len(ss) == 0 {
				// Killed before the session began: dump afresh.
				r = dumpT(t, Options{Image: img, Dests: spec.Dests, Inventory: spec.Inventory, MediaSize: mediaSize, ChunkSize: chunk})
			} else if len(ss) != 1 || ss[0].Status != inventory.StatusComplete {
				t.Fatalf("trial %d: nothing to resume, inventory %+v", trial, ss)
			} else {
				r = &Result{SessionID: ss[0].ID}
				for _, st := range ss[0].Streams {
					var media []string
					for _, m := range st.Media {
						media = append(media, m.Path)
					}
					r.Streams = append(r.Streams, StreamResult{Media: media})
				}
			}
		case err != nil:
			t.Fatalf("trial %d: resume: %v", trial, err)
		default:
			resumed++
			if !r.Resumed || len(r.Problems) > 0 {
				t.Fatalf("trial %d: result %+v", trial, r)
			}
			var sum int64
			for _, s := range r.Streams {
				for _, m := range s.Media {
					fi, err := os.Stat(m)
					if err != nil {
						t.Fatal(err)
					}
					sum += fi.Size()
				}
			}
			if sum != r.Bytes {
				t.Fatalf("trial %d: resumed result says %d bytes, media hold %d", trial, r.Bytes, sum)
			}
		}
		if got := readStreams(t, mediaOf(r)).signature(); got != want {
			t.Fatalf("trial %d: resumed streams differ from an uninterrupted dump", trial)
		}
		db := openInv(t, spec.Inventory)
		ss, err := db.Sessions(inventory.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 1 || ss[0].Status != inventory.StatusComplete || ss[0].ID != r.SessionID || len(ss[0].Streams) != 2 {
			t.Fatalf("trial %d: inventory %+v", trial, ss)
		}
		for k, st := range ss[0].Streams {
			if st.Status != inventory.StatusComplete || len(st.Media) != len(r.Streams[k].Media) {
				t.Fatalf("trial %d: stream %d %+v, media %v", trial, k, st, r.Streams[k].Media)
			}
			var sum int64
			for _, m := range st.Media {
				fi, err := os.Stat(m.Path)
				if err != nil || fi.Size() != m.Bytes {
					t.Fatalf("trial %d: media %+v: %v", trial, m, err)
				}
				sum += m.Bytes
			}
			if sum != st.Bytes {
				t.Fatalf("trial %d: stream %d: media hold %d bytes, inventory says %d", trial, k, sum, st.Bytes)
			}
		}
		// Nothing left to resume.
		if _, err := Dump(context.Background(), Options{Image: img, Resume: true, Inventory: spec.Inventory}); !errors.Is(err, ErrNothingToResume) {
			t.Fatalf("trial %d: second resume: %v", trial, err)
		}
	}
	if resumed == 0 {
		t.Fatal("no trial exercised a resume")
	}
}

// sessionBegun reports whether the inventory at path records a session.
func sessionBegun(t *testing.T, path string) bool {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return false
	}
	db, err := inventory.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ss, err := db.Sessions(inventory.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(ss) > 0
}

// waitForData waits until file holds data.
func waitForData(t *testing.T, file string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no data after 30s", file)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForLock waits until another process holds the lock on file.
func waitForLock(t *testing.T, file string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if f, err := os.Open(file); err == nil {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			f.Close() // releases it if we got it
			if err == syscall.EWOULDBLOCK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not locked after 30s", file)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestResumeRefusals: a running dump's session is not taken over, and a
// changed filesystem is not resumed.
func TestResumeRefusals(t *testing.T) {
	img := oracle.CorpusCopy(t, oracle.CorpusOptions{})
	dir := t.TempDir()
	spec := childSpec{Image: img, Dests: []string{filepath.Join(dir, "s0")}, Inventory: filepath.Join(dir, "inv.db"), Delay: 5 * time.Millisecond}
	cmd, done := startChild(t, spec)
	// Wait for the dump to hold its stream, then try to resume it under
	// the running dump's feet.
	waitForLock(t, spec.Dests[0])
	_, err := Dump(context.Background(), Options{Image: img, Resume: true, Inventory: spec.Inventory})
	if err == nil || errors.Is(err, ErrNothingToResume) {
		t.Fatalf("resuming a running dump: %v", err)
	}
	t.Logf("resuming a running dump: %v", err)
	cmd.Process.Kill()
	<-done
	db := openInv(t, spec.Inventory)
	ss, _ := db.Sessions(inventory.Filter{})
	if len(ss) != 1 || ss[0].Status != inventory.StatusInProgress {
		t.Fatalf("the refused resume changed the session: %+v", ss)
	}
	// Change the filesystem: the session can no longer be resumed.
	mnt := oracle.MountCorpus(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "changed"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	_, err = Dump(context.Background(), Options{Image: img, Resume: true, Inventory: spec.Inventory})
	if err == nil || errors.Is(err, ErrNothingToResume) {
		t.Fatalf("resuming after a change: %v", err)
	}
	t.Logf("resuming after a change: %v", err)
}

// TestResumeStateNames: names in the resume state are bytes and come back
// exactly, UTF-8 or not (JSON alone would turn \xfe and \xff into the
// same U+FFFD, and resume would reopen the wrong destination).
func TestResumeStateNames(t *testing.T) {
	st := resumeState{Version: resumeStateVersion, Image: "/img/\xfe.img", Dest: "/b/\xff-stream", Subtrees: []string{"\xfe", "ok", "\x00odd"},
		SessionLabel: "l\xe9", MediaLabel: "m", FSLabel: "fs"}
	b := st.marshal()
	got, err := unmarshalResumeState(b)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, st)
	}
	if st.Subtrees[0] != "\xfe" {
		t.Error("marshal changed the caller's subtrees")
	}
	if _, err := unmarshalResumeState([]byte(`{"v":1,"dest":"\u0000zz"}`)); err == nil {
		t.Error("a bad encoded name was accepted")
	}
}
