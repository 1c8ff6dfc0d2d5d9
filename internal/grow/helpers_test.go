package grow

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// mkfs makes an image of size bytes with mkfs.xfs and opts; small sizes are
// allowed as fstests allows them.
func mkfs(t testing.TB, size int64, opts ...string) string {
	t.Helper()
	oracle.Require(t, oracle.Tools)
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mkfs.xfs", append(append([]string{"-q", "-f"}, opts...), img)...)
	cmd.Env = append(os.Environ(), "TEST_DIR=/nonexistent", "TEST_DEV=/nonexistent", "QA_CHECK_FS=xfs")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", opts, err, out)
	}
	return img
}

// copyImage copies an image, keeping holes.
func copyImage(t testing.TB, src, dst string) {
	t.Helper()
	oracle.Run(t, "cp", "--sparse=always", src, dst)
}

func superblock(t testing.TB, img string) *ondisk.Superblock {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	return fs.SB
}

func agfOf(t testing.TB, img string, agno uint32) *ondisk.AGF {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	agf, err := fs.AGF(agno)
	if err != nil {
		t.Fatal(err)
	}
	return agf
}

func writeFile(t testing.TB, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fill writes files through a kernel mount: a few large ones, and in
// fragDirs directories many one-block files of which every other one is
// removed, leaving free space in many small extents. It returns a snapshot
// of the tree.
func fill(t testing.TB, img string, fragFiles int) *treecmp.Tree {
	t.Helper()
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	sb := superblock(t, img)
	for i := range 3 {
		writeFile(t, filepath.Join(mnt, fmt.Sprintf("big%d", i)), 1<<20+i*4099)
	}
	if err := os.Symlink("big0", filepath.Join(mnt, "link")); err != nil {
		t.Fatal(err)
	}
	// One directory per AG (directories rotate through the AGs), so
	// that every AG, the last one included, gets fragmented.
	for d := range int(sb.AGCount) {
		dir := filepath.Join(mnt, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range fragFiles {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d", i)), int(sb.BlockSize))
		}
		oracle.Run(t, "sync")
		for i := 0; i < fragFiles; i += 2 {
			if err := os.Remove(filepath.Join(dir, fmt.Sprintf("f%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	tree := snapshot(t, mnt)
	oracle.Unmount(t, mnt)
	return tree
}

func snapshot(t testing.TB, dir string) *treecmp.Tree {
	t.Helper()
	tr, err := treecmp.FromDir(dir, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// clean runs xfs_repair -n and our checker on img and fails on any finding.
func clean(t testing.TB, img, when string) {
	t.Helper()
	if out, code := oracle.Repair(t, img); code != 0 {
		t.Fatalf("%s: xfs_repair -n exited %d:\n%s", when, code, out)
	}
	r, err := check.Run(img, check.Options{})
	if err != nil || !r.Clean() {
		var b bytes.Buffer
		if r != nil {
			r.WriteText(&b)
		}
		t.Fatalf("%s: check: %v\n%s", when, err, b.String())
	}
}

// verifyGrown holds a grown image to everything the kernel and repair
// expect: clean checks, a mount showing the new size, the old contents,
// and new files allocated in the added space.
func verifyGrown(t testing.TB, img string, before *treecmp.Tree, oldSB *ondisk.Superblock) {
	t.Helper()
	clean(t, img, "after growing")
	sb := superblock(t, img)
	first := oldSB.AGCount
	if sb.AGLength(oldSB.AGCount-1) > oldSB.AGLength(oldSB.AGCount-1) {
		first--
	}
	freeBefore := map[uint32]uint32{}
	for agno := first; agno < sb.AGCount; agno++ {
		freeBefore[agno] = agfOf(t, img, agno).FreeBlks
	}
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	// xfs_fs_statfs: f_blocks is the data section less an internal log.
	if want := sb.DBlocks - uint64(sb.LogBlocks); st.Blocks != want || st.Bsize != int64(sb.BlockSize) {
		t.Errorf("statfs: %d blocks of %d, want %d of %d", st.Blocks, st.Bsize, want, sb.BlockSize)
	}
	if d := treecmp.Diff(before, snapshot(t, mnt), treecmp.DiffOptions{}); len(d) > 0 {
		t.Fatalf("contents changed by growing:\n%s", strings.Join(d, "\n"))
	}
	// Allocate in every AG that gained space (through a directory whose
	// inode lives there: files go to their directory's AG), then fill
	// what is left.
	writeFile(t, filepath.Join(mnt, "after"), 3<<20)
	for agno, dir := range dirsInAGs(t, mnt, sb, first) {
		f, err := os.Create(filepath.Join(dir, "bulk"))
		if err != nil {
			t.Fatal(err)
		}
		unix.Fallocate(int(f.Fd()), 0, 0, int64(freeBefore[agno])*int64(sb.BlockSize)*3/4)
		f.Close()
	}
	fillUp(t, mnt)
	after := snapshot(t, mnt)
	oracle.Unmount(t, mnt)
	clean(t, img, "after filling the grown filesystem")
	for agno := first; agno < sb.AGCount; agno++ {
		if agf := agfOf(t, img, agno); agf.FreeBlks > freeBefore[agno]/2 {
			t.Errorf("AG %d: %d of %d free blocks still free after filling: the added space was not used", agno, agf.FreeBlks, freeBefore[agno])
		}
	}
	mnt = oracle.Mount(t, img, true)
	if d := treecmp.Diff(after, snapshot(t, mnt), treecmp.DiffOptions{}); len(d) > 0 {
		t.Errorf("contents differ after a remount:\n%s", strings.Join(d, "\n"))
	}
	oracle.Unmount(t, mnt)
}

// kernelGrow grows img the kernel's way: extend the file, loop-mount it,
// xfs_growfs -D blocks, unmount.
func kernelGrow(t testing.TB, img string, size int64, blocks uint64) {
	t.Helper()
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	mnt := oracle.Mount(t, img, false)
	oracle.Run(t, "xfs_growfs", "-D", fmt.Sprint(blocks), mnt)
	oracle.Unmount(t, mnt)
}

// dbFields prints one xfs_db object and returns its fields.
func dbFields(t testing.TB, img string, cmds ...string) map[string]string {
	t.Helper()
	out := oracle.DB(t, img, []string{"-r"}, append(cmds, "print")...)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// fillUp allocates nearly all free space of the mount in a few files.
func fillUp(t testing.TB, mnt string) {
	t.Helper()
	for i := range 8 {
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		if st.Bavail < 64 {
			return
		}
		f, err := os.Create(filepath.Join(mnt, fmt.Sprintf("bulk%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Fallocate(int(f.Fd()), 0, 0, int64(st.Bavail)*st.Bsize*19/20)
		f.Close()
		if err != nil {
			return // ENOSPC: as full as it gets
		}
	}
}

// dirsInAGs makes directories under mnt until each AG from first on holds
// one, and returns them by AG.
func dirsInAGs(t testing.TB, mnt string, sb *ondisk.Superblock, first uint32) map[uint32]string {
	t.Helper()
	out := map[uint32]string{}
	for i := 0; len(out) < int(sb.AGCount-first) && i < 8*int(sb.AGCount); i++ {
		dir := filepath.Join(mnt, fmt.Sprintf("ag-dir%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if agno, _ := sb.InoToAG(st.Ino); agno >= first && out[agno] == "" {
			out[agno] = dir
		}
	}
	if len(out) < int(sb.AGCount-first) {
		t.Fatalf("no directory landed in some of AGs %d..%d: %v", first, sb.AGCount-1, out)
	}
	return out
}
