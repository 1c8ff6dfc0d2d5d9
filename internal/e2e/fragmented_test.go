package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"xfskit/internal/oracle"
)

// growFragmentedLastAG grows an image whose last AG the kernel has left
// full and fragmented (free space B-trees of two levels, the AG's end in
// use), with 1 KiB blocks and rmapbt: first within the last AG, then with
// new AGs. Both checkers pass after each step, and the kernel then fills
// all of the new space.
func growFragmentedLastAG(t *testing.T, tl tools, src string) {
	dir := t.TempDir()
	img := filepath.Join(dir, "frag.img")
	tl.run(t, "mkfs", "-q", "-b", "size=1024", "-m", "rmapbt=1", "-p", src, "-d", "size=148m,agsize=32m", img)
	sb := sbFields(t, img, "agcount", "agblocks", "agblklog", "inopblog")
	last := sb["agcount"] - 1
	if last != 4 {
		t.Fatalf("mkfs made %d AGs, want 5", last+1)
	}

	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	// New directories rotate over the AGs, and files go near them: find
	// one in the last AG and fill it with one-block files.
	var frag string
	for i := 0; i < 100 && frag == ""; i++ {
		d := filepath.Join(mnt, "frag", fmt.Sprintf("d%02d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		var st os.FileInfo
		st, _ = os.Stat(d)
		if agOf(inoOf(st), sb) == last {
			frag = d
		}
	}
	if frag == "" {
		t.Fatal("no new directory landed in the last AG")
	}
	for i := 0; i < 1200; i++ {
		if err := os.WriteFile(filepath.Join(frag, fmt.Sprintf("f%04d", i)), pattern(i, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	syncFS(t, mnt) // allocate the files' delayed blocks before the fill takes all the space
	fillWithFallocate(t, filepath.Join(mnt, "fill"))
	for i := 0; i < 1200; i += 2 {
		if err := os.Remove(filepath.Join(frag, fmt.Sprintf("f%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Unmount(t, mnt)
	tl.checkClean(t, img)
	out := oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("agf %d", last), "print bnolevel cntlevel freeblks length")
	if lv, _ := oracle.Field(out, "bnolevel"); lv == "1" {
		t.Fatalf("the last AG's by-block tree has one level; the test needs a taller one:\n%s", out)
	}
	length, _ := oracle.Field(out, "length")
	t.Logf("last AG before growing:\n%s", out)

	// Within the last AG: 148 MiB -> 150 MiB (the AG is 20 MiB long).
	g := tl.grow(t, "--size", "150m", img)
	if n, _ := strconv.ParseUint(length, 10, 32); g.NewAGCount != 5 || g.LastAGAdded != 2048 || uint64(g.LastAGAdded)+n != 22<<10 {
		t.Fatalf("growfs within the fragmented last AG: %+v", g)
	}
	tl.checkClean(t, img)
	g = tl.grow(t, "--size", "260m", img)
	if g.OldAGCount != 5 || g.NewAGCount != 9 {
		t.Fatalf("growfs with new AGs: %+v", g)
	}
	tl.checkClean(t, img)

	mnt = oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	fillWithFallocate(t, filepath.Join(mnt, "fill2"))
	oracle.Unmount(t, mnt)
	tl.checkClean(t, img)
	// Besides the reserve pool (8192 blocks), the kernel keeps blocks
	// in every AG for the rmapbt to grow into.
	var total uint64
	frees := agFreeBlocks(t, img, 9)
	t.Logf("free blocks per AG after the fill: %v", frees)
	for ag, free := range frees {
		total += free
		if ag >= 4 && free > sb["agblocks"]*3/4 {
			t.Errorf("AG %d still has %d of %d blocks free after the kernel filled the grown filesystem", ag, free, sb["agblocks"])
		}
	}
	if total > 8192+9*sb["agblocks"]/8 {
		t.Errorf("%d blocks still free after the kernel filled the grown filesystem", total)
	}
}
