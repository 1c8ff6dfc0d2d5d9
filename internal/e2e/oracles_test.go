package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// growVsKernel grows two copies of an image made by mkfs -p: one with
// growfs offline, one with xfs_growfs on a loop mount. The superblock
// counters and every AG's length, free space and inode counts must agree
// after each step (within the last AG, new AGs). In the AG that was
// extended, the kernel also tops up the free list from the free space
// (its xfs_free_extent fixes the list; growfs leaves that to the first
// allocation), so there free + free list + B-tree blocks must agree.
func growVsKernel(t *testing.T, tl tools, src string) {
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "ours.img"), filepath.Join(dir, "theirs.img")
	tl.run(t, "mkfs", "-q", "-b", "size=1024", "-m", "rmapbt=1", "-p", src, "-d", "size=150000k,agsize=40m", ours)
	oracle.Run(t, "cp", "--sparse=always", ours, theirs)
	extended := map[int]bool{} // state index (AG + 1) of every AG extended so far
	for _, size := range []string{"160m", "400m"} {
		g := tl.grow(t, "--size", size, ours)
		if g.LastAGAdded > 0 {
			extended[int(g.OldAGCount)] = true
		}
		oracle.Run(t, "truncate", "-s", size, theirs)
		mnt := oracle.Mount(t, theirs, false)
		oracle.Run(t, "xfs_growfs", "-d", mnt)
		oracle.Unmount(t, mnt)
		tl.checkClean(t, ours)
		a, b := growState(t, ours), growState(t, theirs)
		for i := range max(len(a), len(b)) {
			if i < len(a) && i < len(b) && extended[i] {
				for _, m := range []map[string]uint64{a[i], b[i]} {
					m["free+flcount+btreeblks"] = m["freeblks"] + m["flcount"] + m["btreeblks"]
					delete(m, "freeblks")
					delete(m, "flcount")
					delete(m, "longest")
				}
			}
			if i >= len(a) || i >= len(b) || fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
				t.Errorf("after growing to %s, growfs and xfs_growfs disagree on %s:\n growfs:     %v\n xfs_growfs: %v", size, growStateName(i), at(a, i), at(b, i))
			}
		}
	}
}

func growStateName(i int) string {
	if i == 0 {
		return "the superblock"
	}
	return fmt.Sprintf("AG %d", i-1)
}

func at(ms []map[string]uint64, i int) map[string]uint64 {
	if i < len(ms) {
		return ms[i]
	}
	return nil
}

// growState reads what growing decides: the superblock's geometry and
// counters, then per AG its length, free space and inode counts.
func growState(t *testing.T, img string) []map[string]uint64 {
	t.Helper()
	sb := sbFields(t, img, "agcount", "dblocks", "fdblocks", "icount", "ifree", "imax_pct")
	state := []map[string]uint64{sb}
	for ag := uint64(0); ag < sb["agcount"]; ag++ {
		out := oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("agf %d", ag), "print length freeblks longest flcount btreeblks",
			fmt.Sprintf("agi %d", ag), "print count freecount")
		m := map[string]uint64{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, _ := strings.Cut(line, " = ")
			n, err := strconv.ParseUint(v, 0, 64)
			if err != nil {
				t.Fatalf("xfs_db: %q: %v", line, err)
			}
			m[k] = n
		}
		state = append(state, m)
	}
	return state
}

// xfsdumpReadsOurImage: xfsdump (through the kernel's bulkstat, which walks
// the inode B-trees) and xfsrestore carry the tree of an image made by
// mkfs -p and grown by growfs. xfsrestore keeps whole seconds only, no
// symlink times and no dates past 2038, so times are not compared.
func xfsdumpReadsOurImage(t *testing.T, img string, want *treecmp.Tree) {
	oracle.Require(t, oracle.Dump)
	dir := t.TempDir()
	// xfsrestore assumes the root directory's generation is 0, as
	// mkfs.xfs and the kernel make it; with another it restores
	// everything into orphanage/ (finding F4, fixed in 939857b).
	root := fmt.Sprintf("inode %d", sbFields(t, img, "rootino")["rootino"])
	if gen, _ := oracle.Field(oracle.DB(t, img, []string{"-r"}, root, "print core.gen"), "core.gen"); gen != "0" {
		t.Errorf("the root inode's generation is %s, not 0", gen)
	}
	mnt := oracle.Mount(t, img, true)
	dumpFile := filepath.Join(dir, "xfsdump")
	oracle.Run(t, "xfsdump", "-J", "-l", "0", "-L", "e2e", "-M", "e2e", "-f", dumpFile, mnt)
	oracle.Unmount(t, mnt)
	dest := filepath.Join(scratchXFS(t, 4096), "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	oracle.Run(t, "xfsrestore", "-J", "-f", dumpFile, dest)
	sameTree(t, "xfsrestore of xfsdump of the grown image vs the source", withoutTimes(want), withoutTimes(snapshot(t, dest)),
		treecmp.DiffOptions{Sparse: true, Nlink: true, Skip: func(p string) bool { return p == "." }}) // xfsrestore leaves DEST's own mode
}

// withoutTimes is a copy of tr with every timestamp cleared.
func withoutTimes(tr *treecmp.Tree) *treecmp.Tree {
	es := make([]treecmp.Entry, len(tr.Entries))
	for i, e := range tr.Entries {
		e.Mtime, e.Atime = treecmp.Timestamp{}, treecmp.Timestamp{}
		es[i] = e
	}
	return treecmp.NewTree(es)
}
