package build

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
)

var popUUID = "3b5d1a2c-0e8f-4f6a-9c1d-7e2b4a6c8d0f"

// popRun runs mkfs -p with the given sub-options ("d", "agcount=8", ...)
// and returns the image path.
func popRun(t *testing.T, src, img string, set func(o *Options), subopts ...string) string {
	t.Helper()
	o := NewOptions()
	o.Target, o.Proto, o.Quiet = img, src, true
	for i := 0; i+1 < len(subopts); i += 2 {
		if err := o.ParseSubopts(subopts[i][0], subopts[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.ParseSubopts('m', "uuid="+popUUID); err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(o)
	}
	var stderr bytes.Buffer
	if _, err := Run(o, io.Discard, &stderr); err != nil {
		t.Fatalf("mkfs -p %s: %v\n%s", src, err, stderr.String())
	}
	return img
}

// TestMkfsPopulate is the end-to-end proof: a tree with every file type,
// 255-byte and non-ASCII names, directories of 0 to 50,000 entries,
// sparse and multi-GiB sparse files, hard links, large and many xattrs
// and 1023-byte symlinks goes through mkfs -p into an image sized for it;
// the image passes xfs_repair -n and check, mounts, equals the source,
// takes kernel changes and still passes; a second run is byte-identical.
func TestMkfsPopulate(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	src := tmpfsSource(t)
	makeSourceTree(t, src, 50000)
	dir := t.TempDir()
	start := time.Now()
	img := popRun(t, src, filepath.Join(dir, "a.img"), nil)
	t.Logf("mkfs -p took %v", time.Since(start))
	img2 := popRun(t, src, filepath.Join(dir, "b.img"), nil)
	if a, b := oracle.FileHash(t, img), oracle.FileHash(t, img2); a != b {
		t.Fatalf("two runs made different images (%s, %s)", a, b)
	}
	oracle.RequireRepairClean(t, img)
	requirePopCheckClean(t, img)
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	// The root has generation 0, as mkfs.xfs and the kernel make it
	// (xfsrestore relies on it); other inodes get derived generations.
	root, err := fs.Inode(fs.SB.RootIno)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for _, e := range ents {
		if string(e.Name) == "." || string(e.Name) == ".." {
			continue
		}
		if ip, err := fs.Inode(e.Ino); err == nil && ip.Gen != 0 {
			nonzero++
		}
	}
	if root.Gen != 0 || nonzero == 0 {
		t.Errorf("root generation %d (want 0); %d of %d root entries have a non-zero generation", root.Gen, nonzero, len(ents))
	}
	// The default margin leaves about 20% of what the tree uses free.
	bs := uint64(fs.SB.BlockSize)
	free := fs.SB.FDBlocks * bs
	used := (fs.SB.DBlocks-uint64(fs.SB.LogBlocks))*bs - free
	fs.Close()
	t.Logf("auto-sized image: %d bytes used, %d free", used, free)
	if total := fs.SB.DBlocks * bs; free < used/5 || free > used && total > 64<<20 {
		t.Errorf("auto-sized image: %d bytes used, %d free; want about 20%% free", used, free)
	}
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	compareTrees(t, src, mnt)
	popKernelChanges(t, mnt)
	oracle.Unmount(t, mnt)
	oracle.RequireRepairClean(t, img)
	requirePopCheckClean(t, img)
}

// TestMkfsPopulateGeometries populates images of many geometries and
// feature sets.
func TestMkfsPopulateGeometries(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	src := tmpfsSource(t)
	makeSourceTree(t, src, 3000)
	cases := [][]string{
		{"b", "size=1024"},
		{"b", "size=65536"},
		{"n", "size=65536"},
		{"i", "size=2048"},
		{"i", "size=1024", "m", "rmapbt=1"},
		{"m", "reflink=0,finobt=0,inobtcount=0"},
		{"i", "sparse=0,nrext64=1"},
		{"d", "agcount=16"},
		{"b", "size=2048", "d", "su=64k,sw=4"},
		{"m", "bigtime=0"},
		{"d", "projinherit=42,extszinherit=16,cowextsize=32"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c, " "), func(t *testing.T) {
			img := popRun(t, src, filepath.Join(t.TempDir(), "fs.img"), nil, c...)
			oracle.RequireRepairClean(t, img)
			requirePopCheckClean(t, img)
			if c[0] == "b" && c[1] == "size=65536" {
				// Blocks larger than the page need a kernel with large
				// block size support (6.12+).
				probe := filepath.Join(t.TempDir(), "probe")
				os.Mkdir(probe, 0o755)
				if _, code := oracle.RunStatus("mount", "-t", "xfs", "-o", "loop,ro", img, probe); code != 0 {
					t.Logf("kernel does not mount 64 KiB blocks; engine, xfs_repair and check only")
					return
				}
				oracle.Unmount(t, probe)
			}
			mnt := oracle.Mount(t, img, false)
			oracle.MustBeMounted(t, mnt)
			compareTrees(t, src, mnt)
			popKernelChanges(t, mnt)
			oracle.Unmount(t, mnt)
			oracle.RequireRepairClean(t, img)
		})
	}
}

// TestMkfsPopulateOwnersAndTimes checks --root-owner, --owner and the
// SOURCE_DATE_EPOCH clamp.
func TestMkfsPopulateOwnersAndTimes(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	src := t.TempDir()
	for i := 0; i < 5; i++ {
		p := filepath.Join(src, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Lchown(p, 1000+i, 2000+i)
		ts := []unix.Timespec{{Sec: 1000000000 + int64(i)*500000000, Nsec: 7}, {Sec: 1000000000 + int64(i)*500000000, Nsec: 9}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	epoch := time.Unix(1800000000, 0)
	for _, c := range []struct {
		name     string
		set      func(o *Options)
		uid, gid func(i int) uint32
	}{
		{"root", func(o *Options) { o.RootOwner = true }, func(int) uint32 { return 0 }, func(int) uint32 { return 0 }},
		{"owner", func(o *Options) { o.OwnerUID, o.OwnerGID = 55, 66 }, func(int) uint32 { return 55 }, func(int) uint32 { return 66 }},
		{"clamp", func(o *Options) { o.Now, o.ClampTimes = epoch, true },
			func(i int) uint32 { return uint32(1000 + i) }, func(i int) uint32 { return uint32(2000 + i) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := popRun(t, src, filepath.Join(t.TempDir(), "fs.img"), c.set, "d", "size=64m")
			oracle.RequireRepairClean(t, img)
			mnt := oracle.Mount(t, img, true)
			for i := 0; i < 5; i++ {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(mnt, fmt.Sprintf("f%d", i)), &st); err != nil {
					t.Fatal(err)
				}
				if st.Uid != c.uid(i) || st.Gid != c.gid(i) {
					t.Errorf("f%d: owner %d:%d, want %d:%d", i, st.Uid, st.Gid, c.uid(i), c.gid(i))
				}
				want := unix.Timespec{Sec: 1000000000 + int64(i)*500000000, Nsec: 9}
				if c.name == "clamp" && want.Sec > epoch.Unix() {
					want = unix.Timespec{Sec: epoch.Unix()}
				}
				if st.Mtim != want {
					t.Errorf("f%d: mtime %v, want %v", i, st.Mtim, want)
				}
			}
		})
	}
}

// TestMkfsPopulateProtoFile builds from an mkfs.xfs prototype file.
func TestMkfsPopulateProtoFile(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, popPattern(1, 100000), 0o600); err != nil {
		t.Fatal(err)
	}
	proto := filepath.Join(dir, "proto")
	text := fmt.Sprintf(`/dev/null
0 0
d--755 0 0
: a comment line
etc d--750 1 2
  passwd ---644 0 0 %[1]s : trailing comment
  $
bin dug775 3 4
  sh -u-755 0 0 %[1]s
  link l--777 0 0 ../etc/passwd
  $
dev d--755 0 0
  null c--666 0 0 1 3
  sda b--660 0 6 8 0
  pipe p--600 0 0
  $
space r--600 5 5 1m
$
`, data)
	if err := os.WriteFile(proto, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	img := popRun(t, proto, filepath.Join(dir, "fs.img"), func(o *Options) { o.Now = time.Unix(1600000000, 0) }, "d", "size=64m")
	oracle.RequireRepairClean(t, img)
	requirePopCheckClean(t, img)
	mnt := oracle.Mount(t, img, true)
	want := []struct {
		path     string
		mode     uint32
		uid, gid uint32
	}{
		{".", unix.S_IFDIR | 0o755, 0, 0},
		{"etc", unix.S_IFDIR | 0o750, 1, 2},
		{"etc/passwd", unix.S_IFREG | 0o644, 0, 0},
		{"bin", unix.S_IFDIR | 0o775 | unix.S_ISUID | unix.S_ISGID, 3, 4},
		{"bin/sh", unix.S_IFREG | 0o755 | unix.S_ISUID, 0, 0},
		{"bin/link", unix.S_IFLNK | 0o777, 0, 0},
		{"dev/null", unix.S_IFCHR | 0o666, 0, 0},
		{"dev/sda", unix.S_IFBLK | 0o660, 0, 6},
		{"dev/pipe", unix.S_IFIFO | 0o600, 0, 0},
		{"space", unix.S_IFREG | 0o600, 5, 5},
	}
	for _, w := range want {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, w.path), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != w.mode || st.Uid != w.uid || st.Gid != w.gid || st.Mtim.Sec != 1600000000 {
			t.Errorf("%s: mode 0%o owner %d:%d mtime %d, want 0%o %d:%d 1600000000", w.path, st.Mode, st.Uid, st.Gid, st.Mtim.Sec, w.mode, w.uid, w.gid)
		}
	}
	got, err := os.ReadFile(filepath.Join(mnt, "bin/sh"))
	if err != nil || !bytes.Equal(got, popPattern(1, 100000)) {
		t.Errorf("bin/sh: content differs (%v)", err)
	}
	if l, _ := os.Readlink(filepath.Join(mnt, "bin/link")); l != "../etc/passwd" {
		t.Errorf("bin/link -> %q", l)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(mnt, "dev/sda"), &st)
	if unix.Major(st.Rdev) != 8 || unix.Minor(st.Rdev) != 0 {
		t.Errorf("dev/sda: rdev %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	unix.Lstat(filepath.Join(mnt, "space"), &st)
	if st.Size != 1<<20 || st.Blocks*512 < 1<<20 {
		t.Errorf("space: size %d, %d bytes allocated; want 1 MiB preallocated", st.Size, st.Blocks*512)
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, "space")); !bytes.Equal(b, make([]byte, 1<<20)) {
		t.Errorf("space: preallocated file does not read as zeros")
	}
}

// TestMkfsPopulateAutoSizeFits: trees whose space popSize's count covers
// but whose layout does not fit at that size (a file filling most of an
// AG next to a 20,000-entry directory; the same with 1 KiB blocks and
// rmapbt, where each AG's B-trees come last) are auto-sized to a size a
// sizing run proved, and the image passes xfs_repair -n.
func TestMkfsPopulateAutoSizeFits(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		if err := os.WriteFile(filepath.Join(src, "big", fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 40<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(filepath.Join(src, "data.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		subopts []string
	}{
		{"defaults", nil},
		{"1k-rmapbt", []string{"b", "size=1024", "m", "rmapbt=1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := popRun(t, src, filepath.Join(t.TempDir(), "a.img"), nil, c.subopts...)
			oracle.RequireRepairClean(t, img)
		})
	}
}
