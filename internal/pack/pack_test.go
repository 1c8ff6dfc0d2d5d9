package pack_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
	"xfskit/internal/pack"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// TestPackIntoImage packs every form into mkfs.xfs-made images of several
// geometries, then reads the result back with xfskit's engine, xfs_repair
// -n, xfskit's checker and a kernel mount, lets the kernel modify it, and
// checks again.
func TestPackIntoImage(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	cases := []struct {
		name string
		opts []string
		big  bool
	}{
		{"4k", nil, true},
		{"1k", []string{"-b", "size=1024"}, true},
		{"dirblock64k", []string{"-n", "size=65536"}, true},
		{"inode2k", []string{"-i", "size=2048"}, false},
		{"nrext64-norefl", []string{"-i", "nrext64=1", "-m", "reflink=0,finobt=0"}, false},
		{"rmapbt", []string{"-m", "rmapbt=1"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			img := oracle.Mkfs(t, "2g", c.opts...)
			ti := openTestImage(t, img, 0)
			tr := newTestTree(t, ti, 3)
			buildCorpus(tr, c.big)
			tr.pack()
			checkForms(t, tr)
			t.Logf("packed %d inodes in %v", len(tr.nodes), time.Since(start))

			verifyEngine(t, img, tr)
			oracle.RequireRepairClean(t, img)
			requireCheckClean(t, img)

			mnt := oracle.Mount(t, img, false)
			oracle.MustBeMounted(t, mnt)
			verifyKernel(t, mnt, tr)
			kernelChanges(t, mnt, tr)
			oracle.Unmount(t, mnt)
			oracle.RequireRepairClean(t, img)
			requireCheckClean(t, img)
			t.Logf("done in %v", time.Since(start))
		})
	}
}

func requireCheckClean(t *testing.T, img string) {
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

// checkForms asserts that the corpus really exercised every form.
func checkForms(t *testing.T, tr *testTree) {
	t.Helper()
	p := tr.ti.p
	dirForms := map[pack.DirForm]bool{}
	for _, n := range tr.nodes {
		if n.ftype() != ondisk.ModeDir {
			continue
		}
		dsize := p.DataForkSize()
		if n.res.ForkOff != 0 {
			dsize = int(n.res.ForkOff) * 8
		}
		dirForms[p.DirFormFor(n.in.Entries, n.in.Parent, dsize)] = true
	}
	for _, f := range []pack.DirForm{pack.DirShortform, pack.DirBlock, pack.DirLeaf, pack.DirNode} {
		if !dirForms[f] {
			t.Errorf("no %v directory in the corpus", f)
		}
	}
	want := []struct {
		path       string
		data, attr uint8
	}{
		{"t/dirs/sf", ondisk.FmtLocal, ondisk.FmtExtents},
		{"t/dirs/fragmented", ondisk.FmtBtree, ondisk.FmtExtents},
		{"t/files/sparse-300", ondisk.FmtBtree, ondisk.FmtExtents},
		{"t/files/sparse-2500", ondisk.FmtBtree, ondisk.FmtLocal},
		{"t/symlinks/fits", ondisk.FmtLocal, ondisk.FmtExtents},
		{"t/symlinks/attr-remote", ondisk.FmtExtents, ondisk.FmtLocal},
		{"t/devices/with-attrs", ondisk.FmtDev, ondisk.FmtLocal},
		{"t/devices/with-leaf-attrs", ondisk.FmtDev, ondisk.FmtExtents},
		{"t/xattrs/sf", ondisk.FmtExtents, ondisk.FmtLocal},
		{"t/xattrs/sf-grows", ondisk.FmtExtents, ondisk.FmtLocal},
		{"t/xattrs/name-max", ondisk.FmtExtents, ondisk.FmtLocal},
		{"t/xattrs/value-255", ondisk.FmtExtents, ondisk.FmtExtents},
		{"t/xattrs/leaf", ondisk.FmtExtents, ondisk.FmtExtents},
		{"t/xattrs/node", ondisk.FmtExtents, ondisk.FmtBtree},
	}
	if tr.ti.sb.InodeSize != 512 {
		return // the expected forms below are for 512-byte inodes
	}
	for _, w := range want {
		n := tr.lookup(w.path)
		if n.res.DataFormat != w.data || n.res.AttrFormat != w.attr {
			t.Errorf("%s: formats data %s attr %s, want %s and %s", w.path, ondisk.FormatName(n.res.DataFormat),
				ondisk.FormatName(n.res.AttrFormat), ondisk.FormatName(w.data), ondisk.FormatName(w.attr))
		}
	}
	if n := tr.lookup("t/xattrs/sf-grows"); int(n.res.ForkOff)*8 >= 192 {
		t.Errorf("sf-grows: fork offset %d did not move down", n.res.ForkOff)
	}
}

// kernelXattrs converts attributes as stored to what Linux shows.
func kernelXattrs(t *testing.T, xs []xfs.Xattr) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, x := range xs {
		if name, ok := ondisk.LinuxACLName(x.Namespace, x.Name); ok {
			ents, err := ondisk.DecodeXFSACL(x.Value)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out[name] = ondisk.PosixACLXattr(ents)
		}
		out[x.FullName()] = x.Value
	}
	return out
}

func equalXattrs(t *testing.T, where string, got, want map[string][]byte) {
	t.Helper()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !slices.Equal(sortedNames(got), sortedNames(want)) {
		t.Errorf("%s: xattrs %q, want %q", where, sortedNames(got), sortedNames(want))
		return
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s: xattr %s: %d bytes %.20x..., want %d bytes %.20x...", where, k, len(got[k]), got[k], len(v), v)
		}
	}
}

func verifyEngine(t *testing.T, img string, tr *testTree) {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for _, n := range append([]*tnode{tr.root}, tr.nodes...) {
		where := "/" + n.paths[0]
		ip, err := fs.Inode(n.in.Ino)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if ip.Mode != n.in.Mode || ip.NLink != n.in.NLink || ip.UID != n.in.UID || ip.GID != n.in.GID || ip.Mtime != n.in.Mtime {
			t.Errorf("%s: mode 0%o nlink %d uid %d gid %d mtime %v, want 0%o %d %d %d %v", where, ip.Mode, ip.NLink, ip.UID, ip.GID, ip.Mtime,
				n.in.Mode, n.in.NLink, n.in.UID, n.in.GID, n.in.Mtime)
		}
		switch n.ftype() {
		case ondisk.ModeDir:
			ents, err := fs.ReadDir(ip)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			got := map[string]uint64{}
			for _, e := range ents {
				got[string(e.Name)] = e.Ino
			}
			want := map[string]uint64{".": n.in.Ino, "..": n.in.Parent}
			for i, k := range n.kids {
				want[n.names[i]] = k.in.Ino
			}
			if len(got) != len(want) || len(ents) != len(want) {
				t.Errorf("%s: %d entries, want %d", where, len(ents), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: entry %q -> %d, want %d", where, k, got[k], v)
					break
				}
			}
			// Hash lookups exercise the leaf and node indexes.
			for i := 0; i < len(n.kids); i += max(1, len(n.kids)/50) {
				e, err := fs.Lookup(ip, []byte(n.names[i]))
				if err != nil || e.Ino != n.kids[i].in.Ino {
					t.Errorf("%s: lookup %q: %v %v", where, n.names[i], e, err)
					break
				}
			}
		case ondisk.ModeSymlink:
			s, err := fs.Readlink(ip)
			if err != nil || s != string(n.in.Target) {
				t.Errorf("%s: readlink %d bytes, %v; want %d bytes", where, len(s), err, len(n.in.Target))
			}
		case ondisk.ModeReg:
			if ip.Size != n.in.Size {
				t.Errorf("%s: size %d, want %d", where, ip.Size, n.in.Size)
			}
			f, err := fs.OpenFile(ip)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			for off, want := range n.data {
				got := make([]byte, len(want))
				if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: data at %d differs (%v)", where, off, err)
				}
			}
		default:
			if r, _ := ip.Rdev(); r != n.in.Rdev {
				t.Errorf("%s: rdev 0x%x, want 0x%x", where, r, n.in.Rdev)
			}
		}
		xs, err := fs.ListXattrs(ip)
		if err != nil {
			t.Fatalf("%s: xattrs: %v", where, err)
		}
		equalXattrs(t, where, kernelXattrs(t, xs), n.xattrs)
	}
}

func verifyKernel(t *testing.T, mnt string, tr *testTree) {
	t.Helper()
	for _, n := range tr.nodes {
		for _, p := range n.paths {
			full := filepath.Join(mnt, p)
			var st unix.Stat_t
			if err := unix.Lstat(full, &st); err != nil {
				t.Fatalf("%v", err)
			}
			if uint16(st.Mode) != n.in.Mode || uint32(st.Nlink) != n.in.NLink || st.Uid != n.in.UID || st.Gid != n.in.GID ||
				st.Mtim.Sec != n.in.Mtime.Sec || uint32(st.Mtim.Nsec) != n.in.Mtime.Nsec ||
				st.Atim.Sec != n.in.Atime.Sec || uint32(st.Atim.Nsec) != n.in.Atime.Nsec {
				t.Errorf("%s: kernel shows mode 0%o nlink %d uid %d gid %d mtime %d.%09d atime %d.%09d; want 0%o %d %d %d %v %v", p,
					st.Mode, st.Nlink, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec, st.Atim.Sec, st.Atim.Nsec,
					n.in.Mode, n.in.NLink, n.in.UID, n.in.GID, n.in.Mtime, n.in.Atime)
			}
			if n.in.Mode&ondisk.ModeTypeMask == ondisk.ModeReg && uint64(st.Size) != n.in.Size {
				t.Errorf("%s: size %d, want %d", p, st.Size, n.in.Size)
			}
		}
		full := filepath.Join(mnt, n.paths[0])
		switch n.ftype() {
		case ondisk.ModeDir:
			ents, err := os.ReadDir(full)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			want := slices.Clone(n.names)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: kernel lists %d names, want %d", n.paths[0], len(got), len(want))
			}
		case ondisk.ModeSymlink:
			if s, err := os.Readlink(full); err != nil || s != string(n.in.Target) {
				t.Errorf("%s: readlink %v", n.paths[0], err)
			}
		case ondisk.ModeReg:
			checkKernelFile(t, full, n)
		case ondisk.ModeChar, ondisk.ModeBlock:
			var st unix.Stat_t
			unix.Lstat(full, &st)
			if unix.Major(st.Rdev) != ondisk.DevMajor(n.in.Rdev) || unix.Minor(st.Rdev) != ondisk.DevMinor(n.in.Rdev) {
				t.Errorf("%s: rdev %d:%d, want %d:%d", n.paths[0], unix.Major(st.Rdev), unix.Minor(st.Rdev),
					ondisk.DevMajor(n.in.Rdev), ondisk.DevMinor(n.in.Rdev))
			}
		}
		equalXattrs(t, n.paths[0]+" (kernel)", kernelListXattrs(t, full), n.xattrs)
	}
}

func checkKernelFile(t *testing.T, full string, n *tnode) {
	t.Helper()
	f, err := os.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []int64
	for off, d := range n.data {
		got := make([]byte, len(d))
		if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, d) {
			t.Errorf("%s: kernel data at %d differs (%v)", full, off, err)
		}
		want = append(want, off)
	}
	// Holes stay holes: SEEK_DATA finds exactly the data blocks.
	var got []int64
	for off := int64(0); ; {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		bs := int64(len(n.data[d]))
		for o := d; o < h; o += max(bs, 1) {
			got = append(got, o)
			if bs == 0 {
				break
			}
		}
		off = h
	}
	slices.Sort(want)
	if len(got) != len(want) {
		t.Errorf("%s: SEEK_DATA finds %d data blocks, want %d", full, len(got), len(want))
	}
}

func kernelListXattrs(t *testing.T, full string) map[string][]byte {
	t.Helper()
	buf := make([]byte, 1<<20)
	n, err := unix.Llistxattr(full, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", full, err)
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 1<<17)
		m, err := unix.Lgetxattr(full, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", full, name, err)
		}
		out[name] = v[:m]
	}
	return out
}

// kernelChanges lets the kernel add to and remove from every structure.
func kernelChanges(t *testing.T, mnt string, tr *testTree) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	j := func(p ...string) string { return filepath.Join(append([]string{mnt}, p...)...) }
	for _, d := range []string{"sf", "block", "leaf", "node", "long-names", "fragmented", "huge"} {
		n := tr.lookupMaybe("t/dirs/" + d)
		if n == nil {
			continue
		}
		for i, name := range n.names {
			if i%3 == 0 {
				must(os.Remove(j("t/dirs", d, name)))
			}
		}
		for i := 0; i < 300; i++ {
			must(os.WriteFile(j("t/dirs", d, fmt.Sprintf("new-%d", i)), []byte("x"), 0o644))
		}
		must(os.Mkdir(j("t/dirs", d, "newdir"), 0o755))
	}
	for _, name := range tr.lookup("t/dirs/with-subdirs").names[:20] {
		must(os.Remove(j("t/dirs/with-subdirs", name)))
	}
	node := j("t/xattrs/node")
	for i := 0; i < 600; i += 2 {
		must(unix.Removexattr(node, name("user.node", i, 30)))
	}
	for i := 0; i < 100; i++ {
		must(unix.Setxattr(node, fmt.Sprintf("user.added%d", i), pattern(i, 70), 0))
	}
	must(unix.Setxattr(j("t/xattrs/remote"), "user.big", pattern(99, 30000), 0))
	must(unix.Removexattr(j("t/xattrs/remote"), "trusted.max"))
	must(unix.Setxattr(j("t/xattrs/sf"), "user.more", pattern(1, 200), 0))
	must(unix.Setxattr(j("t/devices/with-attrs"), "trusted.grow", pattern(1, 500), 0))
	f, err := os.OpenFile(j("t/files/sparse-2500"), os.O_RDWR, 0)
	must(err)
	_, err = f.WriteAt(pattern(4, 1<<20), 12345)
	must(err)
	must(f.Truncate(1 << 22))
	must(f.Close())
	must(os.Remove(j("t/symlinks/max")))
	must(os.Symlink(strings.Repeat("z", 900), j("t/symlinks/max")))
	must(os.RemoveAll(j("t/devices")))
	must(os.Rename(j("t/files/far"), j("t/dirs/sf/far")))
}

func (tr *testTree) lookupMaybe(p string) *tnode {
	for _, n := range tr.nodes {
		if slices.Contains(n.paths, p) {
			return n
		}
	}
	return nil
}

// TestAGTreesMultiLevel makes every AG B-tree grow beyond one block: many
// inode chunks, free space cut into many pieces and many reverse
// mappings, on 1 KiB blocks.
func TestAGTreesMultiLevel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "1g", "-b", "size=1024", "-m", "rmapbt=1")
	ti := openTestImage(t, img, 0)
	tr := newTestTree(t, ti, 150)
	top := tr.dir(tr.root, "t")
	ti.frag = 1 // a free block after every allocation
	for i := 0; i < 600; i++ {
		tr.file(top, fmt.Sprintf("f%03d", i), 1000, []uint64{0})
	}
	ti.frag = 0
	tr.pack()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, magic := range []uint32{ondisk.BnobtMagic, ondisk.CntbtMagic, ondisk.InobtMagic, ondisk.FinobtMagic, ondisk.RmapbtMagic} {
		_, levels, err := fs.AGBtreeRoot(0, magic)
		if err != nil {
			t.Fatal(err)
		}
		if levels < 2 {
			t.Errorf("%s has %d level(s); the test wants several", ondisk.BtreeName(magic), levels)
		}
	}
	fs.Close()
	verifyEngine(t, img, tr)
	oracle.RequireRepairClean(t, img)
	requireCheckClean(t, img)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	verifyKernel(t, mnt, tr)
	for i := 0; i < 600; i += 2 {
		if err := os.Remove(filepath.Join(mnt, "t", fmt.Sprintf("f%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2000; i++ {
		if err := os.WriteFile(filepath.Join(mnt, "t", fmt.Sprintf("n%04d", i)), []byte("n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Unmount(t, mnt)
	oracle.RequireRepairClean(t, img)
	requireCheckClean(t, img)
}
