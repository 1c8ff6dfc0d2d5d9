package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// ---- deterministic file content ----

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

var words = []string{"xfs ", "inode ", "extent ", "btree ", "allocation ", "group ", "journal ", "dump ", "restore ", "\n"}

// content fills p with the bytes of inode ino at file offset off. Odd
// inodes get incompressible bytes, even ones compressible text.
func content(ino uint64, off int64, p []byte) {
	if ino%2 == 1 {
		i := 0
		for i < len(p) {
			x := off + int64(i)
			w := splitmix(ino*0x1000193 ^ uint64(x/8))
			for s := x % 8; s < 8 && i < len(p); s++ {
				p[i] = byte(w >> (8 * s))
				i++
			}
		}
		return
	}
	for i := range p {
		x := uint64(off) + uint64(i)
		blk := x / 64
		w := words[splitmix(ino^blk)%uint64(len(words))]
		p[i] = w[x%uint64(len(w))]
	}
}

type contentReader struct {
	ino uint64
	off int64
	n   int64
}

func (c *contentReader) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	content(c.ino, c.off, p)
	c.off += int64(len(p))
	c.n -= int64(len(p))
	return len(p), nil
}

// ---- synthetic trees ----

type ext struct{ off, n int64 }

type tfile struct {
	meta   FileMeta
	xattrs []Xattr
	exts   []ext
}

// op is one writer call: a directory, a file or a hard link.
type op struct {
	dir  *Dir
	file *tfile
	link *HardLink
}

type tree struct {
	hdr   Header
	dirs  []Dir
	files map[uint64]*tfile
	links []HardLink
	ops   []op
	data  int64
}

type treeOpts struct {
	dirs, files int
	maxFile     int64 // largest regular file
	big         int64 // if > 0: one extra file of this size with a hole in the middle
	small       bool  // no 64 KiB xattrs (small fuzz seeds)
}

func ts(r *rand.Rand) Timestamp {
	// Include dates before 1970 and after 2038.
	return Timestamp{Sec: r.Int64N(1<<34) - 1<<32, Nsec: uint32(r.IntN(1e9))}
}

func genTree(seed uint64, o treeOpts) *tree {
	r := rand.New(rand.NewPCG(seed, seed^0xabcdef))
	tr := &tree{files: map[uint64]*tfile{}}
	tr.hdr = Header{SessionLabel: "test session", MediaLabel: "media-A", FSLabel: "testfs", Level: 1,
		Subtrees: []string{"home", "var/log"}, Created: time.Unix(2000000000, 123456789)}
	tr.hdr.SessionID[0], tr.hdr.SessionID[15] = byte(seed), 0x42
	tr.hdr.FSUUID[3] = 7
	tr.hdr.BaseSessionID[1] = 9
	meta := func(ino uint64, mode uint32) FileMeta {
		return FileMeta{Ino: ino, Mode: mode, UID: uint32(r.IntN(2000)), GID: uint32(r.IntN(2000)), Nlink: 1,
			Atime: ts(r), Mtime: ts(r), Ctime: ts(r), Crtime: ts(r), ProjectID: uint32(r.IntN(5)),
			XFlags: uint32(r.IntN(4)), Gen: r.Uint32()}
	}
	xattrs := func() []Xattr {
		var xs []Xattr
		nx := 4
		if o.small {
			nx = 2
		}
		for i := range r.IntN(nx) {
			v := make([]byte, r.IntN(300))
			if o.small {
				v = v[:len(v)/10]
			}
			for j := range v {
				v[j] = byte(r.IntN(256))
			}
			xs = append(xs, Xattr{Namespace: XattrNamespace(r.IntN(4)), Name: fmt.Sprintf("attr%d", i), Value: v})
		}
		if r.IntN(20) == 0 && !o.small {
			xs = append(xs, Xattr{Namespace: XattrUser, Name: "big", Value: bytes.Repeat([]byte{0x5a}, 65536)})
		}
		return xs
	}
	// Inode numbers: directories and files interleave in inode space.
	ino := uint64(128)
	var dirInos, fileInos []uint64
	for range o.dirs + o.files {
		ino += 1 + uint64(r.IntN(3))
		if len(dirInos) < o.dirs && (r.IntN(o.dirs+o.files) < o.dirs || len(fileInos) == o.files) {
			dirInos = append(dirInos, ino)
		} else {
			fileInos = append(fileInos, ino)
		}
	}
	if o.big > 0 {
		ino += 5
		fileInos = append(fileInos, ino)
	}
	root := dirInos[0]
	entries := map[uint64][]DirEntry{}
	parent := map[uint64]uint64{root: root}
	for i, d := range dirInos[1:] {
		p := dirInos[r.IntN(i+1)]
		parent[d] = p
		entries[p] = append(entries[p], DirEntry{Name: fmt.Sprintf("dir%d", d), Ino: d, Type: TypeDir})
	}
	for i, f := range fileInos {
		var tf tfile
		switch {
		case o.big > 0 && i == len(fileInos)-1:
			tf.meta = meta(f, ModeRegular|0o600)
			tf.meta.Size = o.big
			half := o.big / 2
			tf.exts = []ext{{0, half - 3<<20}, {half, o.big - half}}
		case r.IntN(10) == 0:
			tf.meta = meta(f, ModeSymlink|0o777)
			tf.meta.Symlink = fmt.Sprintf("../target/%d/%s", f, bytes.Repeat([]byte("x"), r.IntN(200)))
			tf.meta.Size = int64(len(tf.meta.Symlink))
		case r.IntN(15) == 0:
			tf.meta = meta(f, ModeCharDev|0o644)
			tf.meta.Rdev = uint64(r.IntN(1 << 20))
		case r.IntN(20) == 0:
			tf.meta = meta(f, ModeFIFO|0o644)
		default:
			tf.meta = meta(f, ModeRegular|0o644)
			size := r.Int64N(o.maxFile + 1)
			if r.IntN(8) == 0 {
				size = 0
			}
			tf.meta.Size = size
			// Random extents with holes between them.
			var pos int64
			for pos < size {
				if r.IntN(3) == 0 {
					pos += r.Int64N(size-pos) / 2 // hole
				}
				n := min(size-pos, 1+r.Int64N(max(size/2, 1)))
				if n <= 0 {
					break
				}
				tf.exts = append(tf.exts, ext{pos, n})
				pos += n
			}
		}
		tf.xattrs = xattrs()
		for _, e := range tf.exts {
			tr.data += e.n
		}
		tr.files[f] = &tf
		d := dirInos[r.IntN(len(dirInos))]
		entries[d] = append(entries[d], DirEntry{Name: fmt.Sprintf("f%d", f), Ino: f, Type: tf.meta.Type()})
	}
	for _, d := range dirInos {
		dm := meta(d, ModeDir|0o755)
		dm.Size = 4096
		tr.dirs = append(tr.dirs, Dir{Meta: dm, Parent: parent[d], Xattrs: xattrs(), Entries: entries[d]})
	}
	for i := range tr.dirs {
		tr.ops = append(tr.ops, op{dir: &tr.dirs[i]})
	}
	for _, f := range fileInos {
		tf := tr.files[f]
		tr.ops = append(tr.ops, op{file: tf})
		if tf.meta.Type() == TypeRegular && r.IntN(12) == 0 {
			tf.meta.Nlink = 2
			l := HardLink{Ino: f, Parent: root, Name: fmt.Sprintf("link%d", f)}
			tr.links = append(tr.links, l)
			tr.ops = append(tr.ops, op{link: &tr.links[len(tr.links)-1]})
		}
	}
	return tr
}

// write performs ops[from:] on w.
func (tr *tree) write(w *Writer, from int) error {
	for _, o := range tr.ops[from:] {
		var err error
		switch {
		case o.dir != nil:
			err = w.WriteDir(*o.dir)
		case o.file != nil:
			var ds []DataExtent
			for _, e := range o.file.exts {
				ds = append(ds, DataExtent{Offset: e.off, Length: e.n, R: &contentReader{ino: o.file.meta.Ino, off: e.off, n: e.n}})
			}
			err = w.WriteFile(o.file.meta, o.file.xattrs, ds)
		case o.link != nil:
			err = w.WriteHardLink(*o.link)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeStream(t testing.TB, tr *tree, opts WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, tr.hdr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.write(w, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type readResult struct {
	dirs      map[uint64]*Dir
	files     map[uint64]bool // ino -> intact and verified
	links     int
	damaged   map[uint64]bool // inos named in damage reports or marked damaged
	truncated bool            // a damage report says the rest of the stream is lost
}

// readAll reads a stream and checks every intact entry against the tree.
func readAll(t testing.TB, r *Reader, tr *tree) readResult {
	t.Helper()
	res := readResult{dirs: map[uint64]*Dir{}, files: map[uint64]bool{}, damaged: map[uint64]bool{}}
	buf := make([]byte, MaxDataPiece)
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		switch e := e.(type) {
		case *Dir:
			if e.Damaged {
				res.damaged[e.Meta.Ino] = true
				continue
			}
			want := tr.findDir(e.Meta.Ino)
			if want == nil {
				t.Fatalf("unknown dir %d", e.Meta.Ino)
			}
			checkDir(t, e, want)
			res.dirs[e.Meta.Ino] = e
		case *File:
			want := tr.files[e.Meta.Ino]
			if want == nil {
				t.Fatalf("unknown file %d", e.Meta.Ino)
			}
			ok := !e.Damaged
			if ok {
				checkMetaEq(t, &e.Meta, &want.meta)
				checkXattrsEq(t, e.Meta.Ino, e.Xattrs, want.xattrs)
			}
			var got []ext
			for {
				x, err := e.NextExtent()
				if err == io.EOF {
					break
				}
				var de *DamageError
				if errors.As(err, &de) {
					ok = false
					continue
				}
				if err != nil {
					t.Fatalf("inode %d: NextExtent: %v", e.Meta.Ino, err)
				}
				exp := buf[:len(x.Data)]
				content(e.Meta.Ino, x.Offset, exp)
				if !bytes.Equal(exp, x.Data) {
					t.Fatalf("inode %d: data at %d+%d differs", e.Meta.Ino, x.Offset, len(x.Data))
				}
				if n := len(got); n > 0 && got[n-1].off+got[n-1].n == x.Offset {
					got[n-1].n += int64(len(x.Data))
				} else {
					got = append(got, ext{x.Offset, int64(len(x.Data))})
				}
			}
			if e.Damaged {
				ok = false
			}
			if ok {
				if !extentsEqual(got, want.exts) {
					t.Fatalf("inode %d: extents %v, want %v", e.Meta.Ino, got, want.exts)
				}
				res.files[e.Meta.Ino] = true
			} else {
				res.damaged[e.Meta.Ino] = true
			}
		case *HardLink:
			res.links++
		}
	}
	for _, d := range r.Damage() {
		res.truncated = res.truncated || d.Lost < 0
		for _, ino := range d.Inos {
			res.damaged[ino] = true
		}
	}
	return res
}

// extentsEqual compares extents after merging adjacent ones.
func extentsEqual(a, b []ext) bool {
	merge := func(x []ext) []ext {
		var out []ext
		for _, e := range x {
			if n := len(out); n > 0 && out[n-1].off+out[n-1].n == e.off {
				out[n-1].n += e.n
			} else {
				out = append(out, e)
			}
		}
		return out
	}
	a, b = merge(a), merge(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (tr *tree) findDir(ino uint64) *Dir {
	for i := range tr.dirs {
		if tr.dirs[i].Meta.Ino == ino {
			return &tr.dirs[i]
		}
	}
	return nil
}

func checkMetaEq(t testing.TB, got, want *FileMeta) {
	t.Helper()
	if *got != *want {
		t.Fatalf("inode %d: meta\n got %+v\nwant %+v", want.Ino, *got, *want)
	}
}

func checkXattrsEq(t testing.TB, ino uint64, got, want []Xattr) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("inode %d: %d xattrs, want %d", ino, len(got), len(want))
	}
	for i := range got {
		if got[i].Namespace != want[i].Namespace || got[i].Name != want[i].Name || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("inode %d: xattr %d differs", ino, i)
		}
	}
}

func checkDir(t testing.TB, got, want *Dir) {
	t.Helper()
	checkMetaEq(t, &got.Meta, &want.Meta)
	checkXattrsEq(t, got.Meta.Ino, got.Xattrs, want.Xattrs)
	if got.Parent != want.Parent || len(got.Entries) != len(want.Entries) {
		t.Fatalf("dir %d: parent %d entries %d, want %d %d", got.Meta.Ino, got.Parent, len(got.Entries), want.Parent, len(want.Entries))
	}
	for i := range got.Entries {
		if got.Entries[i] != want.Entries[i] {
			t.Fatalf("dir %d: entry %d = %+v, want %+v", got.Meta.Ino, i, got.Entries[i], want.Entries[i])
		}
	}
}

// logicalBytes decodes all chunks of one or more media files (in order) and
// returns the logical stream.
func logicalBytes(t testing.TB, media ...[]byte) []byte {
	t.Helper()
	var list []Media
	for i, m := range media {
		list = append(list, Media{Name: fmt.Sprint(i), R: bytes.NewReader(m)})
	}
	cs, err := openMedia(list, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for {
		ch, err := cs.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.logical != int64(len(out)) {
			t.Fatalf("chunk %d at logical %d, expected %d", ch.seq, ch.logical, len(out))
		}
		out = append(out, ch.data...)
	}
	if n := cs.takeNotes(); len(n) > 0 {
		t.Fatalf("notes while decoding chunks: %+v", n)
	}
	return out
}

// memFile is an in-memory ResumeFile.
type memFile struct {
	name string
	b    []byte
	pos  int64
}

func (m *memFile) Name() string { return m.name }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) Write(p []byte) (int, error) {
	if m.pos > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, m.pos-int64(len(m.b)))...)
	}
	n := copy(m.b[m.pos:], p)
	m.b = append(m.b, p[n:]...)
	m.pos += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += m.pos
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	if off < 0 {
		return 0, errors.New("negative seek")
	}
	m.pos = off
	return off, nil
}

func (m *memFile) Truncate(n int64) error {
	if n < int64(len(m.b)) {
		m.b = m.b[:n]
	} else {
		m.b = append(m.b, make([]byte, n-int64(len(m.b)))...)
	}
	return nil
}

func (m *memFile) Close() error { return nil }
