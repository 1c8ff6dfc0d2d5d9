package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

var allCompressions = []Compression{CompressZstd, CompressXZ, CompressNone}

func expectComplete(t *testing.T, r *Reader, tr *tree, res readResult) {
	t.Helper()
	if d := r.Damage(); len(d) > 0 {
		t.Fatalf("unexpected damage: %v", d)
	}
	if !r.Complete() {
		t.Fatal("stream not complete")
	}
	if len(res.dirs) != len(tr.dirs) || len(res.files) != len(tr.files) || res.links != len(tr.links) {
		t.Fatalf("read %d dirs %d files %d links, want %d %d %d", len(res.dirs), len(res.files), res.links, len(tr.dirs), len(tr.files), len(tr.links))
	}
	tl, ok := r.Trailer()
	if !ok || tl.Files != uint64(len(tr.files)) || tl.Dirs != uint64(len(tr.dirs)) || tl.DataBytes != uint64(tr.data) {
		t.Fatalf("trailer %+v", tl)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			o := treeOpts{dirs: 30, files: 300, maxFile: 200 << 10}
			if c == CompressXZ {
				o = treeOpts{dirs: 10, files: 60, maxFile: 100 << 10}
			}
			tr := genTree(1, o)
			out := writeStream(t, tr, WriterOptions{Compression: c, ChunkSize: 256 << 10})
			r, err := NewReader(bytes.NewReader(out), ReaderOptions{Name: "rt", KeepIndex: true})
			if err != nil {
				t.Fatal(err)
			}
			h, ok := r.Header()
			if !ok || h.SessionID != tr.hdr.SessionID || h.SessionLabel != tr.hdr.SessionLabel || h.MediaLabel != tr.hdr.MediaLabel ||
				h.FSLabel != tr.hdr.FSLabel || h.Level != 1 || !slices.Equal(h.Subtrees, tr.hdr.Subtrees) ||
				!h.Created.Equal(tr.hdr.Created) || h.Compression != c || h.ChunkSize != 256<<10 ||
				h.FSUUID != tr.hdr.FSUUID || h.BaseSessionID != tr.hdr.BaseSessionID || h.StreamCount != 1 {
				t.Fatalf("header %+v", h)
			}
			res := readAll(t, r, tr)
			expectComplete(t, r, tr, res)
			idx := r.Index()
			if len(idx) != len(tr.dirs)+len(tr.files) {
				t.Fatalf("index has %d entries", len(idx))
			}
			// Every index entry points at that inode's INODE record.
			lb := logicalBytes(t, out)
			for _, e := range idx {
				h, ok := decodeRecordHeader(lb[e.Offset:], false)
				if !ok || h.typ != recInode || h.ino != e.Ino {
					t.Fatalf("index entry %+v does not point at its INODE record", e)
				}
			}
			t.Logf("%s: %d data bytes -> %d stream bytes", c, tr.data, len(out))
		})
	}
}

func TestEmptyStream(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{}, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next = %v", err)
	}
	if !r.Complete() {
		t.Fatalf("damage %v", r.Damage())
	}
}

func TestWriterValidation(t *testing.T) {
	w, err := NewWriter(io.Discard, Header{}, WriterOptions{Compression: CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	dir := FileMeta{Ino: 10, Mode: ModeDir | 0o755}
	reg := FileMeta{Ino: 20, Mode: ModeRegular | 0o644, Size: 100}
	bad := []struct {
		name string
		fn   func() error
	}{
		{"file as dir", func() error { return w.WriteDir(Dir{Meta: reg}) }},
		{"bad name", func() error {
			return w.WriteDir(Dir{Meta: dir, Entries: []DirEntry{{Name: "a/b", Ino: 5}}})
		}},
		{"dotdot", func() error {
			return w.WriteDir(Dir{Meta: dir, Entries: []DirEntry{{Name: "..", Ino: 5}}})
		}},
		{"big xattr", func() error {
			return w.WriteFile(reg, []Xattr{{Name: "x", Value: make([]byte, MaxXattrValue+1)}}, nil)
		}},
		{"nsec", func() error { m := reg; m.Mtime.Nsec = 1e9; return w.WriteFile(m, nil, nil) }},
		{"link before file", func() error { return w.WriteHardLink(HardLink{Ino: 20}) }},
	}
	for _, b := range bad {
		if err := b.fn(); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
	// Validation errors do not poison the writer.
	if err := w.WriteDir(Dir{Meta: dir, Parent: 10}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDir(Dir{Meta: dir}); err == nil {
		t.Error("repeated dir inode accepted")
	}
	if err := w.BeginFile(reg, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteData(50, bytes.NewReader(make([]byte, 60)), 60); err == nil {
		t.Error("extent beyond size accepted")
	}
	if err := w.WriteData(10, bytes.NewReader(make([]byte, 10)), 10); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteData(5, bytes.NewReader(make([]byte, 10)), 10); err == nil {
		t.Error("overlapping extent accepted")
	}
	if err := w.EndFile(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDir(Dir{Meta: FileMeta{Ino: 30, Mode: ModeDir}}); err == nil {
		t.Error("dir after files accepted")
	}
	if err := w.WriteFile(reg, nil, nil); err == nil {
		t.Error("repeated file inode accepted")
	}
	// A short source is fatal.
	m := reg
	m.Ino = 21
	err = w.WriteFile(m, nil, []DataExtent{{Offset: 0, Length: 50, R: bytes.NewReader(make([]byte, 10))}})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: %v", err)
	}
	if err := w.WriteHardLink(HardLink{Ino: 20}); err == nil {
		t.Error("writer not poisoned")
	}
	w.Close()
}

// TestBigFileBoundedMemory streams a large sparse file through a pipe and
// checks that neither side buffers it.
func TestBigFileBoundedMemory(t *testing.T) {
	const size = 160 << 20
	tr := genTree(2, treeOpts{dirs: 2, files: 3, maxFile: 1 << 20, big: size})
	pr, pw := io.Pipe()
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, err := NewWriter(pw, tr.hdr, WriterOptions{Concurrency: 2})
		if err == nil {
			err = tr.write(w, 0)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		werr = err
		pw.CloseWithError(err)
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	stop := make(chan struct{})
	var mwg sync.WaitGroup
	mwg.Add(1)
	go func() {
		defer mwg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			runtime.Gosched()
			for range 20000 {
			}
		}
	}()
	r, err := NewReader(pr, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := readAll(t, r, tr)
	close(stop)
	mwg.Wait()
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	expectComplete(t, r, tr, res)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("heap in use grew by at most %d MiB, %d MiB allocated, for a %d MiB file", growth>>20, alloc>>20, size>>20)
	if growth > 80<<20 || alloc > size/2 {
		t.Fatalf("heap grew %d MiB, %d MiB allocated: data is being buffered", growth>>20, alloc>>20)
	}
}

func TestMediaSplitShuffled(t *testing.T) {
	for _, c := range []Compression{CompressZstd, CompressNone} {
		for _, bs := range []int{0, 4096} {
			t.Run(fmt.Sprintf("%s/block%d", c, bs), func(t *testing.T) {
				t.Parallel()
				tr := genTree(3, treeOpts{dirs: 20, files: 200, maxFile: 200 << 10})
				var media []*bytes.Buffer
				var bufs0 bytes.Buffer
				media = append(media, &bufs0)
				opts := WriterOptions{Compression: c, ChunkSize: 64 << 10, BlockSize: bs, MaxMediaSize: 300 << 10,
					OpenMedia: func(k int) (io.Writer, error) {
						if k != len(media) {
							return nil, fmt.Errorf("media %d opened out of order", k)
						}
						media = append(media, &bytes.Buffer{})
						return media[k], nil
					}}
				w, err := NewWriter(&bufs0, tr.hdr, opts)
				if err != nil {
					t.Fatal(err)
				}
				if err := tr.write(w, 0); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if len(media) < 4 {
					t.Fatalf("only %d media files", len(media))
				}
				for k, m := range media {
					if m.Len() > 300<<10 {
						t.Fatalf("media %d is %d bytes", k, m.Len())
					}
					if bs > 0 && m.Len()%bs != 0 {
						t.Fatalf("media %d not block aligned: %d", k, m.Len())
					}
				}
				if st := w.Stats(); st.Media != len(media) {
					t.Fatalf("stats %+v, %d media", st, len(media))
				}
				list := make([]Media, len(media))
				for k, m := range media {
					list[k] = Media{Name: MediaName("dump", k), R: bytes.NewReader(m.Bytes())}
				}
				rng := rand.New(rand.NewPCG(7, 8))
				rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
				r, err := NewMediaReader(list, ReaderOptions{})
				if err != nil {
					t.Fatal(err)
				}
				res := readAll(t, r, tr)
				expectComplete(t, r, tr, res)

				// One media file missing: everything else survives and the
				// loss is reported.
				missing := len(media) / 2
				var part []Media
				for k, m := range media {
					if k != missing {
						part = append(part, Media{Name: MediaName("dump", k), R: bytes.NewReader(m.Bytes())})
					}
				}
				r, err = NewMediaReader(part, ReaderOptions{})
				if err != nil {
					t.Fatal(err)
				}
				res = readAll(t, r, tr)
				dmg := r.Damage()
				if len(dmg) == 0 || r.Complete() {
					t.Fatal("missing media not reported")
				}
				if !strings.Contains(dmg[0].Error(), "missing") {
					t.Errorf("damage does not say media is missing: %v", dmg[0])
				}
				checkSurvivors(t, tr, res, 1)
			})
		}
	}
}

// checkSurvivors checks that every file is either read intact or named in
// a damage report, and that at most maxLost fractions… are lost.
func checkSurvivors(t *testing.T, tr *tree, res readResult, incidents int) {
	t.Helper()
	lost := 0
	// After a truncation the inodes past the cut are simply not in the
	// stream any more: they cannot be named, only the cut can.
	var lastIntact uint64
	for ino := range res.files {
		lastIntact = max(lastIntact, ino)
	}
	for ino := range tr.files {
		if res.files[ino] {
			continue
		}
		lost++
		if res.truncated && ino > lastIntact {
			continue
		}
		if !res.damaged[ino] {
			t.Errorf("file %d missing but not reported as damaged", ino)
		}
	}
	for _, d := range tr.dirs {
		if res.dirs[d.Meta.Ino] == nil && !res.damaged[d.Meta.Ino] && !(res.truncated && len(res.files) == 0) {
			t.Errorf("dir %d missing but not reported", d.Meta.Ino)
		}
	}
	if lost == len(tr.files) {
		t.Errorf("all %d files lost after %d incidents", lost, incidents)
	}
	t.Logf("%d of %d files lost, %d reported", lost, len(tr.files), len(res.damaged))
}

type blockChecker struct {
	out    []byte
	bs     int
	n      int
	writes int
	bad    error
}

func (b *blockChecker) Write(p []byte) (int, error) {
	if len(p) != b.bs && b.bad == nil {
		b.bad = fmt.Errorf("write %d of %d bytes", b.writes, len(p))
	}
	b.n += len(p)
	b.out = append(b.out, p...)
	b.writes++
	return len(p), nil
}

func TestFixedBlocks(t *testing.T) {
	tr := genTree(4, treeOpts{dirs: 10, files: 100, maxFile: 300 << 10})
	bc := &blockChecker{bs: 65536}
	var buf bytes.Buffer
	w, err := NewWriter(io.MultiWriter(bc, &buf), tr.hdr, WriterOptions{BlockSize: 65536, ChunkSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.write(w, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bc.bad != nil {
		t.Fatal(bc.bad)
	}
	if bc.n%65536 != 0 || bc.writes == 0 {
		t.Fatalf("%d bytes in %d writes", bc.n, bc.writes)
	}
	r, err := NewReader(&buf, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := readAll(t, r, tr)
	expectComplete(t, r, tr, res)
	if h, _ := r.Header(); h.BlockSize != 65536 {
		t.Fatalf("block size %d", h.BlockSize)
	}
	// Read it back like a tape: one block per read, and reads that are
	// not a multiple of the block size fail.
	r, err = NewReader(&tapeReader{b: bc.out, bs: 65536}, ReaderOptions{BlockSize: 65536})
	if err != nil {
		t.Fatal(err)
	}
	res = readAll(t, r, tr)
	expectComplete(t, r, tr, res)
}

type tapeReader struct {
	b  []byte
	bs int
}

func (t *tapeReader) Read(p []byte) (int, error) {
	if len(p)%t.bs != 0 || len(p) == 0 {
		return 0, fmt.Errorf("tape read of %d bytes", len(p))
	}
	if len(t.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:t.bs], t.b)
	t.b = t.b[n:]
	return n, nil
}

// mediaSet collects media files in memory.
type mediaSet struct{ files []*memFile }

func (ms *mediaSet) open(k int) (io.Writer, error) {
	for len(ms.files) <= k {
		ms.files = append(ms.files, &memFile{name: MediaName("m", len(ms.files))})
	}
	f := ms.files[k]
	f.b, f.pos = f.b[:0], 0
	return f, nil
}

func (ms *mediaSet) bytes() [][]byte {
	var out [][]byte
	for _, f := range ms.files {
		out = append(out, f.b)
	}
	return out
}

// writeMedia writes the tree into in-memory media files.
func writeMedia(t testing.TB, tr *tree, opts WriterOptions) [][]byte {
	t.Helper()
	ms := &mediaSet{}
	w0, _ := ms.open(0)
	if opts.MaxMediaSize > 0 {
		opts.OpenMedia = ms.open
	}
	w, err := NewWriter(w0, tr.hdr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.write(w, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return ms.bytes()
}

// TestResumeAfterTruncation writes a reference stream, cuts it at random
// points, resumes and checks that the result is the same stream.
func TestResumeAfterTruncation(t *testing.T) {
	cases := []struct {
		name string
		opts WriterOptions
	}{
		{"zstd", WriterOptions{ChunkSize: 64 << 10}},
		{"none-blocks", WriterOptions{Compression: CompressNone, ChunkSize: 64 << 10, BlockSize: 4096}},
		{"zstd-media", WriterOptions{ChunkSize: 64 << 10, MaxMediaSize: 200 << 10}},
		{"none-media-blocks", WriterOptions{Compression: CompressNone, ChunkSize: 64 << 10, MaxMediaSize: 256 << 10, BlockSize: 8192}},
		{"xz", WriterOptions{Compression: CompressXZ, ChunkSize: 64 << 10}},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o := treeOpts{dirs: 40, files: 120, maxFile: 64 << 10}
			ncuts := 10
			if c.opts.Compression == CompressXZ {
				o, ncuts = treeOpts{dirs: 10, files: 30, maxFile: 40 << 10}, 3
			}
			tr := genTree(uint64(10+ci), o)
			ref := writeMedia(t, tr, c.opts)
			refLogical := logicalBytes(t, ref...)
			total := 0
			for _, m := range ref {
				total += len(m)
			}
			rng := rand.New(rand.NewPCG(uint64(ci), 99))
			cuts := []int{0, 100, MediaHeaderSize + 10, total - 1, total}
			for range ncuts {
				cuts = append(cuts, rng.IntN(total))
			}
			resumed := 0
			for _, cut := range cuts {
				// The interrupted run: media files up to the one holding
				// the cut, the last one truncated.
				ms := &mediaSet{}
				left := cut
				for k, m := range ref {
					n := min(left, len(m))
					ms.files = append(ms.files, &memFile{name: MediaName("cut", k), b: append([]byte(nil), m[:n]...)})
					left -= n
					if left == 0 {
						break
					}
				}
				rf := make([]ResumeFile, len(ms.files))
				for i, f := range ms.files {
					rf[i] = f
				}
				opts := c.opts
				opts.OpenMedia = ms.open
				if opts.MaxMediaSize == 0 {
					opts.OpenMedia = nil
				}
				var out [][]byte
				w, info, err := Resume(rf, opts)
				switch {
				case errors.Is(err, ErrNoCheckpoint):
					out = writeMedia(t, tr, c.opts)
				case err != nil:
					t.Fatalf("cut %d: Resume: %v", cut, err)
				default:
					resumed++
					from := int(info.Dirs + info.Files + info.HardLinks)
					if info.Phase == PhaseDirs && info.Dirs > 0 && tr.ops[from-1].dir.Meta.Ino != info.LastIno {
						t.Fatalf("cut %d: checkpoint %+v does not match op %d", cut, info.Checkpoint, from)
					}
					if info.Phase == PhaseFiles && info.Files > 0 && info.LastIno == 0 {
						t.Fatalf("cut %d: checkpoint %+v without LastIno", cut, info.Checkpoint)
					}
					if err := tr.write(w, from); err != nil {
						t.Fatalf("cut %d: %v", cut, err)
					}
					if err := w.Close(); err != nil {
						t.Fatalf("cut %d: Close: %v", cut, err)
					}
					out = ms.bytes()
				}
				got := logicalBytes(t, out...)
				if !bytes.Equal(got, refLogical) {
					t.Fatalf("cut %d: resumed logical stream differs (%d vs %d bytes)", cut, len(got), len(refLogical))
				}
				if len(out) != len(ref) {
					t.Fatalf("cut %d: %d media files, want %d", cut, len(out), len(ref))
				}
				for k := range ref {
					if !bytes.Equal(out[k], ref[k]) {
						t.Fatalf("cut %d: media %d differs physically", cut, k)
					}
				}
			}
			if resumed < len(cuts)/2 {
				t.Fatalf("only %d of %d cuts resumed", resumed, len(cuts))
			}
		})
	}
}

func TestCheckpoints(t *testing.T) {
	tr := genTree(40, treeOpts{dirs: 20, files: 100, maxFile: 100 << 10})
	var mu sync.Mutex
	var cps []Checkpoint
	ms := &mediaSet{}
	w0, _ := ms.open(0)
	w, err := NewWriter(w0, tr.hdr, WriterOptions{ChunkSize: 64 << 10, MaxMediaSize: 256 << 10, OpenMedia: ms.open,
		OnCheckpoint: func(cp Checkpoint) { mu.Lock(); cps = append(cps, cp); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.write(w, 0); err != nil {
		t.Fatal(err)
	}
	if cp := w.Checkpoint(); cp.Phase != PhaseFiles || cp.Files != uint64(len(tr.files)) || cp.Dirs != uint64(len(tr.dirs)) || cp.HardLinks != uint64(len(tr.links)) {
		t.Fatalf("checkpoint before Close: %+v", cp)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if d, c := w.Durable(), w.Checkpoint(); d.Logical != c.Logical {
		t.Fatalf("after Flush durable %+v, current %+v", d, c)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	media := ms.bytes()
	lb := logicalBytes(t, media...)
	if len(cps) < 10 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	last := cps[len(cps)-1]
	if last.Phase != PhaseDone || last.Logical != int64(len(lb)) || last.Media != len(media)-1 || w.Durable() != last {
		t.Fatalf("last checkpoint %+v (stream %d bytes, %d media)", last, len(lb), len(media))
	}
	for i, cp := range cps {
		if i > 0 && (cp.Logical <= cps[i-1].Logical || cp.Media < cps[i-1].Media) {
			t.Fatalf("checkpoints not increasing: %+v then %+v", cps[i-1], cp)
		}
		if cp.MediaOffset > int64(len(media[cp.Media])) {
			t.Fatalf("checkpoint %+v beyond media", cp)
		}
		if cp.Phase != PhaseDone {
			if _, ok := decodeRecordHeader(lb[cp.Logical:], false); !ok {
				t.Fatalf("checkpoint %+v is not at a record boundary", cp)
			}
		}
	}
}
