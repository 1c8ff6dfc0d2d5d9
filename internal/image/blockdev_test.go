package image

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
)

// randomFile writes size random bytes to a new file and returns them.
func randomFile(t *testing.T, path string, size int, seed int64) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// checkZeroed checks that dev reads want with [off, off+n) zeroed.
func checkZeroed(t *testing.T, what string, dev Device, want []byte, off, n int64) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := dev.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	exp := bytes.Clone(want)
	clear(exp[off : off+n])
	if !bytes.Equal(got, exp) {
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("%s [%d,+%d): first difference at byte %d: %#x, want %#x", what, off, n, i, got[i], exp[i])
			}
		}
	}
}

// seekHole returns where the first hole and the first data at or after off
// start (data -1: none).
func seekHole(t *testing.T, path string, off int64) (hole, data int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if hole, err = unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE); err != nil {
		t.Fatal(err)
	}
	data, err = unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return hole, -1 // no data after off
	}
	if err != nil {
		t.Fatal(err)
	}
	return hole, data
}

func TestFileDiscardPunchesHole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	const size = 1 << 20
	data := randomFile(t, path, size, 1)
	f, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.IsBlock() {
		t.Fatal("regular file reported as a block device")
	}
	const off, n = 256 << 10, 128 << 10
	if h, _ := seekHole(t, path, off); h != size {
		t.Fatalf("fully written file has a hole at %d before the discard", h)
	}
	if err := f.Discard(off, n); errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("host filesystem cannot punch holes: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	checkZeroed(t, "after Discard", f, data, off, n)
	if hole, next := seekHole(t, path, off); hole != off || next != off+n {
		t.Fatalf("SEEK_HOLE/SEEK_DATA from %d = %d/%d, want a hole [%d,%d)", off, hole, next, off, off+n)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != size || f.Size() != size {
		t.Fatalf("size after discard: stat %v (%v), device %d, want %d", st.Size(), err, f.Size(), size)
	}
	// Empty and negative lengths are no-ops, not errors.
	if err := f.Discard(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.ZeroRange(0, -5); err != nil {
		t.Fatal(err)
	}
	checkZeroed(t, "after empty ranges", f, data, off, n)
}

func TestFileZeroRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	const size = 1 << 20
	data := randomFile(t, path, size, 2)
	f, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Unaligned both ends: the partial blocks must be zeroed too.
	const off, n = 4096*10 + 1000, 3*4096 + 777
	if err := f.ZeroRange(off, n); err != nil {
		t.Fatal(err)
	}
	checkZeroed(t, "after ZeroRange", f, data, off, n)
	// A range reaching past the end does not grow the file.
	if err := f.ZeroRange(size-4096, 8192); err != nil {
		t.Fatal(err)
	}
	clear(data[off : off+n])
	checkZeroed(t, "after ZeroRange at the end", f, data, size-4096, 4096)
	if st, _ := os.Stat(path); st.Size() != size {
		t.Fatalf("ZeroRange past the end changed the size to %d", st.Size())
	}
}

// TestFileDiscardReadOnly: failures name the file and the range.
func TestFileDiscardReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	data := randomFile(t, path, 64<<10, 3)
	f, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = f.Discard(4096, 8192)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset 4096") {
		t.Fatalf("Discard on a read-only file: %v", err)
	}
	if err := f.ZeroRange(4096, 8192); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("ZeroRange on a read-only file: %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("failed discard changed the file")
	}
}

func TestProbeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	randomFile(t, path, 12345, 4)
	g, err := Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Exists || g.IsBlock || g.Size != 12345 || g.PhysicalSector != 0 || g.MinIO != 0 || g.OptIO != 0 {
		t.Fatalf("Probe(regular file) = %+v", g)
	}
	if g, err := Probe(filepath.Join(dir, "missing")); err != nil || g.Exists {
		t.Fatalf("Probe(missing) = %+v, %v", g, err)
	}
	for _, p := range []string{dir, "/dev/null"} {
		if _, err := Probe(p); !errors.Is(err, ErrNotFileOrBlock) || !strings.Contains(err.Error(), p) {
			t.Errorf("Probe(%s): %v", p, err)
		}
	}
	var pe *fs.PathError
	if _, err := Probe(path + "/below-a-file"); !errors.As(err, &pe) || pe.Op != "stat" {
		t.Errorf("Probe(path under a file): %v", err)
	}
}

// TestProbeFileOnXFS: for a file on XFS, Probe reports the direct I/O
// size that xfs_io's stat shows (the device's logical sector, here 4096
// from a loop device made with 4 KiB sectors, so not a default).
func TestProbeFileOnXFS(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	if _, err := exec.LookPath("xfs_io"); err != nil {
		t.Skip("xfs_io not installed")
	}
	img := oracle.Mkfs(t, "300m", "-s", "size=4096")
	dev := loopDevice(t, img, 4096)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	oracle.Run(t, "mount", "-t", "xfs", dev, mnt)
	t.Cleanup(func() { oracle.RunStatus("umount", mnt) })
	oracle.MustBeMounted(t, mnt)
	path := filepath.Join(mnt, "f")
	randomFile(t, path, 8192, 5)
	g, err := Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	out := oracle.Run(t, "xfs_io", "-c", "stat -v", path)
	want := -1
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "dioattr.miniosz" {
			want, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if want != 4096 {
		t.Fatalf("xfs_io stat on a 4 KiB-sector device: dioattr.miniosz %d:\n%s", want, out)
	}
	if !g.Exists || g.IsBlock || g.Size != 8192 || g.LogicalSector != want {
		t.Fatalf("Probe(%s) = %+v, want LogicalSector %d (xfs_io stat)", path, g, want)
	}
}

// loopDevice attaches backing to a free loop device with the given logical
// sector size and detaches it when the test ends.
func loopDevice(t *testing.T, backing string, sector int) string {
	t.Helper()
	out, code := oracle.RunStatus("losetup", "-f", "--show", "-b", strconv.Itoa(sector), backing)
	if code != 0 {
		t.Skipf("losetup: %s", out)
	}
	dev := strings.TrimSpace(out)
	t.Cleanup(func() { oracle.RunStatus("losetup", "-d", dev) })
	return dev
}

func TestProbeLoopDevice(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop)
	for _, sector := range []int{512, 4096} {
		backing := filepath.Join(t.TempDir(), "backing")
		randomFile(t, backing, 8<<20+3*4096, int64(sector))
		dev := loopDevice(t, backing, sector)
		g, err := Probe(dev)
		if err != nil {
			t.Fatal(err)
		}
		out := oracle.Run(t, "blockdev", "--getsize64", "--getss", "--getpbsz", "--getiomin", "--getioopt", "--getalignoff", dev)
		f := strings.Fields(out)
		if len(f) != 6 {
			t.Fatalf("blockdev printed %q", out)
		}
		var want [6]int64
		for i, s := range f {
			if want[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				t.Fatalf("blockdev printed %q", out)
			}
		}
		got := [6]int64{g.Size, int64(g.LogicalSector), int64(g.PhysicalSector), int64(g.MinIO), int64(g.OptIO), int64(g.AlignOffset)}
		if !g.Exists || !g.IsBlock || got != want {
			t.Fatalf("%s (-b %d): Probe = %+v; blockdev size/ss/pbsz/iomin/ioopt/alignoff = %v", dev, sector, g, want)
		}
		if g.LogicalSector != sector {
			t.Fatalf("%s: logical sector %d, losetup was given %d", dev, g.LogicalSector, sector)
		}
		d, err := Open(dev, false)
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsBlock() || d.Size() != g.Size {
			t.Fatalf("Open(%s): block %v size %d, want a block device of %d bytes", dev, d.IsBlock(), d.Size(), g.Size)
		}
		d.Close()
	}
}

// TestLoopDeviceDiscardZero: on a block device, ZeroRange (BLKZEROOUT) and
// Discard (BLKDISCARD; a loop device punches its backing file) make the
// range read as zeros through the device, and leave the rest alone.
func TestLoopDeviceDiscardZero(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop)
	backing := filepath.Join(t.TempDir(), "backing")
	const size = 8 << 20
	data := randomFile(t, backing, size, 6)
	dev := loopDevice(t, backing, 512)
	d, err := Open(dev, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.IsBlock() || d.Size() != size {
		t.Fatalf("%s: block %v size %d", dev, d.IsBlock(), d.Size())
	}
	const zoff, zn = 1 << 20, 96 << 10
	if err := d.ZeroRange(zoff, zn); err != nil {
		t.Fatal(err)
	}
	checkZeroed(t, "after ZeroRange on "+dev, d, data, zoff, zn)
	clear(data[zoff : zoff+zn])

	const doff, dn = 4 << 20, 1 << 20
	if err := d.Discard(doff, dn); err != nil {
		t.Fatal(err)
	}
	checkZeroed(t, "after Discard on "+dev, d, data, doff, dn)
	clear(data[doff : doff+dn])
	// The loop driver punched the backing file: a hole, zeros.
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if hole, _ := seekHole(t, backing, doff); hole != doff {
		t.Errorf("backing file has no hole at the discarded range (first hole from %d at %d)", doff, hole)
	}
	if got, err := os.ReadFile(backing); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("backing file after zero and discard differs from the expected contents (%v)", err)
	}
	// Unaligned ranges fall back to plain writes of zeros.
	const uoff, un = 6<<20 + 100, 5000
	if err := d.ZeroRange(uoff, un); err != nil {
		t.Fatal(err)
	}
	checkZeroed(t, "after unaligned ZeroRange on "+dev, d, data, uoff, un)
}

func TestCreateReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	old := randomFile(t, path, 5000, 7)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	leftovers := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, ".img.mkfs-*"))
		return m
	}

	// Abort: the old file stays, the temporary file goes.
	n, err := CreateReplacement(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.WriteAt([]byte("new"), 4096); err != nil {
		t.Fatal(err)
	}
	if len(leftovers()) != 1 {
		t.Fatalf("temporary files while writing: %v", leftovers())
	}
	if err := n.Abort(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, old) || len(leftovers()) != 0 {
		t.Fatalf("after Abort: old file intact %v, leftovers %v", bytes.Equal(got, old), leftovers())
	}

	// Commit: the new sparse file replaces the old one with its mode.
	n, err = CreateReplacement(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.WriteAt([]byte("new"), 4096); err != nil {
		t.Fatal(err)
	}
	if err := n.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := n.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != 1<<20 || st.Mode().Perm() != 0o600 {
		t.Fatalf("after Commit: %v size %d mode %v", err, st.Size(), st.Mode())
	}
	got, _ := os.ReadFile(path)
	if string(got[4096:4099]) != "new" || !bytes.Equal(got[:4096], make([]byte, 4096)) {
		t.Fatal("committed file does not hold what was written")
	}
	if h, _ := seekHole(t, path, 8192); h != 8192 {
		t.Errorf("committed image is not sparse (first hole after 8192 at %d)", h)
	}
	if len(leftovers()) != 0 {
		t.Fatalf("leftovers after Commit: %v", leftovers())
	}
	if err := n.Commit(); err == nil {
		t.Fatal("second Commit accepted")
	}

	// A new name gets mode 0644.
	fresh := filepath.Join(dir, "fresh")
	n, err = CreateReplacement(fresh, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Commit(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("new image: %v mode %v", err, st.Mode())
	}
}
