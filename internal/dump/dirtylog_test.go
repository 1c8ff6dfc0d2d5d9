package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// crashedImage makes a kernel image whose last changes are only in its
// log: files, directories, xattrs, a rename, removals, and a file deleted
// while still open (left on an AGI unlinked list).
func crashedImage(t *testing.T) string {
	t.Helper()
	img := oracle.Mkfs(t, "512m", "-m", "rmapbt=1,reflink=1")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	p := func(s string) string { return filepath.Join(mnt, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("old"), []byte("written back before the crash"), 0o644))
	oracle.Run(t, "sync", "-f", mnt)
	for _, d := range []string{"many", "gone"} {
		must(os.Mkdir(p(d), 0o755))
		for i := range 1500 {
			must(os.WriteFile(p(fmt.Sprintf("%s/file-with-a-long-name-%04d", d, i)), []byte(fmt.Sprint(i)), 0o640))
		}
	}
	must(os.RemoveAll(p("gone")))
	must(os.WriteFile(p("big"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o600))
	oracle.Run(t, "setfattr", "-n", "user.note", "-v", "in the log only", p("big"))
	must(os.Rename(p("old"), p("renamed")))
	must(os.Symlink("renamed", p("link")))
	logtest.Crash(t, mnt, true)
	return img
}

// TestDirtyLogReplayedInMemory: an image that was not cleanly unmounted is
// dumped as the kernel's recovery would leave it (the log replayed in
// memory), the image is not written, and the result says so.
func TestDirtyLogReplayedInMemory(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := crashedImage(t)
	before := oracle.FileHash(t, img)
	r := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: filepath.Join(t.TempDir(), "inv.db")})
	if oracle.FileHash(t, img) != before {
		t.Fatal("the dump wrote the image")
	}
	if r.LogReplay == nil || r.LogReplay.Transactions == 0 || r.LogReplay.UnlinkedInodes == 0 {
		t.Fatalf("log replay: %+v", r.LogReplay)
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "replayed in memory") || !strings.Contains(r.Notes[0], "deleted while open") {
		t.Errorf("notes: %q", r.Notes)
	}
	got := readStreams(t, mediaOf(r)).tree(t)
	oracle.Unmount(t, oracle.Mount(t, img, false)) // the kernel's own recovery
	want := kernelTree(t, img)
	if want.Lookup("many/file-with-a-long-name-1499") == nil || want.Lookup("renamed") == nil || want.Lookup("gone") != nil {
		t.Fatal("the kernel's recovery does not hold the logged changes")
	}
	if diff := treecmp.Diff(want, got, aclOnce); len(diff) > 0 {
		t.Fatalf("the dump of the crashed image differs from the kernel's recovery:\n%s", strings.Join(diff[:min(len(diff), 40)], "\n"))
	}
}

// TestDirtyLogRefused: a log that cannot be replayed in memory (here a
// damaged record in its middle) is refused with a clear error, and nothing
// is recorded or written.
func TestDirtyLogRefused(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := crashedImage(t)
	logtest.DamageFirstRecord(t, img)
	before := oracle.FileHash(t, img)
	dir := t.TempDir()
	_, err := Dump(t.Context(), Options{Image: img, Dests: []string{filepath.Join(dir, "s")}, Inventory: filepath.Join(dir, "inv.db")})
	if !errors.Is(err, ErrDirtyLog) || !strings.Contains(err.Error(), "CRC mismatch") || !strings.Contains(err.Error(), "Mount and unmount it once") {
		t.Fatalf("dirty log: %v", err)
	}
	t.Logf("%v", err)
	if _, err := os.Stat(filepath.Join(dir, "s")); err == nil {
		t.Error("a stream was written for a refused image")
	}
	if _, err := os.Stat(filepath.Join(dir, "inv.db")); err == nil {
		t.Error("the inventory was touched for a refused image")
	}
	if oracle.FileHash(t, img) != before {
		t.Error("the image changed")
	}
}

// TestDirtyLogResume: a dump of a crashed image killed mid-way resumes
// (the log is replayed in memory again, to the same state) and its streams
// equal an uninterrupted dump's.
func TestDirtyLogResume(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := crashedImage(t)
	before := oracle.FileHash(t, img)
	ref := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: filepath.Join(t.TempDir(), "inv.db"), ChunkSize: 64 << 10})
	want := readStreams(t, mediaOf(ref)).signature()
	// 5 ms before each file: the dump takes several seconds, and the kill
	// lands after its session began (the stream itself is written in 4 MiB
	// blocks, so its first data comes only at the end).
	var r *Result
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		dir := t.TempDir()
		spec := childSpec{Image: img, Dests: []string{filepath.Join(dir, "s0")}, Inventory: filepath.Join(dir, "inv.db"),
			ChunkSize: 64 << 10, Delay: 5 * time.Millisecond}
		cmd, done := startChild(t, spec)
		time.Sleep(wait)
		cmd.Process.Kill()
		if err := <-done; err == nil {
			t.Fatal("the dump finished before it was killed")
		}
		var err error
		r, err = Dump(context.Background(), Options{Image: img, Resume: true, Inventory: spec.Inventory})
		if errors.Is(err, ErrNothingToResume) && !sessionBegun(t, spec.Inventory) {
			t.Logf("killed after %v, before the session began: again", wait)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if r == nil {
		t.Fatal("no kill landed inside the session")
	}
	if !r.Resumed || r.LogReplay == nil {
		t.Fatalf("resumed %v, log replay %+v", r.Resumed, r.LogReplay)
	}
	if got := readStreams(t, mediaOf(r)).signature(); got != want {
		t.Fatal("the resumed dump of the crashed image differs from an uninterrupted one")
	}
	if oracle.FileHash(t, img) != before {
		t.Fatal("a dump wrote the crashed image")
	}
}
