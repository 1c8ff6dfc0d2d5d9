package stream

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// transcript reads a whole stream and writes down everything the Reader
// says: header, entries with their data (as CRCs), errors, damage,
// completeness and trailer. Two readers that behave the same give the same
// transcript.
func transcript(t testing.TB, r *Reader) string {
	t.Helper()
	var b strings.Builder
	h, ok := r.Header()
	fmt.Fprintf(&b, "header %v %+v\n", ok, h)
	for n := 0; ; n++ {
		if n > 1<<20 {
			t.Fatal("reader does not end")
		}
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(&b, "error %v\n", err)
			break
		}
		switch e := e.(type) {
		case *Dir:
			fmt.Fprintf(&b, "dir %+v\n", *e)
		case *HardLink:
			fmt.Fprintf(&b, "link %+v\n", *e)
		case *File:
			fmt.Fprintf(&b, "file %+v xattrs %+v at %d damaged %v\n", e.Meta, e.Xattrs, e.Offset, e.Damaged)
			for {
				x, err := e.NextExtent()
				if err == io.EOF {
					break
				}
				var de *DamageError
				if errors.As(err, &de) {
					fmt.Fprintf(&b, "  damage %+v\n", *de)
					continue
				}
				if err != nil {
					fmt.Fprintf(&b, "  error %v\n", err)
					break
				}
				fmt.Fprintf(&b, "  data %d+%d %08x\n", x.Offset, len(x.Data), crc32.ChecksumIEEE(x.Data))
			}
			fmt.Fprintf(&b, "  damaged %v\n", e.Damaged)
		}
	}
	for _, d := range r.Damage() {
		fmt.Fprintf(&b, "damage %+v\n", d)
	}
	tr, ok := r.Trailer()
	fmt.Fprintf(&b, "complete %v trailer %v %+v index %v\n", r.Complete(), ok, tr, r.Index())
	return b.String()
}

// sameAsSequential reads media with read-ahead off and with each given
// depth and fails if any transcript differs. It returns the read-ahead
// hits and misses of the last depth.
func sameAsSequential(t *testing.T, media func() []Media, opts ReaderOptions, depths ...int) (hits, misses int) {
	t.Helper()
	seqOpts := opts
	seqOpts.ReadAhead = -1
	rs, errS := NewMediaReader(media(), seqOpts)
	var want string
	if errS == nil {
		if rs.rr.cs.dec.ra != nil {
			t.Fatal("read-ahead on with ReadAhead < 0")
		}
		want = transcript(t, rs)
	}
	for _, k := range depths {
		o := opts
		o.ReadAhead = k
		r, err := NewMediaReader(media(), o)
		if (err == nil) != (errS == nil) || err != nil && err.Error() != errS.Error() {
			t.Fatalf("depth %d: NewMediaReader error %v, sequential %v", k, err, errS)
		}
		if err != nil {
			continue
		}
		ra := r.rr.cs.dec.ra
		got := transcript(t, r)
		if got != want {
			t.Fatalf("depth %d: read-ahead differs from sequential reading:\n%s", k, firstDiff(want, got))
		}
		if ra != nil {
			hits, misses = ra.hits, ra.misses
			if k > 0 && ra.peakJobs > k {
				t.Fatalf("depth %d: %d chunks ahead", k, ra.peakJobs)
			}
		}
	}
	return hits, misses
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\nsequential: %.400s\nread-ahead: %.400s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("sequential %d lines, read-ahead %d lines", len(la), len(lb))
}

func oneMedia(b []byte) func() []Media {
	return func() []Media { return []Media{{Name: "s", R: bytes.NewReader(b)}} }
}

// TestReadAheadSameAsSequential: on clean streams of every compression,
// chunk size, blocking and media split, read-ahead gives exactly what
// sequential reading gives, and nearly every compressed chunk comes from
// a worker.
func TestReadAheadSameAsSequential(t *testing.T) {
	for seed := range uint64(6) {
		for _, c := range allCompressions {
			cs := []int{MinChunkSize, 256 << 10, DefaultChunkSize}[seed%3]
			bs := []int{0, 0, 4096}[seed%3]
			t.Run(fmt.Sprintf("seed%d/%s/chunk%d/block%d", seed, c, cs, bs), func(t *testing.T) {
				t.Parallel()
				files, depths := 120, []int{0, 1, 2, 7}
				if c == CompressXZ { // slow to inflate
					files, depths = 30, []int{0, 2}
				}
				tr := genTree(100+seed, treeOpts{dirs: 10, files: files, maxFile: 400 << 10})
				b := writeStream(t, tr, WriterOptions{Compression: c, ChunkSize: cs, BlockSize: bs})
				hits, misses := sameAsSequential(t, oneMedia(b), ReaderOptions{BlockSize: bs}, depths...)
				t.Logf("%d bytes: %d chunks from workers, %d inflated in place", len(b), hits, misses)
				if c != CompressNone && (hits == 0 || misses > 1) {
					t.Fatalf("read-ahead not effective: %d hits, %d misses", hits, misses)
				}
			})
		}
	}
	t.Run("media-split", func(t *testing.T) {
		t.Parallel()
		tr := genTree(3, treeOpts{dirs: 20, files: 200, maxFile: 200 << 10})
		var media []*bytes.Buffer
		media = append(media, &bytes.Buffer{})
		opts := WriterOptions{ChunkSize: 64 << 10, BlockSize: 4096, MaxMediaSize: 300 << 10,
			OpenMedia: func(k int) (io.Writer, error) {
				media = append(media, &bytes.Buffer{})
				return media[k], nil
			}}
		w, err := NewWriter(media[0], tr.hdr, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.write(w, 0); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		list := func(skip int) func() []Media {
			return func() []Media {
				var l []Media
				for k := len(media) - 1; k >= 0; k-- { // reversed order
					if k != skip {
						l = append(l, Media{Name: MediaName("dump", k), R: bytes.NewReader(media[k].Bytes())})
					}
				}
				return l
			}
		}
		hits, misses := sameAsSequential(t, list(-1), ReaderOptions{BlockSize: 8192}, 0, 3)
		if hits == 0 || misses > len(media) {
			t.Fatalf("%d media files: %d hits, %d misses", len(media), hits, misses)
		}
		sameAsSequential(t, list(len(media)/2), ReaderOptions{BlockSize: 8192}, 0, 3)
	})
}

// chunkOffsets returns the physical offsets of the chunk headers of a clean
// single-media stream.
func chunkOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for p := MediaHeaderSize; p+ChunkHeaderSize <= len(b); {
		h, ok := decodeChunkHeader(b[p:], false)
		if !ok {
			break
		}
		offs = append(offs, p)
		p += ChunkHeaderSize + int(h.storedLen)
	}
	if len(offs) < 10 {
		t.Fatalf("only %d chunks", len(offs))
	}
	return offs
}

// TestReadAheadDamage: damage in the middle of compressed streams is
// reported exactly as by sequential reading, including chunks whose
// CRCs are right but which do not inflate (only ever found out by a
// worker), and the reader keeps using the workers after the damage.
func TestReadAheadDamage(t *testing.T) {
	for _, c := range []Compression{CompressZstd, CompressXZ} {
		files := 200
		if c == CompressXZ {
			files = 60
		}
		tr := genTree(20, treeOpts{dirs: 20, files: files, maxFile: 100 << 10})
		good := writeStream(t, tr, WriterOptions{Compression: c, ChunkSize: 64 << 10})
		for ci, cor := range corruptions {
			t.Run(fmt.Sprintf("%s/%s", c, cor.name), func(t *testing.T) {
				t.Parallel()
				bad := cor.fn(good, rand.New(rand.NewPCG(uint64(ci), 5)))
				sameAsSequential(t, oneMedia(bad), ReaderOptions{Name: "bad.dump"}, 0, 1, 3)
			})
		}
		t.Run(fmt.Sprintf("%s/does-not-inflate", c), func(t *testing.T) {
			t.Parallel()
			bad := append([]byte(nil), good...)
			offs := chunkOffsets(t, bad)
			var hit []int
			for i := len(offs) / 3; i < len(offs)-2 && len(hit) < 3; i += 4 {
				p := offs[i]
				h, _ := decodeChunkHeader(bad[p:], false)
				if h.compression == CompressNone {
					continue
				}
				// Garble the compressed bytes, then make both CRCs right again.
				stored := bad[p+ChunkHeaderSize : p+ChunkHeaderSize+int(h.storedLen)]
				for j := len(stored) / 4; j < len(stored); j += 7 {
					stored[j] ^= 0xA5
				}
				h.storedCRC = crc(stored)
				h.encode(bad[p:])
				hit = append(hit, i)
			}
			if len(hit) == 0 {
				t.Fatal("no compressed chunk to garble")
			}
			r, err := NewReader(bytes.NewReader(bad), ReaderOptions{Name: "bad.dump"})
			if err != nil {
				t.Fatal(err)
			}
			transcript(t, r)
			n := 0
			for _, d := range r.Damage() {
				if strings.Contains(d.Reason, c.String()) {
					n++
				}
			}
			if n != len(hit) {
				t.Fatalf("%d chunks garbled, %d reported as not inflating: %+v", len(hit), n, r.Damage())
			}
			hits, misses := sameAsSequential(t, oneMedia(bad), ReaderOptions{Name: "bad.dump"}, 0, 1, 4)
			t.Logf("%d chunks from workers, %d inflated in place", hits, misses)
			if hits < len(offs)/2 {
				t.Fatalf("read-ahead stopped after the damage: %d hits of %d chunks", hits, len(offs))
			}
		})
	}
}

// TestReadAheadMutated compares read-ahead with sequential reading on
// randomly mutated small streams, half of them with CRC checks off so
// that damaged chunks reach the decompressors.
func TestReadAheadMutated(t *testing.T) {
	seeds := fuzzSeeds(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		s := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		switch rng.IntN(3) {
		case 0:
			for range 1 + rng.IntN(5) {
				s[rng.IntN(len(s))] = byte(rng.IntN(256))
			}
		case 1:
			s = s[:rng.IntN(len(s))]
		case 2:
			p := rng.IntN(len(s))
			s = append(s[:p:p], s[min(len(s), p+rng.IntN(200)):]...)
		}
		opts := ReaderOptions{Name: "fuzz", KeepIndex: true, noCRC: rng.IntN(2) == 0}
		sameAsSequential(t, oneMedia(s), opts, 1, 3)
	}
}

// settleGoroutines waits until the number of goroutines is at most n.
func settleGoroutines(n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= n || time.Now().After(deadline) {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadAheadEarlyStop: a caller that stops early and closes the Reader,
// or just drops it, or reads to the end, leaves no goroutine behind.
func TestReadAheadEarlyStop(t *testing.T) {
	tr := genTree(7, treeOpts{dirs: 5, files: 300, maxFile: 1 << 20})
	b := writeStream(t, tr, WriterOptions{ChunkSize: 256 << 10})
	base := runtime.NumGoroutine()
	open := func() *Reader {
		r, err := NewReader(bytes.NewReader(b), ReaderOptions{ReadAhead: 8})
		if err != nil {
			t.Fatal(err)
		}
		// Read some files, so that workers are busy ahead of the caller.
		for n := 0; n < 40; {
			e, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := e.(*File); ok {
				n++
				if _, err := f.NextExtent(); err != nil && err != io.EOF {
					t.Fatal(err)
				}
			}
		}
		if ra := r.rr.cs.dec.ra; ra == nil || ra.hits == 0 || len(ra.jobs) == 0 {
			t.Fatal("no read-ahead under way")
		}
		return r
	}

	r := open()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Fatalf("%d goroutines after Close, %d before", g, base)
	}
	if _, err := r.Next(); !errors.Is(err, ErrReaderClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	r.Close() // again: no effect

	r = open()
	r = nil // dropped without Close
	_ = r
	if g := settleGoroutines(base); g > base {
		t.Fatalf("%d goroutines after dropping a Reader, %d before", g, base)
	}

	r = open()
	transcript(t, r)
	if g := settleGoroutines(base); g > base {
		t.Fatalf("%d goroutines after reading to the end, %d before", g, base)
	}
	if !r.Complete() {
		t.Fatal(r.Damage())
	}
}

// TestReadAheadBoundedMemory: however far the caller lags, the read-ahead
// holds at most depth chunks (a stored copy and an output each).
func TestReadAheadBoundedMemory(t *testing.T) {
	const chunk = 1 << 20
	tr := genTree(9, treeOpts{dirs: 2, files: 40, maxFile: 2 << 20, big: 48 << 20})
	b := writeStream(t, tr, WriterOptions{Compression: CompressZstd, ChunkSize: chunk})
	for _, k := range []int{2, 5} {
		r, err := NewReader(bytes.NewReader(b), ReaderOptions{ReadAhead: k})
		if err != nil {
			t.Fatal(err)
		}
		ra := r.rr.cs.dec.ra
		res := readAll(t, r, tr)
		expectComplete(t, r, tr, res)
		t.Logf("depth %d: at most %d chunks, %d KiB held; %d hits, %d misses", k, ra.peakJobs, ra.peakHeld>>10, ra.hits, ra.misses)
		if ra.peakJobs > k || ra.peakHeld > (k+1)*2*chunk {
			t.Fatalf("depth %d: %d chunks, %d bytes held", k, ra.peakJobs, ra.peakHeld)
		}
		if ra.hits < 40 {
			t.Fatalf("depth %d: only %d chunks inflated ahead", k, ra.hits)
		}
	}
	// The default depth stays within its byte budget even for the largest
	// chunks.
	tr = genTree(10, treeOpts{dirs: 2, files: 10, maxFile: 1 << 20, big: 96 << 20})
	b = writeStream(t, tr, WriterOptions{Compression: CompressZstd, ChunkSize: MaxChunkSize})
	r, err := NewReader(bytes.NewReader(b), ReaderOptions{ReadAhead: raMaxDepth})
	if err != nil {
		t.Fatal(err)
	}
	ra := r.rr.cs.dec.ra
	res := readAll(t, r, tr)
	expectComplete(t, r, tr, res)
	t.Logf("8 MiB chunks: at most %d chunks, %d MiB held", ra.peakJobs, ra.peakHeld>>20)
	if ra.peakHeld > raMaxBudget+2*2*MaxChunkSize {
		t.Fatalf("%d bytes held", ra.peakHeld)
	}
}

// textTree is like benchTree but all of its data is compressible text
// (closer to what a filesystem dump holds: the bench image's stream
// compresses to 0.3 of its size).
func textTree() *tree {
	tr := benchTree()
	tr.files = map[uint64]*tfile{}
	for i := range tr.ops[1:] {
		f := tr.ops[1+i].file
		f.meta.Ino = uint64(200 + 2*i) // even: text
		tr.files[f.meta.Ino] = f
	}
	return tr
}

// BenchmarkReadAhead reads the benchmark streams with read-ahead off and
// on: half incompressible data (whose zstd blocks inflate at memory speed)
// and all text.
func BenchmarkReadAhead(b *testing.B) {
	for _, tc := range []struct {
		name string
		tr   *tree
	}{{"mixed", benchTree()}, {"text", textTree()}} {
		stream := writeStream(b, tc.tr, WriterOptions{Compression: CompressZstd})
		for _, ra := range []int{-1, 0} {
			name := tc.name + "/sequential"
			if ra == 0 {
				name = tc.name + "/read-ahead"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(tc.tr.data)
				b.ReportAllocs()
				for b.Loop() {
					r, err := NewReader(bytes.NewReader(stream), ReaderOptions{ReadAhead: ra})
					if err != nil {
						b.Fatal(err)
					}
					for {
						e, err := r.Next()
						if err == io.EOF {
							break
						}
						if f, ok := e.(*File); ok {
							for {
								if _, err := f.NextExtent(); err != nil {
									break
								}
							}
						}
					}
					if !r.Complete() {
						b.Fatal(r.Damage())
					}
				}
				b.ReportMetric(float64(len(stream))/float64(tc.tr.data), "ratio")
			})
		}
	}
}
