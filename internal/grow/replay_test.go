package grow

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// TestGrowReplaysDirtyLog: a crashed image is grown as xfs_growfs would
// grow it once mounted: its log replayed first, in the same atomic edit.
// A dry run replays in memory and writes nothing. The result checks clean
// (ours and xfs_repair -n) and holds what the kernel's own recovery holds.
func TestGrowReplaysDirtyLog(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := mkfs(t, 64<<20)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		writeFile(t, filepath.Join(mnt, "d", fmt.Sprintf("f%03d", i)), 100+i)
	}
	logtest.Crash(t, mnt, false)
	// The kernel's recovery of a copy is the reference.
	ref := filepath.Join(t.TempDir(), "ref.img")
	copyImage(t, img, ref)
	rm := oracle.Mount(t, ref, false)
	oracle.MustBeMounted(t, rm)
	want, err := treecmp.FromDir(rm, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, rm)

	o := Options{Data: true, ExtendTo: 128 << 20, IMaxPct: -1}
	before := oracle.FileHash(t, img)
	dry := o
	dry.DryRun = true
	res, err := Run(img, dry)
	if err != nil || res.LogReplay == nil || !res.LogReplay.InMemory {
		t.Fatalf("dry run of a crashed image: %v, %+v", err, res)
	}
	if oracle.FileHash(t, img) != before {
		t.Fatal("a dry run wrote the image")
	}
	res, err = Run(img, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.LogReplay == nil || res.LogReplay.Transactions == 0 || !strings.Contains(strings.Join(res.Notes, "\n"), "replayed first") {
		t.Fatalf("grow of a crashed image: %+v", res)
	}
	if sb := superblock(t, img); int64(sb.DBlocks)*int64(sb.BlockSize) != 128<<20 {
		t.Fatalf("grown to %d blocks", sb.DBlocks)
	}
	r, err := check.Run(img, check.Options{})
	if err != nil || !r.Clean() || r.DirtyLog {
		t.Fatalf("check after growing: %v, dirty %v, %d findings", err, r.DirtyLog, r.Total())
	}
	oracle.RequireRepairClean(t, img)
	gm := oracle.Mount(t, img, true)
	got, err := treecmp.FromDir(gm, treecmp.Options{})
	oracle.Unmount(t, gm)
	if err != nil {
		t.Fatal(err)
	}
	if d := treecmp.Diff(want, got, treecmp.DiffOptions{Nlink: true}); len(d) > 0 {
		t.Fatalf("the grown image differs from the kernel's recovery:\n%s", strings.Join(d[:min(len(d), 20)], "\n"))
	}
}
