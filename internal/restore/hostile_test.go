package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// ---- raw stream encoder: streams the Writer would refuse to write ----

var le = binary.LittleEndian

func crcC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// raw builds a stream record by record, following docs/stream-format.md,
// without any of the Writer's checks.
type raw struct {
	session                         stream.UUID
	recs                            bytes.Buffer
	seq                             uint64
	chain                           uint32
	dirs, files, links, data, nxatt uint64
}

func newRaw(level uint32) *raw {
	s := &raw{session: stream.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}
	h := make([]byte, 96)
	le.PutUint16(h[0:], stream.VersionMajor)
	copy(h[8:], s.session[:])
	copy(h[40:], testFSUUID[:])
	le.PutUint32(h[56:], level)
	le.PutUint32(h[64:], 1)
	h[68] = byte(stream.CompressNone)
	le.PutUint32(h[72:], stream.DefaultChunkSize)
	le.PutUint64(h[80:], 1700000000)
	for range 3 {
		h = append(h, 0, 0)
	}
	h = le.AppendUint32(h, 0)
	s.rec(1, 0, h)
	return s
}

func (s *raw) rec(typ uint16, ino uint64, p []byte) {
	h := make([]byte, 40)
	copy(h, "\xd7XKREC\x0d\x8a")
	le.PutUint16(h[8:], typ)
	le.PutUint32(h[12:], uint32(len(p)))
	le.PutUint64(h[16:], s.seq)
	le.PutUint64(h[24:], ino)
	c := crc32.Update(crcC(h[:32]), castagnoli, p)
	le.PutUint32(h[32:], c)
	le.PutUint32(h[36:], crcC(h[:36]))
	if typ != 11 {
		s.chain = crc32.Update(s.chain, castagnoli, le.AppendUint32(nil, c))
	}
	s.seq++
	s.recs.Write(h)
	s.recs.Write(p)
}

func rawInode(m stream.FileMeta, parent uint64) []byte {
	b := make([]byte, 128)
	le.PutUint64(b[0:], m.Ino)
	le.PutUint32(b[8:], m.Mode)
	le.PutUint32(b[20:], m.Nlink)
	le.PutUint64(b[24:], uint64(m.Size))
	le.PutUint64(b[44:], uint64(m.Mtime.Sec))
	le.PutUint64(b[80:], m.Rdev)
	le.PutUint64(b[112:], parent)
	le.PutUint16(b[120:], uint16(len(m.Symlink)))
	return append(b, m.Symlink...)
}

func (s *raw) end(ino uint64, xattrs, entries, pieces, data uint64) {
	b := le.AppendUint64(nil, xattrs)
	b = le.AppendUint64(b, entries)
	b = le.AppendUint64(b, pieces)
	s.rec(6, ino, le.AppendUint64(b, data))
}

func (s *raw) dir(ino, parent uint64, mode uint32, entries ...stream.DirEntry) {
	s.rec(2, ino, rawInode(stream.FileMeta{Ino: ino, Mode: stream.ModeDir | mode, Nlink: 2}, parent))
	if len(entries) > 0 {
		b := le.AppendUint32(nil, uint32(len(entries)))
		for _, e := range entries {
			b = le.AppendUint64(b, e.Ino)
			b = append(b, byte(e.Type), 0)
			b = le.AppendUint16(b, uint16(len(e.Name)))
			b = append(b, e.Name...)
		}
		s.rec(4, ino, b)
	}
	s.end(ino, 0, uint64(len(entries)), 0, 0)
	s.dirs++
}

func (s *raw) dirsEnd() { s.rec(7, 0, le.AppendUint64(nil, s.dirs)) }

func (s *raw) file(m stream.FileMeta, data map[int64][]byte) {
	s.rec(2, m.Ino, rawInode(m, 0))
	var n, pieces uint64
	for off, d := range data {
		s.rec(5, m.Ino, append(le.AppendUint64(nil, uint64(off)), d...))
		n += uint64(len(d))
		pieces++
	}
	s.end(m.Ino, 0, 0, pieces, n)
	s.files++
	s.data += n
}

func (s *raw) hardLink(ino, parent uint64, name string) {
	b := le.AppendUint64(nil, ino)
	b = le.AppendUint64(b, parent)
	b = le.AppendUint16(b, uint16(len(name)))
	b = append(b, 0, 0, 0, 0, 0, 0)
	s.rec(8, ino, append(b, name...))
	s.links++
}

// bytes closes the stream (END, TRAILER) and frames it: media header,
// then uncompressed chunks.
func (s *raw) bytes() []byte {
	var e []byte
	for _, v := range []uint64{s.files, s.dirs, s.links, s.data, s.nxatt} {
		e = le.AppendUint64(e, v)
	}
	s.rec(9, 0, e)
	var t []byte
	for _, v := range []uint64{s.seq, s.files, s.dirs, s.links, s.data, s.nxatt, 0, 0, 0, 0} {
		t = le.AppendUint64(t, v)
	}
	t = le.AppendUint32(t, s.chain)
	s.rec(11, 0, le.AppendUint32(t, 0))

	out := make([]byte, 128)
	copy(out, "\xd7XKMED\x0d\x8a")
	le.PutUint16(out[8:], stream.VersionMajor)
	le.PutUint32(out[12:], 128)
	copy(out[16:], s.session[:])
	le.PutUint32(out[36:], 1)
	le.PutUint32(out[64:], stream.DefaultChunkSize)
	out[68] = byte(stream.CompressNone)
	le.PutUint32(out[124:], crcC(out[:124]))
	tag := crcC(append(append([]byte{}, s.session[:]...), 0, 0, 0, 0))
	raw := s.recs.Bytes()
	for seq, logical := uint64(0), 0; logical < len(raw); seq++ {
		n := min(len(raw)-logical, stream.DefaultChunkSize)
		c := raw[logical : logical+n]
		h := make([]byte, 48)
		copy(h, "\xd7XKCHK\x0d\x8a")
		le.PutUint64(h[8:], seq)
		le.PutUint64(h[16:], uint64(logical))
		le.PutUint32(h[24:], uint32(n))
		le.PutUint32(h[28:], uint32(n))
		h[32] = byte(stream.CompressNone)
		le.PutUint32(h[36:], crcC(c))
		le.PutUint32(h[40:], tag)
		le.PutUint32(h[44:], crcC(h[:44]))
		out = append(append(out, h...), c...)
		logical += n
	}
	return out
}

func reg(ino uint64, size int64) stream.FileMeta {
	return stream.FileMeta{Ino: ino, Mode: stream.ModeRegular | 0o644, Nlink: 1, Size: size}
}

func symlinkMeta(ino uint64, target string) stream.FileMeta {
	return stream.FileMeta{Ino: ino, Mode: stream.ModeSymlink | 0o777, Nlink: 1, Size: int64(len(target)), Symlink: target}
}

func ent(name string, ino uint64, typ stream.FileType) stream.DirEntry {
	return stream.DirEntry{Name: name, Ino: ino, Type: typ}
}

// ---- running a stream next to a canary ----

type sandbox struct {
	tmp, canary, dest, src string
	before                 []string
	canaryState            string
}

func canaryState(t testing.TB, dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		unix.Lstat(p, &st)
		b.WriteString(p + " " + string(rune(st.Mode)) + " " + tsOf(st.Mtim).Time().String() + " " + tsOf(st.Ctim).Time().String())
		if d.Type().IsRegular() {
			c, _ := os.ReadFile(p)
			b.Write(c)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

func newSandbox(t testing.TB, data []byte) *sandbox {
	tmp := t.TempDir()
	s := &sandbox{tmp: tmp, canary: filepath.Join(tmp, "canary"), dest: filepath.Join(tmp, "dest"), src: filepath.Join(tmp, "stream")}
	os.Mkdir(s.canary, 0o755)
	os.WriteFile(filepath.Join(s.canary, "passwd"), []byte("canary"), 0o644)
	os.WriteFile(filepath.Join(s.canary, "file"), []byte("canary file"), 0o644)
	os.WriteFile(s.src, data, 0o644)
	os.Mkdir(s.dest, 0o755)
	s.canaryState = canaryState(t, s.canary)
	return s
}

func (s *sandbox) run(t testing.TB, opts Options) (*Result, error) {
	opts.Sources = []string{s.src}
	opts.Dest = s.dest
	res, err := Restore(context.Background(), opts)
	s.check(t)
	return res, err
}

// check fails if anything outside dest changed.
func (s *sandbox) check(t testing.TB) {
	t.Helper()
	if got := canaryState(t, s.canary); got != s.canaryState {
		t.Fatalf("the canary outside the destination changed:\n%s\nwas\n%s", got, s.canaryState)
	}
	ents, _ := os.ReadDir(s.tmp)
	for _, e := range ents {
		switch e.Name() {
		case "canary", "dest", "stream":
		default:
			t.Fatalf("%s created outside the destination", e.Name())
		}
	}
}

func notOK(t *testing.T, res *Result, err error, want string) {
	t.Helper()
	if err != nil {
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one about %q", err, want)
		}
		return
	}
	if res.OK() {
		t.Fatalf("a hostile stream restored without complaint")
	}
	all := strings.Join(res.Damage, "\n")
	for _, p := range res.Problems {
		all += "\n" + p.String()
	}
	if want != "" && !strings.Contains(all, want) {
		t.Errorf("problems:\n%s\nwant one about %q", all, want)
	}
}

func TestHostileNames(t *testing.T) {
	oracle.Require(t, oracle.Root)
	for _, bad := range []string{"..", ".", "../canary", "/etc/passwd", "a/b", "x\x00y", "../../../../../../tmp/pwn"} {
		t.Run(strings.ReplaceAll(bad, "/", "_"), func(t *testing.T) {
			s := newRaw(0)
			s.dir(10, 10, 0o755, ent("ok", 11, stream.TypeRegular), ent(bad, 12, stream.TypeRegular))
			s.dirsEnd()
			s.file(reg(11, 2), map[int64][]byte{0: []byte("ok")})
			s.file(reg(12, 5), map[int64][]byte{0: []byte("pwned")})
			s.hardLink(11, 10, bad)
			sb := newSandbox(t, s.bytes())
			res, err := sb.run(t, Options{})
			notOK(t, res, err, "")
			for _, p := range dirListing(t, sb.dest) {
				if b, _ := os.ReadFile(p); string(b) == "pwned" {
					t.Errorf("%s holds the hostile file", p)
				}
			}
		})
	}
}

func TestHostileSymlinkThenWrite(t *testing.T) {
	oracle.Require(t, oracle.Root)
	for _, order := range []string{"symlink-first", "dir-first"} {
		t.Run(order, func(t *testing.T) {
			tmp := t.TempDir() // only for the canary path inside the stream
			_ = tmp
			s := newRaw(0)
			sym := ent("a", 20, stream.TypeSymlink)
			dir := ent("a", 11, stream.TypeDir)
			rootEnts := []stream.DirEntry{sym, dir, ent("b", 21, stream.TypeSymlink), ent("c", 22, stream.TypeSymlink)}
			if order == "dir-first" {
				rootEnts[0], rootEnts[1] = dir, sym
			}
			// Placeholder target, fixed below once the sandbox exists.
			s.dir(10, 10, 0o755, rootEnts...)
			s.dir(11, 10, 0o755, ent("passwd", 30, stream.TypeRegular))
			s.dirsEnd()
			sb := newSandbox(t, nil)
			s.file(symlinkMeta(20, sb.canary), nil)
			s.file(symlinkMeta(21, "../canary"), nil)
			s.file(symlinkMeta(22, filepath.Join(sb.canary, "file")), nil)
			// The same inode again, now as a regular file: written as a new
			// file, never through the symlink "c" points with.
			s.file(reg(22, 6), map[int64][]byte{0: []byte("pwned!")})
			s.file(reg(30, 5), map[int64][]byte{0: []byte("pwned")})
			os.WriteFile(sb.src, s.bytes(), 0o644)
			res, err := sb.run(t, Options{})
			notOK(t, res, err, "duplicate name")
			if fi, err := os.Lstat(filepath.Join(sb.dest, "c")); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("c: %v %v", fi, err)
			}
		})
	}
}

func TestHostilePreexistingSymlink(t *testing.T) {
	oracle.Require(t, oracle.Root)
	s := newRaw(0)
	s.dir(10, 10, 0o755, ent("a", 11, stream.TypeDir), ent("f", 12, stream.TypeRegular), ent(stateDirName, 13, stream.TypeRegular))
	s.dir(11, 10, 0o755, ent("passwd", 14, stream.TypeRegular))
	s.dirsEnd()
	s.file(reg(12, 5), map[int64][]byte{0: []byte("pwned")})
	s.file(reg(13, 5), map[int64][]byte{0: []byte("pwned")})
	s.file(reg(14, 5), map[int64][]byte{0: []byte("pwned")})
	sb := newSandbox(t, s.bytes())
	// Symlinks planted in the destination before the restore.
	os.Symlink(sb.canary, filepath.Join(sb.dest, "a"))
	os.Symlink(filepath.Join(sb.canary, "file"), filepath.Join(sb.dest, "f"))
	res, err := sb.run(t, Options{})
	notOK(t, res, err, "reserved")
	if fi, err := os.Lstat(filepath.Join(sb.dest, "a")); err != nil || !fi.IsDir() {
		t.Errorf("a is not a directory: %v", err)
	}
	if got := string(readAll(t, filepath.Join(sb.dest, "a/passwd"))); got != "pwned" {
		t.Errorf("a/passwd = %q", got)
	}
	// Cumulative: the state directory itself is planted as a symlink.
	sb2 := newSandbox(t, s.bytes())
	os.Symlink(sb2.canary, filepath.Join(sb2.dest, stateDirName))
	res, err = sb2.run(t, Options{Cumulative: true})
	if err == nil {
		t.Errorf("restore used a state directory that is a symlink: %+v", res)
	}
}

func TestHostileStructure(t *testing.T) {
	oracle.Require(t, oracle.Root)
	s := newRaw(0)
	s.dir(10, 10, 0o755, ent("d1", 11, stream.TypeDir), ent("root-again", 10, stream.TypeDir), ent("big", 40, stream.TypeRegular),
		ent("ghost-dir", 99, stream.TypeDir))
	s.dir(11, 10, 0o755, ent("d2", 12, stream.TypeDir))
	s.dir(12, 11, 0o755, ent("loop", 11, stream.TypeDir), ent("f", 41, stream.TypeRegular))
	s.dir(13, 13, 0o755, ent("other-root", 42, stream.TypeRegular)) // a second root
	s.dir(14, 12, 0o755)                                            // unreachable
	s.dirsEnd()
	s.file(reg(40, 1<<62), nil) // far beyond what the target allows
	s.file(reg(41, 1), map[int64][]byte{0: []byte("f")})
	s.file(reg(43, 1), map[int64][]byte{0: []byte("?")}) // named nowhere
	sb := newSandbox(t, s.bytes())
	res, err := sb.run(t, Options{})
	notOK(t, res, err, "")
	all := ""
	for _, p := range res.Problems {
		all += p.String() + "\n"
	}
	for _, want := range []string{"names the root", "already named", "second root", "not reachable", "no name in the directory section", "missing from the directory section"} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem about %q in:\n%s", want, all)
		}
	}
	if got := string(readAll(t, filepath.Join(sb.dest, "d1/d2/f"))); got != "f" {
		t.Errorf("d1/d2/f = %q", got)
	}
}

// validStream is a small real stream for damage tests.
func validStream(t testing.TB, comp stream.Compression) ([]byte, string) {
	tmp := t.TempDir()
	src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	b := &builder{t: t, root: src}
	b.mkdir("d/e", 0o755)
	for i := 0; i < 30; i++ {
		b.write(filepath.Join("d", string(rune('a'+i%26))+strings.Repeat("x", i)), pattern(i, 3000+i*7000))
	}
	b.must(os.Symlink("d", b.p("link")))
	d := dumpDir(t, src, out, dumpOpts{compression: comp, chunkSize: stream.MinChunkSize})
	return readAll(t, d.files[0]), src
}

func TestDamagedStreams(t *testing.T) {
	oracle.Require(t, oracle.Root)
	data, src := validStream(t, stream.CompressZstd)
	t.Run("intact", func(t *testing.T) {
		sb := newSandbox(t, data)
		res, err := sb.run(t, Options{})
		if err != nil {
			t.Fatal(err)
		}
		requireOK(t, res)
		sameTree(t, src, sb.dest)
	})
	for _, cut := range []int{len(data) - 1, len(data) * 3 / 4, len(data) / 2, len(data) / 5, 200, 100} {
		t.Run("truncated", func(t *testing.T) {
			sb := newSandbox(t, data[:cut])
			res, err := sb.run(t, Options{})
			notOK(t, res, err, "")
			if err == nil && len(res.Damage) == 0 {
				t.Errorf("cut at %d of %d: no damage reported", cut, len(data))
			}
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 12; i++ {
		t.Run("flipped", func(t *testing.T) {
			bad := append([]byte{}, data...)
			for k := 0; k <= i%3; k++ {
				bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
			}
			sb := newSandbox(t, bad)
			res, err := sb.run(t, Options{})
			notOK(t, res, err, "")
			if err == nil {
				// Whatever is named as restored must be whole: compare the
				// files that are not reported.
				reported := map[string]bool{}
				for _, p := range res.Problems {
					reported[p.Path] = true
				}
				for _, p := range dirListing(t, filepath.Join(sb.dest, "d")) {
					rel, _ := filepath.Rel(sb.dest, p)
					fi, _ := os.Lstat(p)
					if fi.Mode().IsRegular() && !reported[rel] && !bytes.Equal(readAll(t, p), readAll(t, filepath.Join(src, rel))) {
						t.Errorf("%s differs from the source but is not reported", rel)
					}
				}
			}
		})
	}
	t.Run("not-a-stream", func(t *testing.T) {
		sb := newSandbox(t, []byte("this is not a dump stream at all"))
		_, err := sb.run(t, Options{})
		if err == nil || !strings.Contains(err.Error(), "not an xfskit dump stream") {
			t.Errorf("got %v", err)
		}
	})
}

// FuzzRestore restores arbitrary bytes: no panic, nothing outside the
// destination.
func FuzzRestore(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("restore fuzzing creates device nodes: run as root")
	}
	small, _ := validStream(f, stream.CompressNone)
	f.Add(small[:min(len(small), 64<<10)])
	s := newRaw(0)
	s.dir(10, 10, 0o755, ent("a", 11, stream.TypeDir), ent("l", 20, stream.TypeSymlink), ent("f", 21, stream.TypeRegular), ent("n", 22, stream.TypeFIFO))
	s.dir(11, 10, 0o700, ent("g", 21, stream.TypeRegular))
	s.dirsEnd()
	s.file(symlinkMeta(20, "/"), nil)
	s.file(reg(21, 10), map[int64][]byte{2: []byte("data")})
	s.file(stream.FileMeta{Ino: 22, Mode: stream.ModeFIFO | 0o600, Nlink: 1}, nil)
	f.Add(s.bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		sb := newSandbox(t, data)
		res, err := sb.run(t, Options{})
		if err == nil && res == nil {
			t.Fatal("no result and no error")
		}
	})
}
