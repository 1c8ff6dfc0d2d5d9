package restore

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
	"xfskit/internal/treecmp"
)

// ---- a test stand-in for dump: a real directory tree as a stream ----

type dumpOpts struct {
	level   uint32
	base    stream.UUID
	session stream.UUID
	fsuuid  stream.UUID
	streams int
	// include chooses the files of an incremental dump (nil: all).
	include     func(rel string, st *unix.Stat_t) bool
	compression stream.Compression
	chunkSize   int
	mediaSize   int64
	// edit, if set, may change the directories and files before writing.
	edit func(dirs []*stream.Dir, files []*dumpFile)
}

type dumpFile struct {
	meta   stream.FileMeta
	xattrs []stream.Xattr
	path   string // absolute, for the data
	ranges [][2]int64
	rel    string
}

// dumped is what dumpDir wrote.
type dumped struct {
	session stream.UUID
	files   []string                   // stream files (or media base names)
	meta    map[string]stream.FileMeta // by relative path ("." for the root)
}

var testFSUUID = stream.UUID{0xfe, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}

func newUUID(t testing.TB) stream.UUID {
	var u stream.UUID
	if _, err := rand.Read(u[:]); err != nil {
		t.Fatal(err)
	}
	return u
}

func tsOf(t unix.Timespec) stream.Timestamp {
	return stream.Timestamp{Sec: t.Sec, Nsec: uint32(t.Nsec)}
}

func metaOf(path string, st *unix.Stat_t) stream.FileMeta {
	m := stream.FileMeta{Ino: st.Ino, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Nlink: uint32(st.Nlink),
		Size: st.Size, Atime: tsOf(st.Atim), Mtime: tsOf(st.Mtim), Ctime: tsOf(st.Ctim)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		m.Rdev = st.Rdev
	case unix.S_IFLNK:
		m.Symlink, _ = os.Readlink(path)
	case unix.S_IFDIR:
		m.Size = 0
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFLNK {
		m.Size = 0
	}
	return m
}

func readXattrs(t testing.TB, path string) []stream.Xattr {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", path, err)
	}
	var out []stream.Xattr
	for _, name := range splitNul(buf[:n]) {
		v := make([]byte, 70<<10)
		k, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", path, name, err)
		}
		x := stream.Xattr{Value: append([]byte{}, v[:k]...)}
		switch {
		case strings.HasPrefix(name, "user."):
			x.Namespace, x.Name = stream.XattrUser, name[5:]
		case strings.HasPrefix(name, "trusted."):
			x.Namespace, x.Name = stream.XattrTrusted, name[8:]
		case strings.HasPrefix(name, "security."):
			x.Namespace, x.Name = stream.XattrSecurity, name[9:]
		case strings.HasPrefix(name, "system."):
			x.Namespace, x.Name = stream.XattrRoot, name[7:]
		default:
			t.Fatalf("%s: xattr %s", path, name)
		}
		out = append(out, x)
	}
	return out
}

func dataRanges(t testing.TB, path string, size int64) [][2]int64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]int64
	off := int64(0)
	for off < size {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no more data
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		h = min(h, size)
		if h > d {
			out = append(out, [2]int64{d, h - d})
		}
		off = h
	}
	return out
}

// dumpDir writes the tree under root as o.streams streams in dir out.
func dumpDir(t testing.TB, root, out string, o dumpOpts) *dumped {
	t.Helper()
	if o.streams == 0 {
		o.streams = 1
	}
	if o.session == (stream.UUID{}) {
		o.session = newUUID(t)
	}
	if o.fsuuid == (stream.UUID{}) {
		o.fsuuid = testFSUUID
	}
	res := &dumped{session: o.session, meta: map[string]stream.FileMeta{}}
	var dirs []*stream.Dir
	byIno := map[uint64]*dumpFile{}
	var walk func(abs, rel string, parent uint64)
	walk = func(abs, rel string, parent uint64) {
		var st unix.Stat_t
		if err := unix.Lstat(abs, &st); err != nil {
			t.Fatal(err)
		}
		m := metaOf(abs, &st)
		key := rel
		if key == "" {
			key = "."
		}
		res.meta[key] = m
		if parent == 0 {
			parent = st.Ino
		}
		d := &stream.Dir{Meta: m, Parent: parent, Xattrs: readXattrs(t, abs)}
		dirs = append(dirs, d)
		ents, err := os.ReadDir(abs)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if rel == "" && e.Name() == stateDirName {
				continue
			}
			cabs, crel := filepath.Join(abs, e.Name()), joinPath(rel, e.Name())
			var cst unix.Stat_t
			if err := unix.Lstat(cabs, &cst); err != nil {
				t.Fatal(err)
			}
			d.Entries = append(d.Entries, stream.DirEntry{Name: e.Name(), Ino: cst.Ino, Type: stream.TypeOfMode(cst.Mode)})
			if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
				walk(cabs, crel, st.Ino)
				continue
			}
			cm := metaOf(cabs, &cst)
			res.meta[crel] = cm
			if byIno[cst.Ino] != nil {
				continue
			}
			if o.include != nil && !o.include(crel, &cst) {
				byIno[cst.Ino] = &dumpFile{} // named, not dumped
				continue
			}
			f := &dumpFile{meta: cm, xattrs: readXattrs(t, cabs), path: cabs, rel: crel}
			if cst.Mode&unix.S_IFMT == unix.S_IFREG {
				f.ranges = dataRanges(t, cabs, cst.Size)
			}
			byIno[cst.Ino] = f
		}
	}
	walk(root, "", 0)
	var files []*dumpFile
	for _, f := range byIno {
		if f.path != "" {
			files = append(files, f)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Meta.Ino < dirs[j].Meta.Ino })
	sort.Slice(files, func(i, j int) bool { return files[i].meta.Ino < files[j].meta.Ino })
	if o.edit != nil {
		o.edit(dirs, files)
	}
	per := (len(files) + o.streams - 1) / max(o.streams, 1)
	for s := 0; s < o.streams; s++ {
		name := filepath.Join(out, fmt.Sprintf("s%d.xfsd", s))
		lo, hi := min(s*per, len(files)), min((s+1)*per, len(files))
		writeStream(t, name, o, uint32(s), dirs, files[lo:hi])
		res.files = append(res.files, name)
	}
	return res
}

func writeStream(t testing.TB, name string, o dumpOpts, index uint32, dirs []*stream.Dir, files []*dumpFile) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wo := stream.WriterOptions{Compression: o.compression, ChunkSize: o.chunkSize, Concurrency: 2}
	if o.mediaSize > 0 {
		f.Close()
		os.Remove(name)
		if f, err = os.Create(stream.MediaName(name, 0)); err != nil {
			t.Fatal(err)
		}
		wo.MaxMediaSize = o.mediaSize
		wo.OpenMedia = stream.CreateMedia(name)
	}
	hdr := stream.Header{SessionID: o.session, StreamIndex: index, StreamCount: uint32(o.streams), FSUUID: o.fsuuid,
		Level: o.level, BaseSessionID: o.base, SessionLabel: "test", Created: time.Now()}
	w, err := stream.NewWriter(f, hdr, wo)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := w.WriteDir(*d); err != nil {
			t.Fatal(err)
		}
	}
	for _, df := range files {
		var exts []stream.DataExtent
		var fh *os.File
		if len(df.ranges) > 0 {
			if fh, err = os.Open(df.path); err != nil {
				t.Fatal(err)
			}
			for _, r := range df.ranges {
				exts = append(exts, stream.DataExtent{Offset: r[0], Length: r[1], R: io.NewSectionReader(fh, r[0], r[1])})
			}
		}
		if err := w.WriteFile(df.meta, df.xattrs, exts); err != nil {
			t.Fatal(err)
		}
		if fh != nil {
			fh.Close()
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// ---- building source trees ----

type builder struct {
	t    testing.TB
	root string
}

func (b *builder) p(rel string) string { return filepath.Join(b.root, filepath.FromSlash(rel)) }

func (b *builder) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
}

func (b *builder) mkdir(rel string, mode uint32) {
	b.t.Helper()
	b.must(os.MkdirAll(b.p(rel), 0o755))
	b.must(unix.Chmod(b.p(rel), mode))
}

func (b *builder) write(rel string, data []byte) {
	b.t.Helper()
	b.must(os.WriteFile(b.p(rel), data, 0o644))
}

// sparse writes a file with data only at the given offsets.
func (b *builder) sparse(rel string, size int64, pieces map[int64][]byte) {
	b.t.Helper()
	f, err := os.Create(b.p(rel))
	b.must(err)
	for off, d := range pieces {
		_, err := f.WriteAt(d, off)
		b.must(err)
	}
	b.must(f.Truncate(size))
	b.must(f.Close())
}

func (b *builder) times(rel string, atime, mtime time.Time) {
	b.t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if atime.Year() < 1678 || atime.Year() > 2261 || mtime.Year() < 1678 || mtime.Year() > 2261 {
		ts = []unix.Timespec{{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())}, {Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}}
	}
	b.must(unix.UtimesNanoAt(unix.AT_FDCWD, b.p(rel), ts, unix.AT_SYMLINK_NOFOLLOW))
}

func pattern(seed, n int) []byte {
	out := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = byte(x)
	}
	return out
}

// testACL has a named user entry, so that files inherit it as an access ACL.
var testACL = treecmp.ACLXattr([]treecmp.ACLEntry{{Tag: 1, Perm: 6, ID: 0xffffffff}, {Tag: 2, Perm: 4, ID: 1000},
	{Tag: 4, Perm: 4, ID: 0xffffffff}, {Tag: 0x10, Perm: 4, ID: 0xffffffff}, {Tag: 0x20, Perm: 0, ID: 0xffffffff}})

// fullTree makes a tree with every file type and the metadata restore must
// keep. Directory times are set last.
func fullTree(t testing.TB, root string) {
	b := &builder{t: t, root: root}
	b.mkdir("a/b/c", 0o755)
	b.mkdir("private", 0o700)
	b.mkdir("sticky", 0o1777)
	b.mkdir("setgid", 0o2755)
	b.mkdir("empty", 0o555)
	b.write("a/small", []byte("hello\n"))
	b.write("a/empty", nil)
	b.write("a/b/c/deep", pattern(1, 5000))
	b.write("big", pattern(2, 3<<20+123))
	b.sparse("sparse", 9<<20, map[int64][]byte{0: pattern(3, 4096), 4 << 20: pattern(4, 8192)})
	b.sparse("hole-start", 1<<20+4096, map[int64][]byte{1 << 20: pattern(5, 4096)})
	b.sparse("hole-end", 3<<20, map[int64][]byte{0: pattern(6, 100)})
	b.sparse("all-hole", 5<<20, nil)
	b.must(os.Symlink("a/small", b.p("link")))
	b.must(os.Symlink("/etc/passwd", b.p("a/abs-link")))
	b.must(os.Symlink("dangling/nowhere", b.p("a/b/dangling")))
	b.must(os.Link(b.p("a/small"), b.p("a/b/hard1")))
	b.must(os.Link(b.p("a/small"), b.p("private/hard2")))
	b.must(unix.Mkfifo(b.p("fifo"), 0o640))
	b.must(unix.Mknod(b.p("sock"), unix.S_IFSOCK|0o755, 0))
	b.must(unix.Mknod(b.p("chr"), unix.S_IFCHR|0o620, int(unix.Mkdev(4, 64))))
	b.must(unix.Mknod(b.p("blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(259, 70000))))
	b.write("setuid", []byte("#!/bin/sh\n"))
	b.must(unix.Chmod(b.p("setuid"), 0o4755))
	b.write("owned", []byte("owned"))
	b.must(unix.Lchown(b.p("owned"), 1234, 5678))
	b.must(unix.Lchown(b.p("a/abs-link"), 4321, 8765))
	b.mkdir("names", 0o755)
	b.write("names/"+strings.Repeat("n", 255), nil)
	b.write("names/ütf-8 ☃ name", []byte("snow"))
	b.write("names/with\nnewline", []byte("nl"))
	b.write("names/\xff\xfe not utf8", []byte("raw"))
	b.write("xattrs", []byte("x"))
	for _, x := range []struct {
		name string
		v    []byte
	}{{"user.plain", []byte("value")}, {"user.empty", nil}, {"user.big", pattern(7, 2000)},
		{"trusted.secret", []byte("t")}, {"security.label", []byte("s\x00bin")}} {
		b.must(unix.Lsetxattr(b.p("xattrs"), x.name, x.v, 0))
	}
	acl := testACL
	b.must(unix.Lsetxattr(b.p("xattrs"), "system.posix_acl_access", acl, 0))
	b.must(unix.Lsetxattr(b.p("a"), "system.posix_acl_default", acl, 0))
	b.must(unix.Lsetxattr(b.p("a"), "user.dir", []byte("on a dir"), 0))
	b.must(unix.Lsetxattr(b.p("link"), "trusted.onlink", []byte("l"), 0))
	b.must(unix.Lsetxattr(b.p("fifo"), "trusted.onfifo", []byte("f"), 0))
	b.write("old", []byte("old"))
	b.times("old", time.Date(1901, 12, 14, 0, 0, 0, 123456789, time.UTC), time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC))
	b.write("future", []byte("future"))
	b.times("future", time.Date(2106, 2, 7, 6, 28, 16, 1, time.UTC), time.Date(2400, 1, 1, 0, 0, 0, 500000000, time.UTC))
	b.times("link", time.Date(2001, 1, 1, 0, 0, 0, 111, time.UTC), time.Date(2002, 2, 2, 0, 0, 0, 222, time.UTC))
	b.times("a/abs-link", time.Date(2040, 1, 1, 0, 0, 0, 333, time.UTC), time.Date(2050, 2, 2, 0, 0, 0, 444, time.UTC))
	b.times("fifo", time.Date(1999, 1, 1, 0, 0, 0, 7, time.UTC), time.Date(1999, 1, 1, 0, 0, 0, 8, time.UTC))
	b.times("xattrs", time.Date(2010, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(2011, 1, 1, 0, 0, 0, 2, time.UTC))
	setDirTimes(t, root)
}

// setDirTimes gives every directory distinct times with nanoseconds
// (after its contents are final).
func setDirTimes(t testing.TB, root string) {
	i := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() {
			i++
			ts := []unix.Timespec{{Sec: int64(1e9 + i*1000), Nsec: int64(i * 7)}, {Sec: int64(1.2e9 + i*1000), Nsec: int64(i*13 + 1)}}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
}

// ---- running and comparing ----

func runRestore(t testing.TB, opts Options) *Result {
	t.Helper()
	res, err := Restore(context.Background(), opts)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	return res
}

func requireOK(t testing.TB, res *Result) {
	t.Helper()
	if !res.OK() {
		for _, d := range res.Damage {
			t.Errorf("damage: %s", d)
		}
		for _, p := range res.Problems {
			t.Errorf("problem: %s", p)
		}
		t.FailNow()
	}
}

func skipHousekeeping(p string, isDir bool) bool {
	return p == stateDirName || strings.HasPrefix(p, stateDirName+"/") || p == orphanageName
}

func snapshot(t testing.TB, dir string) *treecmp.Tree {
	t.Helper()
	tr, err := treecmp.FromDir(dir, treecmp.Options{Skip: skipHousekeeping})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// checkTimes compares atime and mtime (nanoseconds; symlinks included) of
// every path of want with dest, before anything reads dest.
func checkTimes(t testing.TB, dest string, want map[string]stream.FileMeta) {
	t.Helper()
	bad := 0
	for p, m := range want {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dest, p), &st); err != nil {
			t.Errorf("%s: %v", p, err)
			bad++
			continue
		}
		if tsOf(st.Mtim) != m.Mtime || tsOf(st.Atim) != m.Atime {
			t.Errorf("%s: times atime %v mtime %v, want %v %v", p, tsOf(st.Atim), tsOf(st.Mtim), m.Atime, m.Mtime)
			bad++
		}
		if bad > 20 {
			t.Fatal("too many differences")
		}
	}
}

// sameTree fails the test if dest differs from src (everything treecmp
// compares, plus data ranges).
func sameTree(t testing.TB, src, dest string) {
	t.Helper()
	diff := treecmp.Diff(snapshot(t, src), snapshot(t, dest), treecmp.DiffOptions{Sparse: true, Max: 40})
	for _, d := range diff {
		t.Error(d)
	}
	if len(diff) > 0 {
		t.FailNow()
	}
}

// dirListing returns every path under dir (for "nothing outside DEST").
func dirListing(t testing.TB, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func readAll(t testing.TB, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = bytes.Equal
