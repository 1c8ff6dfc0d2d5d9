package build

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/check"
	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// popACL encodes a Linux-format POSIX ACL from (tag, perm, id) triples.
func popACL(ents ...[3]uint32) []byte {
	b := make([]byte, 4+8*len(ents))
	binary.LittleEndian.PutUint32(b, 2)
	for i, e := range ents {
		binary.LittleEndian.PutUint16(b[4+8*i:], uint16(e[0]))
		binary.LittleEndian.PutUint16(b[6+8*i:], uint16(e[1]))
		binary.LittleEndian.PutUint32(b[8+8*i:], e[2])
	}
	return b
}

func popPattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*131 + i*7 + i/509)
	}
	return b
}

// makeSourceTree fills dir with every file type, hard links, long and
// non-ASCII names, sparse and large sparse files, attributes in every
// namespace and ACLs, directories of many sizes (up to bigDir entries)
// and 1023-byte symlinks, with owners and nanosecond times set.
func makeSourceTree(t testing.TB, dir string, bigDir int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	j := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	must(os.MkdirAll(j("files"), 0o755))
	must(os.WriteFile(j("files", "empty"), nil, 0o644))
	must(os.WriteFile(j("files", "small"), []byte("hello, xfs\n"), 0o600))
	must(os.WriteFile(j("files", "blocks"), popPattern(1, 3*4096+17), 0o640))
	must(os.WriteFile(j("files", "big"), popPattern(2, 9<<20+5), 0o644))
	f, err := os.Create(j("files", "sparse"))
	must(err)
	for i := int64(0); i < 40; i++ {
		_, err := f.WriteAt(popPattern(int(i), 4096), i*3*65536)
		must(err)
	}
	must(f.Truncate(5 << 20))
	must(f.Close())
	f, err = os.Create(j("files", "sparse-5g"))
	must(err)
	_, err = f.WriteAt(popPattern(3, 100000), 4<<30)
	must(err)
	must(f.Truncate(5<<30 + 123))
	must(f.Close())
	must(os.WriteFile(j("files", "setuid"), []byte("#!/bin/sh\n"), 0o4755))
	must(os.Chmod(j("files", "setuid"), 0o6755|os.ModeSetuid|os.ModeSetgid))
	must(os.Link(j("files", "small"), j("files", "small-link1")))
	must(os.Link(j("files", "small"), j("files", "small-link2")))

	must(os.MkdirAll(j("names"), 0o755))
	for i, n := range []string{strings.Repeat("n", 255), "é", "日本語のファイル名", "emoji-🎉", "tab\tname", "new\nline", "\xff\xfe-not-utf8", " lead space"} {
		must(os.WriteFile(j("names", n), []byte(fmt.Sprint(i)), 0o644))
	}

	must(os.MkdirAll(j("links"), 0o755))
	must(os.Symlink("../files/small", j("links", "short")))
	must(os.Symlink(strings.Repeat("x/", 511)+"y", j("links", "max")))
	must(os.Symlink(strings.Repeat("z", 300), j("links", "remote")))
	must(os.Symlink("/nonexistent", j("links", "dangling")))

	must(os.MkdirAll(j("dev"), 0o755))
	must(unix.Mknod(j("dev", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(j("dev", "loop7"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 7))))
	must(unix.Mknod(j("dev", "big-minor"), unix.S_IFCHR|0o600, int(unix.Mkdev(200, 200000))))
	must(unix.Mkfifo(j("dev", "fifo"), 0o640))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(err)
	must(unix.Bind(fd, &unix.SockaddrUnix{Name: j("dev", "sock")}))
	unix.Close(fd)

	must(os.MkdirAll(j("xattrs"), 0o755))
	x := j("xattrs", "many")
	must(os.WriteFile(x, []byte("x"), 0o644))
	for i := 0; i < 300; i++ {
		must(unix.Setxattr(x, fmt.Sprintf("user.attr%03d", i), popPattern(i, 20+i%100), 0))
	}
	x = j("xattrs", "large")
	must(os.WriteFile(x, nil, 0o644))
	must(unix.Setxattr(x, "user.big", popPattern(5, 4000), 0))
	must(unix.Setxattr(x, "trusted.secret", []byte("t"), 0))
	must(unix.Setxattr(x, "security.label", []byte("s0"), 0))
	must(unix.Setxattr(x, "user.empty", nil, 0))
	acl := popACL([3]uint32{1, 7, 0xffffffff}, [3]uint32{2, 5, 1234}, [3]uint32{4, 5, 0xffffffff},
		[3]uint32{0x10, 5, 0xffffffff}, [3]uint32{0x20, 4, 0xffffffff})
	must(os.MkdirAll(j("xattrs", "acl"), 0o755))
	must(unix.Setxattr(j("xattrs", "acl"), "system.posix_acl_access", acl, 0))
	must(unix.Setxattr(j("xattrs", "acl"), "system.posix_acl_default", acl, 0))
	must(os.WriteFile(j("xattrs", "acl", "inherits"), nil, 0o644))

	for _, n := range []int{0, 1, 10, 100, 1000, bigDir} {
		d := j("dirs", fmt.Sprintf("d%d", n))
		must(os.MkdirAll(d, 0o755))
		for i := 0; i < n; i++ {
			name := filepath.Join(d, fmt.Sprintf("entry-%06d-%s", i, strings.Repeat("p", i%40)))
			if i%10 == 0 {
				must(os.WriteFile(name, nil, 0o644))
			} else {
				must(os.Link(j("files", "empty"), name))
			}
		}
	}

	// Owners and times, directories last so their mtimes stick.
	i := 0
	var dirs []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		must(err)
		i++
		must(unix.Lchown(p, 1000+i%7, 2000+i%5))
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		ts := []unix.Timespec{{Sec: 1600000000 + int64(i), Nsec: int64(i * 1013)}, {Sec: 1500000000 + int64(i), Nsec: int64(999999999 - i)}}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
		return nil
	})
	for k := len(dirs) - 1; k >= 0; k-- {
		ts := []unix.Timespec{{Sec: 1400000000 + int64(k), Nsec: 5}, {Sec: 1300000000 + int64(k), Nsec: int64(k)}}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, dirs[k], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// tmpfsSource mounts a tmpfs for a source tree: unlike ext4 it holds any
// number of extended attributes. It is unmounted when the test ends.
func tmpfsSource(t testing.TB) string {
	t.Helper()
	oracle.Require(t, oracle.Root)
	dir := t.TempDir()
	// noatime: reading the tree (readlink cannot avoid it) must not
	// change it between the runs a test compares.
	oracle.Run(t, "mount", "-t", "tmpfs", "-o", "size=256m,mode=0755,noatime", "tmpfs", dir)
	t.Cleanup(func() { oracle.Unmount(t, dir) })
	oracle.MustBeMounted(t, dir)
	return dir
}

func requirePopCheckClean(t *testing.T, img string) {
	t.Helper()
	r, err := check.Run(img, check.Options{})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if !r.Clean() {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("check found %d problems:\n%s", r.Total(), b.String())
	}
}

// compareTrees fails the test unless the mounted tree equals the source.
// Files larger than 1 GiB are compared by their data ranges and the bytes
// in them (treecmp would hash gigabytes of holes).
func compareTrees(t *testing.T, src, mnt string) {
	t.Helper()
	var huge []string
	skip := func(path string, isDir bool) bool {
		var st unix.Stat_t
		if !isDir && unix.Lstat(filepath.Join(src, path), &st) == nil && st.Size > 1<<30 {
			huge = append(huge, path)
			return true
		}
		return false
	}
	a, err := treecmp.FromDir(src, treecmp.Options{Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	b, err := treecmp.FromDir(mnt, treecmp.Options{Skip: func(p string, isDir bool) bool {
		for _, h := range huge {
			if h == p {
				return true
			}
		}
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range huge {
		compareHugeFile(t, filepath.Join(src, h), filepath.Join(mnt, h), true)
	}
	// With blocks larger than the source's pages, holes are only kept to
	// the image's block size: compare rounded data ranges instead.
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	sparse := sfs.Bsize <= 4096
	if !sparse {
		for _, e := range a.Entries {
			if e.Type == treecmp.Reg {
				compareHugeFile(t, filepath.Join(src, e.Path), filepath.Join(mnt, e.Path), false)
			}
		}
	}
	// As root, the kernel also lists the stored form of ACLs.
	if d := treecmp.Diff(a, b, treecmp.DiffOptions{Sparse: sparse, Nlink: true, IgnoreXattrPrefixes: []string{"trusted.SGI_ACL_"}, Max: 30}); len(d) > 0 {
		t.Fatalf("the image differs from the source:\n%s", strings.Join(d, "\n"))
	}
}

// compareHugeFile compares the data ranges of two files, rounded to the
// block size of b's filesystem, and with content the bytes in them.
func compareHugeFile(t *testing.T, a, b string, content bool) {
	t.Helper()
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close() // before the mount goes away
		}
	}()
	ranges := func(p string) ([][2]int64, *os.File) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		st, _ := f.Stat()
		r, err := popDataRanges(int(f.Fd()), st.Size())
		if err != nil {
			t.Fatal(err)
		}
		return append(r, [2]int64{-1, st.Size()}), f
	}
	ra, fa := ranges(a)
	rb, fb := ranges(b)
	// The image keeps whole blocks of data: round the source's ranges to
	// its block size.
	var sfs unix.Statfs_t
	if err := unix.Statfs(b, &sfs); err != nil {
		t.Fatal(err)
	}
	bs, size := sfs.Bsize, ra[len(ra)-1][1]
	var rounded [][2]int64
	for _, r := range ra[:len(ra)-1] {
		lo, hi := r[0]/bs*bs, min((r[1]+bs-1)/bs*bs, size)
		if k := len(rounded); k > 0 && lo <= rounded[k-1][1] {
			rounded[k-1][1] = max(rounded[k-1][1], hi)
			continue
		}
		rounded = append(rounded, [2]int64{lo, hi})
	}
	ra = append(rounded, ra[len(ra)-1])
	if fmt.Sprint(ra) != fmt.Sprint(rb) {
		t.Fatalf("%s: data ranges (and size) %v, source %v", b, rb, ra)
	}
	for _, r := range ra[:len(ra)-1] {
		if !content {
			break
		}
		x, y := make([]byte, r[1]-r[0]), make([]byte, r[1]-r[0])
		fa.ReadAt(x, r[0])
		fb.ReadAt(y, r[0])
		if string(x) != string(y) {
			t.Fatalf("%s: data at %d differs", b, r[0])
		}
	}
}

// TestPopulateIntoMkfsXFSImage copies a tree into an image made by
// mkfs.xfs and checks it with xfs_repair, xfskit's checker and the
// kernel, before and after the kernel changes it.
func TestPopulateIntoMkfsXFSImage(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	src := tmpfsSource(t)
	makeSourceTree(t, src, 5000)
	for _, c := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"1k-rmapbt", []string{"-b", "size=1024", "-m", "rmapbt=1"}}} {
		t.Run(c.name, func(t *testing.T) {
			img := oracle.Mkfs(t, "1g", c.opts...)
			tree, err := popScanDir(src, nil)
			if err != nil {
				t.Fatal(err)
			}
			dev, err := image.Open(img, true)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			st, err := populate(dev, tree, &PopulateOptions{Now: time.Unix(1700000000, 5)})
			dev.Close()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("populated %+v in %v", *st, time.Since(start))
			oracle.RequireRepairClean(t, img)
			requirePopCheckClean(t, img)
			mnt := oracle.Mount(t, img, false)
			oracle.MustBeMounted(t, mnt)
			compareTrees(t, src, mnt)
			popKernelChanges(t, mnt)
			oracle.Unmount(t, mnt)
			oracle.RequireRepairClean(t, img)
			requirePopCheckClean(t, img)
		})
	}
}

// popKernelChanges lets the kernel delete and create many files.
func popKernelChanges(t *testing.T, mnt string) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(filepath.Join(mnt, "dirs"), func(p string, fi os.FileInfo, err error) error {
		must(err)
		if !fi.IsDir() && len(p)%3 == 0 {
			must(os.Remove(p))
		}
		return nil
	})
	must(err)
	for _, d := range []string{"dirs/d0", "dirs/d10", "dirs/d1000", "files", "xattrs/acl"} {
		for i := 0; i < 500; i++ {
			must(os.WriteFile(filepath.Join(mnt, d, fmt.Sprintf("kernel-%d", i)), popPattern(i, i*13), 0o644))
		}
	}
	must(os.RemoveAll(filepath.Join(mnt, "dev")))
	must(os.Remove(filepath.Join(mnt, "files", "sparse-5g")))
	for i := 0; i < 300; i += 3 {
		must(unix.Removexattr(filepath.Join(mnt, "xattrs", "many"), fmt.Sprintf("user.attr%03d", i)))
	}
	must(os.Rename(filepath.Join(mnt, "names"), filepath.Join(mnt, "dirs", "d1", "names")))
}
