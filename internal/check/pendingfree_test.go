package check_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// TestPendingFree: extents an unfinished extent-free intent still holds
// (unmapped from their file, not yet free: here made so with xfs_db) are
// lost space to the check, and accepted as in use with Options.PendingFree.
func TestPendingFree(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m", "-m", "rmapbt=0,reflink=0")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "f"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := strings.TrimSpace(oracle.Run(t, "stat", "-c", "%i", filepath.Join(mnt, "f")))
	oracle.Unmount(t, mnt)
	out := oracle.DB(t, img, nil, "inode "+ino, "p u3.bmx[0]")
	m := regexp.MustCompile(`\d+:\[(\d+),(\d+),(\d+),(\d+)\]`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no extent in %q", out)
	}
	start, _ := strconv.ParseUint(m[2], 10, 64)
	n, _ := strconv.ParseUint(m[3], 10, 32)
	// The unmap of a truncate to zero, without the free that follows it.
	oracle.DB(t, img, []string{"-x"}, "inode "+ino, "write -d core.nextents 0", "write -d core.size 0", "write -d core.nblocks 0")
	run := func(pending []ondisk.FreeExtent) *check.Report {
		t.Helper()
		fs, err := xfs.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer fs.Close()
		r, err := check.CheckFS(fs, check.Options{PendingFree: pending})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run(nil); r.Clean() {
		t.Fatal("blocks neither free nor used were not reported")
	}
	if r := run([]ondisk.FreeExtent{{Start: start, Len: uint32(n)}}); !r.Clean() {
		t.Fatalf("with the extent pending free: findings:\n%s", findings(r))
	}
	if r := run([]ondisk.FreeExtent{{Start: start, Len: uint32(n) + 1000}}); r.Clean() {
		t.Fatal("a pending free over free space was accepted")
	}
}
