package build

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

func runArgs(t *testing.T, args ...string) (*Geometry, string, error) {
	t.Helper()
	o := parseArgs(t, args)
	var out bytes.Buffer
	g, err := Run(o, &out, io.Discard)
	return g, out.String(), err
}

func TestRunCreatesSparseImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "new.img")
	if _, _, err := runArgs(t, "-q", img); err == nil {
		t.Fatal("formatting a missing file without -d size succeeded")
	}
	g, out, err := runArgs(t, "-q", "-d", "size=100m", img)
	if err != nil {
		t.Fatal(err)
	}
	if out != "" {
		t.Errorf("-q printed %q", out)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(g.DBlocks)*int64(g.BlockSize) || st.Mode().Perm() != 0o644 {
		t.Errorf("image is %d bytes mode %v, want %d bytes mode 0644", st.Size(), st.Mode().Perm(), int64(g.DBlocks)*int64(g.BlockSize))
	}
	if used := diskUsage(t, img); used > 4<<20 {
		t.Errorf("new 100 MiB image uses %d bytes on disk; it should be sparse", used)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(img), ".new.img.mkfs-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	// A dry run prints the geometry and writes nothing.
	other := filepath.Join(t.TempDir(), "dry.img")
	if _, out, err := runArgs(t, "-N", "-d", "size=100m", other); err != nil || !strings.HasPrefix(out, "meta-data="+other) {
		t.Errorf("-N: %v, output %q", err, out)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("-N created %s", other)
	}
}

func diskUsage(t *testing.T, path string) int64 {
	t.Helper()
	var st os.FileInfo
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return statBlocks(st) * 512
}

// TestRunRefusesToOverwrite checks signature detection and -f.
func TestRunRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	sigs := map[string]func([]byte){
		"ext4":  func(b []byte) { b[1080], b[1081] = 0x53, 0xef },
		"btrfs": func(b []byte) { copy(b[65536+64:], "_BHRfS_M") },
		"gpt":   func(b []byte) { copy(b[512:], "EFI PART") },
		"xfs":   func(b []byte) { copy(b, "XFSB") },
	}
	for name, stamp := range sigs {
		img := filepath.Join(dir, name+".img")
		b := make([]byte, 128<<10)
		stamp(b)
		if err := os.WriteFile(img, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 64<<20); err != nil {
			t.Fatal(err)
		}
		_, _, err := runArgs(t, "-q", img)
		if !errors.Is(err, ErrExists) {
			t.Errorf("%s signature: got %v, want refusal", name, err)
		}
		if _, _, err := runArgs(t, "-q", "-N", img); !errors.Is(err, ErrExists) {
			t.Errorf("%s signature with -N: got %v, want refusal", name, err)
		}
		if _, _, err := runArgs(t, "-q", "-f", img); err != nil {
			t.Errorf("%s signature with -f: %v", name, err)
		}
		if st, _ := os.Stat(img); st.Mode().Perm() != 0o600 {
			t.Errorf("in-place format changed the mode to %v", st.Mode().Perm())
		}
	}
	// Our own result is an XFS filesystem, so formatting again needs -f.
	img := filepath.Join(dir, "again.img")
	if _, _, err := runArgs(t, "-q", "-d", "size=64m", img); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runArgs(t, "-q", img); !errors.Is(err, ErrExists) {
		t.Errorf("reformat without -f: %v", err)
	}
	// "-d file" replaces the file, as mkfs.xfs truncates it first.
	if _, _, err := runArgs(t, "-q", "-d", "file,size=80m", img); err != nil {
		t.Errorf("-d file over an existing image: %v", err)
	}
	// An existing file smaller than -d size is an error, as in mkfs.xfs.
	small := sparseFile(t, dir, "small.img", 32<<20)
	if _, _, err := runArgs(t, "-q", "-d", "size=64m", small); err == nil {
		t.Error("-d size larger than the existing file accepted")
	}
}

// TestRunOverwritesStaleData formats in place over an old XFS filesystem
// with a different geometry and over random garbage, with and without
// discards, and checks the result with xfs_repair and the kernel.
func TestRunOverwritesStaleData(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	for _, noDiscard := range []bool{false, true} {
		// An old filesystem with 16 AGs leaves secondary superblocks at
		// places the new one does not overwrite.
		img := sparseFile(t, t.TempDir(), "old.img", 256<<20)
		if _, errs, code := realMkfs(t, "-q", "-f", "-d", "agcount=16", "-b", "size=1024", img); code != 0 {
			t.Fatalf("mkfs.xfs: %s", errs)
		}
		garbage(t, img, 300)
		args := []string{"-q", "-f"}
		if noDiscard {
			args = append(args, "-K")
		}
		g, _, err := runArgs(t, append(args, img)...)
		if err != nil {
			t.Fatal(err)
		}
		repairClean(t, img, g)
		// The old filesystem's secondary superblocks (every 16 MiB) are
		// gone unless they coincide with ours.
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		magic := make([]byte, 4)
		for off := int64(16 << 20); off < 256<<20; off += 16 << 20 {
			f.ReadAt(magic, off)
			ours := off%(int64(g.AGBlocks)*int64(g.BlockSize)) == 0
			if string(magic) == "XFSB" && !ours {
				t.Errorf("noDiscard=%v: old secondary superblock left at %d", noDiscard, off)
			}
		}
		f.Close()
		if oracleCanMount() {
			man := fillThroughKernel(t, img, g)
			repairClean(t, img, g)
			verifyThroughKernel(t, img, man)
		}
		if !noDiscard {
			if used := diskUsage(t, img); used > 16<<20 {
				t.Errorf("discarding format left %d bytes allocated", used)
			}
		}
	}
}

func oracleCanMount() bool { return os.Geteuid() == 0 }

// garbage overwrites n random 64 KiB pieces of img outside its first AG
// header area with random bytes (but keeps the old superblock at 0).
func garbage(t *testing.T, img string, n int) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	r := rand.New(rand.NewSource(7))
	buf := make([]byte, 64<<10)
	for i := 0; i < n; i++ {
		r.Read(buf)
		off := (1 + r.Int63n(st.Size()/int64(len(buf))-1)) * int64(len(buf))
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunBlockDevice formats a loop device in place (discard, zeroing
// ioctls, size from BLKGETSIZE64) and mounts the result.
func TestRunBlockDevice(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	backing := sparseFile(t, t.TempDir(), "backing", 300<<20)
	garbage(t, backing, 100)
	out, code := oracle.RunStatus("losetup", "-f", "--show", backing)
	if code != 0 {
		t.Skipf("losetup: %s", out)
	}
	loop := strings.TrimSpace(out)
	t.Cleanup(func() { oracle.RunStatus("losetup", "-d", loop) })
	g, rep, err := runArgs(t, "-f", loop)
	if err != nil {
		t.Fatal(err)
	}
	want, _, code := realMkfs(t, "-N", "-f", loop)
	if code != 0 || rep != want {
		t.Errorf("geometry on %s differs from mkfs.xfs -N:\n%s\nvs\n%s", loop, want, rep)
	}
	repairClean(t, loop, g)
	sb := make([]byte, 512)
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadAt(sb, 0)
	f.Close()
	if s, err := ondisk.DecodeSuperblock(sb); err != nil || s.DBlocks != g.DBlocks {
		t.Fatalf("superblock on %s: %v", loop, err)
	}
	man := fillThroughKernel(t, loop, g)
	repairClean(t, loop, g)
	verifyThroughKernel(t, loop, man)
}

// failingDevice fails every write after the first n.
type failingDevice struct {
	*image.File
	n int
}

func (d *failingDevice) WriteAt(p []byte, off int64) (int, error) {
	if d.n == 0 {
		return 0, errors.New("injected write failure")
	}
	d.n--
	return d.File.WriteAt(p, off)
}

// TestFormatWriteFailures fails the k-th write of a format for every k
// and checks that Format reports it.
func TestFormatWriteFailures(t *testing.T) {
	o := NewOptions()
	o.Target = filepath.Join(t.TempDir(), "x.img")
	o.DataSize = "64m"
	g, err := Plan(o, TargetInfo{Path: o.Target})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; ; k++ {
		f, err := image.Create(o.Target, int64(g.DBlocks)*int64(g.BlockSize))
		if err != nil {
			t.Fatal(err)
		}
		err = g.Format(&failingDevice{File: f, n: k}, time.Unix(0, 0))
		f.Close()
		if err == nil {
			if k < 3 {
				t.Fatalf("format finished after only %d writes", k)
			}
			break
		}
		if !strings.Contains(err.Error(), "injected") {
			t.Fatalf("write %d: error %v does not carry the cause", k, err)
		}
	}
}

// TestRunFailureLeavesNothing formats onto a filesystem too small for the
// image's metadata: the run fails, and neither the target nor a temporary
// file is left behind.
func TestRunFailureLeavesNothing(t *testing.T) {
	oracle.Require(t, oracle.Root)
	dir := t.TempDir()
	if out, code := oracle.RunStatus("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir); code != 0 {
		t.Skipf("cannot mount tmpfs: %s", out)
	}
	t.Cleanup(func() { oracle.RunStatus("umount", dir) })
	if _, code := oracle.RunStatus("mountpoint", "-q", dir); code != 0 {
		t.Fatalf("%s is not a mount point", dir)
	}
	img := filepath.Join(dir, "fs.img")
	if _, _, err := runArgs(t, "-q", "-d", "size=1g", "-d", "agcount=64", img); err == nil {
		t.Fatal("format on a full filesystem succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
