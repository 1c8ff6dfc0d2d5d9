package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/clitest"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// reproducibleImages: CI builds of the same tree with SOURCE_DATE_EPOCH and
// a fixed UUID give byte-identical images, and so does growing them.
func reproducibleImages(t *testing.T, tl tools, src string) {
	dir := t.TempDir()
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	var images [2][]byte
	for i := range images {
		img := filepath.Join(dir, fmt.Sprintf("r%d.img", i))
		for _, args := range [][]string{
			{"mkfs", "-q", "-m", "uuid=0b5e55ed-1234-4321-abcd-0123456789ab", "-p", src, "-d", "size=150m", img},
			{"growfs", "-q", "--size", "400m", img},
		} {
			if out, errOut, code := (clitest.Opts{Env: env}).Run(tl[args[0]], args[1:]...); code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
			}
		}
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		images[i] = b
	}
	if !bytes.Equal(images[0], images[1]) {
		for off := 0; off < len(images[0]); off += 512 {
			if !bytes.Equal(images[0][off:off+512], images[1][off:off+512]) {
				t.Fatalf("two builds of the same tree differ, first at sector %d", off/512)
			}
		}
	}
}

// hugeSparseImage: 1 TiB AGs, grown from two to three, so that the kernel's
// new files in the third AG have inode numbers above 2^32; check, repair,
// dump, a cumulative restore and the engine's snapshot all follow them.
func hugeSparseImage(t *testing.T, tl tools, src string, want *treecmp.Tree) {
	dir := t.TempDir()
	img := filepath.Join(dir, "huge.img")
	tl.run(t, "mkfs", "-q", "-p", src, "-d", "size=2t,agsize=268435455b", img)
	g := tl.grow(t, "--size", "3t", img)
	if g.NewAGCount != 3 {
		t.Fatalf("growfs to 3 TiB: %+v", g)
	}
	tl.checkClean(t, img)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	high := 0
	for i := 0; i < 6; i++ {
		d := filepath.Join(mnt, "wide", fmt.Sprintf("d%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "f")
		if err := os.WriteFile(f, pattern(i, 5000), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(f, filepath.Join(mnt, "wide", fmt.Sprintf("link%d", i))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(f, "user.where", []byte(d), 0); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(f); err == nil && inoOf(fi) >= 1<<32 {
			high++
		}
	}
	oracle.Unmount(t, mnt)
	if high == 0 {
		t.Fatal("no file got an inode number above 2^32")
	}
	tl.checkClean(t, img)

	inv, l0, l1 := filepath.Join(dir, "inv.db"), filepath.Join(dir, "l0"), filepath.Join(dir, "l1")
	tl.run(t, "dump", "-q", "--inventory", inv, "-f", l0, img)
	mnt = oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	for i := 0; i < 6; i += 2 {
		if err := os.Rename(filepath.Join(mnt, "wide", fmt.Sprintf("d%d", i)), filepath.Join(mnt, fmt.Sprintf("moved%d", i))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("moved%d", i), "f"), []byte("rewritten"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Unmount(t, mnt)
	tl.run(t, "dump", "-q", "--inventory", inv, "-l", "1", "-f", l1, img)
	dest, state := filepath.Join(scratchXFS(t, 4096), "dest"), filepath.Join(dir, "state")
	tl.run(t, "restore", "-q", "-r", "--state", state, "-f", l0, "-f", l1, dest)
	sameTree(t, "cumulative restore of 64-bit inode numbers", kernelView(t, img), snapshot(t, dest), treecmp.DiffOptions{Sparse: true, Nlink: true})
}

// singleAG: an image made with one AG (no backup superblock) is backed up,
// grows into several (imaxpct changed too), gets files from the kernel in
// the new AGs, and is backed up again: the level 1 dump of the grown
// filesystem applies on top of the level 0 of the small one.
func singleAG(t *testing.T, tl tools, src string, want *treecmp.Tree) {
	dir := t.TempDir()
	img := filepath.Join(dir, "one.img")
	tl.run(t, "mkfs", "-q", "-p", src, "-d", "agcount=1,size=100m", img)
	tl.run(t, "check", "--no-progress", img) // xfs_repair cannot check a single AG without a backup
	inv, l0, l1 := filepath.Join(dir, "inv.db"), filepath.Join(dir, "l0"), filepath.Join(dir, "l1")
	tl.run(t, "dump", "-q", "--inventory", inv, "-f", l0, img)
	var g struct {
		growResult
		OldIMaxPct int `json:"old_imaxpct"`
		NewIMaxPct int `json:"new_imaxpct"`
	}
	tl.runJSON(t, &g, "growfs", "--json", "-m", "5", "--size", "450m", img)
	if g.OldAGCount != 1 || g.NewAGCount != 5 || g.OldIMaxPct != 25 || g.NewIMaxPct != 5 {
		t.Fatalf("growfs of a single-AG image: %+v", g)
	}
	if pct := sbFields(t, img, "imax_pct")["imax_pct"]; pct != 5 {
		t.Fatalf("imax_pct %d after growfs -m 5", pct)
	}
	tl.checkClean(t, img)
	mnt := oracle.Mount(t, img, true)
	sameTree(t, "kernel mount of a grown single-AG image", want, snapshot(t, mnt), exact)
	oracle.Unmount(t, mnt)

	mnt = oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	for i := 0; i < 10; i++ {
		d := filepath.Join(mnt, "grown", fmt.Sprintf("d%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), pattern(i, 3000*i), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(mnt, "files", "big")); err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	tl.checkClean(t, img)
	tl.run(t, "dump", "-q", "--inventory", inv, "-l", "1", "-f", l1, img)
	dest, state := filepath.Join(scratchXFS(t, 4096), "dest"), filepath.Join(dir, "state")
	tl.run(t, "restore", "-q", "-r", "--state", state, "-f", l0, "-f", l1, dest)
	sameTree(t, "levels 0 (before growfs) and 1 (after) restored", kernelView(t, img), snapshot(t, dest), treecmp.DiffOptions{Sparse: true, Nlink: true})
}

// blockDevice: the tools on an unmounted loop device, as on a disk: mkfs
// -p onto it, the backing file extended and the device resized, growfs
// to the device's size, check and dump from the device.
func blockDevice(t *testing.T, tl tools, src string, want *treecmp.Tree) {
	oracle.Require(t, oracle.Loop)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	oracle.Run(t, "truncate", "-s", "200m", img)
	dev := strings.TrimSpace(oracle.Run(t, "losetup", "-f", "--show", img))
	t.Cleanup(func() { oracle.RunStatus("losetup", "-d", dev) })
	tl.run(t, "mkfs", "-q", "-f", "-p", src, dev)
	tl.run(t, "check", "--no-progress", dev)
	oracle.Run(t, "truncate", "-s", "500m", img)
	oracle.Run(t, "losetup", "-c", dev)
	g := tl.grow(t, dev)
	if g.NewBlocks != 500<<8 {
		t.Fatalf("growfs %s (500 MiB): %+v", dev, g)
	}
	tl.run(t, "check", "--no-progress", dev)
	oracle.RequireRepairClean(t, dev)
	s := filepath.Join(dir, "l0")
	tl.run(t, "dump", "-q", "--inventory", filepath.Join(dir, "inv.db"), "-f", s, dev)
	dest := filepath.Join(scratchXFS(t, 4096), "dest")
	tl.run(t, "restore", "-q", "-f", s, dest)
	sameTree(t, "restore of a dump of a block device vs the source", want, snapshot(t, dest), exact)
}

// mountedRefusals: the offline tools must not act on a filesystem the
// kernel has mounted read-write: what is on disk is not what the kernel
// holds (a dump would record a stale tree as a complete session; mkfs
// would destroy it under the kernel; check would call stale metadata
// clean). growfs, mkfs and check refuse; a read-only mount is checked.
func mountedRefusals(t *testing.T, tl tools, src string) {
	dir := t.TempDir()
	img := filepath.Join(dir, "m.img")
	tl.run(t, "mkfs", "-q", "-p", src, "-d", "size=100m", img)
	dev := strings.TrimSpace(oracle.Run(t, "losetup", "-f", "--show", img))
	t.Cleanup(func() { oracle.RunStatus("losetup", "-d", dev) })
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	oracle.Run(t, "mount", dev, mnt)
	t.Cleanup(func() { oracle.Unmount(t, mnt) })
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "not-yet-on-disk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr := tl.runCode(t, 1, "growfs", "--size", "200m", img)
	if !strings.Contains(stderr, "mounted") {
		t.Errorf("growfs of a mounted image: %s", stderr)
	}
	t.Run("dump", func(t *testing.T) {
		for _, target := range []string{img, dev} {
			_, _, code := (clitest.Opts{}).Run(tl["dump"], "-q", "--inventory", filepath.Join(dir, "inv.db"), "-f", filepath.Join(dir, "s"), target)
			if code == 0 {
				t.Errorf("dump of mounted %s succeeded", target)
			}
		}
	})
	// mkfs refuses a mounted target even with -f (as mkfs.xfs refuses a
	// mounted device), and the filesystem stays usable.
	for _, target := range []string{dev, img} {
		if _, stderr := tl.runCode(t, 1, "mkfs", "-q", "-f", target); !strings.Contains(stderr, "mounted") {
			t.Errorf("mkfs -f of mounted %s: %s", target, stderr)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "still-usable"), []byte("y"), 0o644); err != nil {
		t.Fatalf("the mounted filesystem after mkfs -f was refused: %v", err)
	}
	// check refuses a read-write mount like xfs_repair -n, and checks a
	// read-only one (consistent on disk).
	for _, target := range []string{dev, img} {
		if _, stderr := tl.runCode(t, 4, "check", "--no-progress", target); !strings.Contains(stderr, "mounted") {
			t.Errorf("check of read-write mounted %s: %s", target, stderr)
		}
	}
	oracle.Unmount(t, mnt)
	oracle.Run(t, "mount", "-o", "ro", dev, mnt)
	oracle.MustBeMounted(t, mnt)
	tl.run(t, "check", "--no-progress", dev)
}

// interruptedGrow kills a long growfs (4,092 new AGs) part-way. While
// its undo journal is there, check and dump refuse the half-grown image
// (exit 4 / 1, naming the journal) instead of reporting or backing up a
// state that never existed; running growfs again rolls back and
// completes, and check passes (xfs_repair takes minutes over 4,096 AGs).
func interruptedGrow(t *testing.T, tl tools, src string) {
	dir := t.TempDir()
	img := filepath.Join(dir, "killed.img")
	tl.run(t, "mkfs", "-q", "-p", src, "-d", "size=100m,agsize=16m", img)
	cmd := exec.Command(tl["growfs"], "-q", "--size", "64g", img)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	journal := img + ".xfskit-undo"
	if _, err := os.Stat(journal); err != nil {
		t.Logf("growfs finished (or had not begun) before it was killed: %v", err)
	} else {
		_, stderr := tl.runCode(t, 4, "check", "--no-progress", img)
		if !strings.Contains(stderr, journal) {
			t.Errorf("check of a half-grown image: %s", stderr)
		}
		_, stderr = tl.runCode(t, 1, "dump", "-q", "--inventory", filepath.Join(dir, "inv.db"), "-f", filepath.Join(dir, "s"), img)
		if !strings.Contains(stderr, journal) {
			t.Errorf("dump of a half-grown image: %s", stderr)
		}
	}
	g := tl.grow(t, "--size", "64g", img)
	if _, err := os.Stat(journal); err == nil || g.NewBlocks != 64<<18 || g.NewAGCount != 4096 {
		t.Fatalf("growfs again: %+v, journal: %v", g, err)
	}
	tl.run(t, "check", "--no-progress", img)
}

// nonUTF8Selections: subtree selections are told apart byte for byte, so
// an incremental dump of one subtree never takes a dump of another as its
// base — here two directories whose names differ only in bytes that are
// not UTF-8.
func nonUTF8Selections(t *testing.T, tl tools) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	a, b := "\xfe", "\xff"
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, d, "file"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, inv := filepath.Join(dir, "x.img"), filepath.Join(dir, "inv.db")
	tl.run(t, "mkfs", "-q", "-p", src, img)
	tl.run(t, "dump", "-q", "--inventory", inv, "-s", a, "-f", filepath.Join(dir, "a0"), img)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, a, "file"), []byte("changed after a0"), 0o644); err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	time.Sleep(10 * time.Millisecond)
	tl.run(t, "dump", "-q", "--inventory", inv, "-s", b, "-f", filepath.Join(dir, "b0"), img)
	tl.run(t, "dump", "-q", "--inventory", inv, "-l", "1", "-s", a, "-f", filepath.Join(dir, "a1"), img)
	dest := filepath.Join(dir, "dest")
	tl.run(t, "restore", "-q", "-r", "-f", filepath.Join(dir, "a0"), "-f", filepath.Join(dir, "a1"), dest)
	if got, err := os.ReadFile(filepath.Join(dest, a, "file")); err != nil || string(got) != "changed after a0" {
		t.Fatalf("%q after levels 0 and 1 of its subtree: %q, %v", a+"/file", got, err)
	}
}

// dirtyLog: a VM that crashed leaves its image with a dirty log. check
// stops with exit 2 and says to mount it once (or --replay); dump replays
// the log in memory, without writing the image (growfs replays it first:
// internal/grow TestGrowReplaysDirtyLog). After the kernel has replayed the
// log, all three work, and both backups hold what the kernel had written
// before the crash.
func dirtyLog(t *testing.T, tl tools, src string) {
	dir := t.TempDir()
	img := filepath.Join(dir, "crashed.img")
	tl.run(t, "mkfs", "-q", "-p", src, "-d", "size=200m", img)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "written-before-the-crash"), pattern(1, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(mnt, "dirs", "d400")); err != nil {
		t.Fatal(err)
	}
	syncFS(t, mnt) // in the log, not yet in place
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown", mnt)
	oracle.Unmount(t, mnt)
	inv, s := filepath.Join(dir, "inv.db"), filepath.Join(dir, "l0")
	before := oracle.FileHash(t, img)
	if _, stderr := tl.runCode(t, 2, "check", "--no-progress", img); !strings.Contains(stderr, "mount") {
		t.Errorf("check of an image with a dirty log does not say to mount it: %s", stderr)
	}
	crashed := filepath.Join(dir, "crashed")
	if _, stderr := tl.runCode(t, 0, "dump", "--no-progress", "--inventory", inv, "-f", crashed, img); !strings.Contains(stderr, "replayed in memory") {
		t.Errorf("dump of an image with a dirty log does not say it replayed the log in memory: %s", stderr)
	}
	if oracle.FileHash(t, img) != before {
		t.Fatal("the refusals or the dump wrote the crashed image")
	}
	oracle.Unmount(t, oracle.Mount(t, img, false)) // the kernel replays the log
	tl.checkClean(t, img)
	tl.grow(t, "--size", "300m", img)
	tl.checkClean(t, img)
	tl.run(t, "dump", "-q", "--inventory", inv, "-f", s, img)
	want := kernelView(t, img)
	if want.Lookup("written-before-the-crash") == nil || want.Lookup("dirs/d400") != nil {
		t.Fatal("the kernel's replay did not keep what was written before the crash")
	}
	scratch := scratchXFS(t, 4096)
	dest := filepath.Join(scratch, "dest")
	tl.run(t, "restore", "-q", "-f", s, dest)
	sameTree(t, "restore after log replay vs the kernel", want, snapshot(t, dest), exact)
	dest = filepath.Join(scratch, "crashed")
	tl.run(t, "restore", "-q", "-f", crashed, dest)
	sameTree(t, "restore of the dump replayed in memory vs the kernel", want, snapshot(t, dest), exact)
}
