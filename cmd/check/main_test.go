package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/clitest"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
)

// TestCommandLine runs check as a user would and holds it to its exit
// statuses: 0 clean, 1 corruption (here a superblock counter xfs_db
// damaged), 2 dirty log, 3 usage, 4 unreadable image or an unfinished
// edit (undo journal); --json parses and
// agrees with the status.
func TestCommandLine(t *testing.T) {
	bin := clitest.Build(t, ".", "check")
	dir := t.TempDir()
	for _, args := range [][]string{{}, {"a", "b"}, {"--bogus", "a"}} {
		if _, e, code := clitest.Run(bin, args...); code != 3 || e == "" {
			t.Errorf("%v: exit %d (want 3), stderr %q", args, code, e)
		}
	}
	missing := filepath.Join(dir, "missing.img")
	if _, e, code := clitest.Run(bin, missing); code != 4 || !strings.Contains(e, missing) {
		t.Errorf("missing image: exit %d (want 4), stderr %q", code, e)
	}
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, e, code := clitest.Run(bin, zeros); code != 1 || !strings.Contains(out+e, "superblock") {
		t.Errorf("not XFS: exit %d (want 1), output %q %q", code, out, e)
	}

	oracle.Require(t, oracle.Tools)
	img := oracle.Mkfs(t, "512m")
	type report struct {
		Findings []struct{ Structure, Message string }
		Total    int
		DirtyLog bool `json:"dirty_log"`
		Stats    struct{ Inodes int64 }
	}
	checkJSON := func(wantCode int) report {
		t.Helper()
		out, e, code := clitest.Run(bin, "--json", img)
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != wantCode {
			t.Fatalf("--json: exit %d (want %d), %v\n%s\n%s", code, wantCode, err, out, e)
		}
		return r
	}
	if _, e, code := clitest.Run(bin, img); code != 0 || !strings.Contains(e, "clean") {
		t.Fatalf("fresh image: exit %d, stderr %q", code, e)
	}
	if r := checkJSON(0); r.Total != 0 || len(r.Findings) != 0 || r.Stats.Inodes < 3 || r.DirtyLog {
		t.Errorf("fresh image report %+v", r)
	}
	// An undo journal left by an interrupted growfs: the image is half
	// changed, so it is not checked (and not called clean).
	if err := os.WriteFile(img+".xfskit-undo", make([]byte, 512), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, e, code := clitest.Run(bin, img); code != 4 || !strings.Contains(e, img+".xfskit-undo") || strings.Contains(out+e, "clean") {
		t.Errorf("pending undo journal: exit %d (want 4), output %q %q", code, out, e)
	}
	if err := os.Remove(img + ".xfskit-undo"); err != nil {
		t.Fatal(err)
	}

	oracle.DB(t, img, []string{"-x"}, "sb 0", "write -d icount 999999")
	r := checkJSON(1)
	found := false
	for _, f := range r.Findings {
		found = found || strings.Contains(f.Message, "icount")
	}
	if r.Total == 0 || !found {
		t.Errorf("damaged icount: report %+v", r)
	}
	if out, _, code := clitest.Run(bin, "-q", img); code != 1 || !strings.Contains(out, "icount") {
		t.Errorf("damaged icount, -q: exit %d, output %q", code, out)
	}

	oracle.Require(t, oracle.Root, oracle.Loop)
	dirty := oracle.Mkfs(t, "512m")
	mnt := oracle.Mount(t, dirty, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Mounted read-write: refused like xfs_repair -n does (exit 4); a
	// read-only mount is consistent on disk and is checked.
	if _, e, code := clitest.Run(bin, dirty); code != 4 || !strings.Contains(e, "mounted read-write at "+mnt) {
		t.Errorf("read-write mounted image: exit %d (want 4), stderr %q", code, e)
	}
	oracle.Run(t, "mount", "-o", "remount,ro", mnt)
	if _, e, code := clitest.Run(bin, dirty); code != 0 {
		t.Errorf("read-only mounted image: exit %d (want 0), stderr %q", code, e)
	}
	oracle.Run(t, "mount", "-o", "remount,rw", mnt)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "g"), []byte("more"), 0o644); err != nil {
		t.Fatal(err)
	}
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	oracle.Run(t, "umount", mnt)
	if _, e, code := clitest.Run(bin, dirty); code != 2 || !strings.Contains(e, "dirty") {
		t.Errorf("dirty log: exit %d (want 2), stderr %q", code, e)
	}
}

// TestDirtyLogCheckedInMemory: the metadata of an image that was not
// cleanly unmounted is checked as its log's replay would leave it, the log
// replayed in memory: nothing is written, the exit status stays 2 for a
// clean result and is 1 when that state has problems (here an inode xfs_db
// damaged outside the log). A log leaving work only the kernel finishes (a
// file deleted while open) is not judged.
func TestDirtyLogCheckedInMemory(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	bin := clitest.Build(t, ".", "check")
	var rep struct {
		Total    int
		DirtyLog bool `json:"dirty_log"`
		Stats    struct{ Inodes int64 }
		Replayed *struct{ Transactions int } `json:"replayed_in_memory"`
		Findings []struct{ Message string }
	}
	img, oldIno := crashed(t, false)
	before := oracle.FileHash(t, img)
	if _, e, code := clitest.Run(bin, img); code != 2 || !strings.Contains(e, "would leave it, the filesystem is clean") || !strings.Contains(e, "check --replay") {
		t.Fatalf("crashed image: exit %d (want 2), stderr %q", code, e)
	}
	out, e, code := clitest.Run(bin, "--json", img)
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 || !rep.DirtyLog || rep.Total != 0 ||
		rep.Replayed == nil || rep.Replayed.Transactions == 0 || rep.Stats.Inodes < 200 {
		t.Fatalf("crashed image --json: exit %d, %v: %s %s", code, err, out, e)
	}
	if oracle.FileHash(t, img) != before {
		t.Fatal("check wrote the crashed image")
	}
	// Damage outside the log shows in the replayed state.
	oracle.DB(t, img, []string{"-x"}, "inode "+oldIno, "write -d core.magic 0")
	out, e, code = clitest.Run(bin, img)
	if code != 1 || !strings.Contains(e, "as its replay (done in memory, nothing written) would leave it, the filesystem has") || !strings.Contains(out, oldIno) {
		t.Fatalf("crashed image with a damaged inode %s: exit %d (want 1), output %q %q", oldIno, code, out, e)
	}

	// A file deleted while open stays on its unlinked list, which is
	// judged as a list: clean here, and a member with links is not.
	img, _ = crashed(t, true)
	if _, e, code := clitest.Run(bin, img); code != 2 || !strings.Contains(e, "would leave it, the filesystem is clean") {
		t.Fatalf("crashed image with an open-unlinked file: exit %d (want 2), stderr %q", code, e)
	}
}

// crashed makes a kernel image whose last changes (a directory of 200
// files) are only in its log; with openUnlinked, a file deleted while open
// too. oldIno is a file written in place before them.
func crashed(t *testing.T, openUnlinked bool) (img string, oldIno string) {
	t.Helper()
	img = oracle.Mkfs(t, "512m")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "old"), []byte("written in place"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Freezing writes every change in place and empties the log.
	oracle.Run(t, "xfs_io", "-x", "-c", "freeze", "-c", "thaw", mnt)
	oldIno = strings.TrimSpace(oracle.Run(t, "stat", "-c", "%i", filepath.Join(mnt, "old")))
	if err := os.Mkdir(filepath.Join(mnt, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := os.WriteFile(filepath.Join(mnt, "new", fmt.Sprintf("file-%03d", i)), []byte("in the log"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logtest.Crash(t, mnt, openUnlinked)
	return img, oldIno
}

// TestPrintLog: --print-log lists a dirty log's transactions (text and
// JSON) without checking or writing anything, and refuses --replay.
func TestPrintLog(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	bin := clitest.Build(t, ".", "check")
	img, _ := crashed(t, false)
	before := oracle.FileHash(t, img)
	out, e, code := clitest.Run(bin, "--print-log", img)
	if code != 0 || !strings.Contains(out, "transaction at LSN") || !strings.Contains(out, "INODE") || !strings.Contains(out, "dirty") {
		t.Fatalf("--print-log: exit %d, %q %q", code, out, e)
	}
	var ls struct {
		Clean        bool
		Transactions []struct{ Items []struct{ Type string } }
		Counts       map[string]int `json:"item_counts"`
	}
	out, e, code = clitest.Run(bin, "--print-log", "--json", img)
	if err := json.Unmarshal([]byte(out), &ls); err != nil || code != 0 || ls.Clean || len(ls.Transactions) == 0 || ls.Counts["INODE"] < 200 {
		t.Fatalf("--print-log --json: exit %d, %v: %.500s %s", code, err, out, e)
	}
	if _, e, code := clitest.Run(bin, "--print-log", "--replay", img); code != 3 {
		t.Fatalf("--print-log --replay: exit %d (want 3), %q", code, e)
	}
	if oracle.FileHash(t, img) != before {
		t.Fatal("--print-log wrote the image")
	}
}
