package replay

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
)

// workload does metadata work of every kind in mnt: directories in every
// form, files created, truncated, renamed, hard-linked and removed,
// symlinks inline and remote, and attributes local, leaf and remote.
func workload(t *testing.T, mnt string, tag string) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	p := func(s string) string { return filepath.Join(mnt, tag, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(p("short"), 0o755))
	for _, d := range []struct {
		name string
		n    int
	}{{"short", 3}, {"block", 40}, {"leaf", 300}, {"node", 2500}} {
		must(os.MkdirAll(p(d.name), 0o755))
		for i := 0; i < d.n; i++ {
			name := fmt.Sprintf("%s-entry-with-a-longer-name-%05d", d.name, i)
			must(os.WriteFile(p(d.name+"/"+name), []byte(name), 0o644))
		}
	}
	// Remove some, so directories hold free space and the inodes go.
	for i := 0; i < 2500; i += 3 {
		must(os.Remove(p(fmt.Sprintf("node/node-entry-with-a-longer-name-%05d", i))))
	}
	must(os.WriteFile(p("big"), bytes.Repeat([]byte("x"), 1<<20), 0o644))
	must(os.Truncate(p("big"), 100000))
	must(os.Rename(p("block/block-entry-with-a-longer-name-00001"), p("leaf/renamed")))
	must(os.Link(p("big"), p("short/hardlink")))
	must(os.Symlink("short-target", p("symshort")))
	must(os.Symlink(strings.Repeat("long/", 200), p("symlong")))
	for i := 0; i < 60; i++ {
		oracle.Run(t, "setfattr", "-n", fmt.Sprintf("user.attr%03d", i), "-v", strings.Repeat("v", 40), p("leaf"))
	}
	oracle.Run(t, "setfattr", "-n", "user.small", "-v", "1", p("big"))
	oracle.Run(t, "setfattr", "-n", "user.remote", "-v", strings.Repeat("r", 5000), p("short/short-entry-with-a-longer-name-00000"))
	must(os.RemoveAll(p("block")))
	// A fragmented file: its extent map outgrows the inode, so the inode is
	// logged with a bmbt root (XFS_ILOG_DBROOT).
	args := []string{"-f", "-c", "falloc 0 4m"}
	for i := 0; i < 200; i++ {
		args = append(args, "-c", fmt.Sprintf("fpunch %d 4096", 2*i*4096))
	}
	oracle.Run(t, "xfs_io", append(args, p("fragmented"))...)
}

// crash flushes the log and shuts the filesystem down, so the work stays
// in the log unreplayed, then unmounts. syncfs first runs the deferred
// inactivation of deleted files: inodes left on the unlinked lists make
// replay refuse (see TestRefuseOpenUnlinked).
func crash(t *testing.T, mnt string) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	oracle.Run(t, "sync", "-f", mnt)
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	oracle.Unmount(t, mnt)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	oracle.Run(t, "cp", "--sparse=always", src, dst)
}

func dirty(t *testing.T, img string) *xlog.State {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	st, err := xlog.Find(fs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func counters(t *testing.T, img string) [3]uint64 {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	return [3]uint64{fs.SB.ICount, fs.SB.IFree, fs.SB.FDBlocks}
}

func snapshot(t *testing.T, img string) *treecmp.Tree {
	t.Helper()
	mnt := oracle.Mount(t, img, true)
	tr, err := treecmp.FromDir(mnt, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	return tr
}

// replayAndCompare replays a copy of the dirty image with ours and the
// original with the kernel, then compares everything that must agree.
func replayAndCompare(t *testing.T, img string) *Result {
	t.Helper()
	if st := dirty(t, img); st.Clean {
		t.Fatalf("the crash left a clean log: %v", st)
	}
	ours := filepath.Join(t.TempDir(), "ours.img")
	copyFile(t, img, ours)
	res, err := Run(ours)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before: %v; replay: %+v", dirty(t, img), *res)
	if res.WasClean || res.Transactions == 0 {
		t.Fatalf("nothing replayed: %+v", *res)
	}
	if st := dirty(t, ours); !st.Clean {
		t.Fatalf("log not clean after replay: %v", st)
	}
	r, err := check.Run(ours, check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Clean() || r.DirtyLog {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("check after replay: dirty log %v, findings:\n%s", r.DirtyLog, b.String())
	}
	oracle.RequireRepairClean(t, ours)
	// The kernel's own recovery of the original.
	mnt := oracle.Mount(t, img, false)
	oracle.Unmount(t, mnt)
	if got, want := counters(t, ours), counters(t, img); got != want {
		t.Errorf("superblock icount/ifree/fdblocks: ours %v, kernel's %v", got, want)
	}
	if d := treecmp.Diff(snapshot(t, ours), snapshot(t, img), treecmp.DiffOptions{Nlink: true, Sparse: true}); len(d) > 0 {
		t.Fatalf("tree after our replay differs from the kernel's:\n%s", strings.Join(d[:min(len(d), 40)], "\n"))
	}
	return res
}

func TestReplayMatchesKernel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{"plain", []string{"-m", "rmapbt=0,reflink=0"}},
		{"rmap-reflink", []string{"-m", "rmapbt=1,reflink=1"}},
		{"1k-blocks", []string{"-b", "size=1024", "-m", "rmapbt=1"}},
		// The smallest log: it wraps, and the kernel writes metadata back
		// early, so replay must skip what the disk already has.
		{"small-log", []string{"--unsupported", "-l", "size=1368b"}},
		// 4 KiB sectors: AG headers and log writes are whole sectors, and
		// a log stripe unit pads the unmount record.
		{"4k-sectors-lsunit", []string{"-s", "size=4096", "-l", "su=32k", "-i", "size=1024"}},
		// Legacy timestamps (two 32-bit halves in the log dinode) and
		// 64-bit extent counters.
		{"bigtime-off", []string{"-m", "bigtime=0,inobtcount=0"}},
		{"nrext64", []string{"-i", "nrext64=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := oracle.Mkfs(t, "300m", tc.opts...)
			mnt := oracle.Mount(t, img, false)
			workload(t, mnt, "a")
			// Written back: replay must skip what the disk already has.
			oracle.Run(t, "sync", "-f", mnt)
			workload(t, mnt, "b")
			if tc.name == "small-log" {
				workload(t, mnt, "c")
				workload(t, mnt, "d")
			}
			oracle.Run(t, "cp", "--reflink=auto", filepath.Join(mnt, "a", "big"), filepath.Join(mnt, "b", "copy"))
			crash(t, mnt)
			replayAndCompare(t, img)
		})
	}
}

// TestCleanLogUntouched: a clean log is left alone, nothing written.
func TestCleanLogUntouched(t *testing.T) {
	img := oracle.Mkfs(t, "300m")
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(img)
	if err != nil {
		t.Fatal(err)
	}
	if !res.WasClean {
		t.Fatalf("fresh image: %+v", *res)
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Fatal("a clean image changed")
	}
	if _, err := os.Stat(img + ".xfskit-undo"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("undo journal left behind: %v", err)
	}
}

// TestReplaySkipsNewerMetadata puts the dirty log back into an image the
// kernel already recovered: every block on disk is at least as new as the
// log's transactions, so replay must skip the buffers (by their LSNs) and
// leave a filesystem equal to the kernel's.
func TestReplaySkipsNewerMetadata(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	crash(t, mnt)
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	l, err := xlog.Open(fs)
	if err != nil {
		t.Fatal(err)
	}
	logOff, logLen := int64(l.Daddr(0))*512, int(l.Blocks())*512
	fs.Close()
	dirtyLog := make([]byte, logLen)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(dirtyLog, logOff); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mnt = oracle.Mount(t, img, false)
	oracle.Unmount(t, mnt)
	hybrid := filepath.Join(t.TempDir(), "hybrid.img")
	copyFile(t, img, hybrid)
	hf, err := os.OpenFile(hybrid, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hf.WriteAt(dirtyLog, logOff); err != nil {
		t.Fatal(err)
	}
	hf.Close()
	res, err := Run(hybrid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay: %+v", *res)
	// Blocks without an LSN of their own (inode buffers, remote attribute
	// values) and reused blocks replay anyway, harmlessly: the tree and
	// xfs_repair below judge the result.
	if res.BufSkipped == 0 {
		t.Fatalf("replay over newer metadata skipped no buffer (%d replayed)", res.Buffers)
	}
	oracle.RequireRepairClean(t, hybrid)
	if d := treecmp.Diff(snapshot(t, hybrid), snapshot(t, img), treecmp.DiffOptions{Nlink: true, Sparse: true}); len(d) > 0 {
		t.Fatalf("tree differs from the kernel's:\n%s", strings.Join(d[:min(len(d), 40)], "\n"))
	}
}
