package stream

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// benchTree is 64 files of 1 MiB: half compressible text, half random.
func benchTree() *tree {
	tr := &tree{files: map[uint64]*tfile{}}
	tr.hdr = Header{SessionLabel: "bench"}
	d := Dir{Meta: FileMeta{Ino: 128, Mode: ModeDir | 0o755}, Parent: 128}
	tr.dirs = []Dir{d}
	tr.ops = append(tr.ops, op{dir: &tr.dirs[0]})
	for i := range 64 {
		ino := uint64(200 + i)
		f := &tfile{meta: FileMeta{Ino: ino, Mode: ModeRegular | 0o644, Size: 1 << 20}, exts: []ext{{0, 1 << 20}}}
		tr.files[ino] = f
		tr.ops = append(tr.ops, op{file: f})
		tr.data += 1 << 20
	}
	return tr
}

// pregenerated content so the benchmark measures the stream, not the
// test data generator.
type sliceExt struct{ b []byte }

func benchWrite(b *testing.B, c Compression) {
	tr := benchTree()
	data := map[uint64][]byte{}
	for ino := range tr.files {
		p := make([]byte, 1<<20)
		content(ino, 0, p)
		data[ino] = p
	}
	b.SetBytes(tr.data)
	b.ReportAllocs()
	var out int64
	for b.Loop() {
		cw := &countWriter{}
		w, err := NewWriter(cw, tr.hdr, WriterOptions{Compression: c})
		if err != nil {
			b.Fatal(err)
		}
		w.WriteDir(tr.dirs[0])
		for _, o := range tr.ops[1:] {
			f := o.file
			if err := w.WriteFile(f.meta, nil, []DataExtent{{Offset: 0, Length: 1 << 20, R: bytes.NewReader(data[f.meta.Ino])}}); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		out = cw.n
	}
	b.ReportMetric(float64(out)/float64(tr.data), "ratio")
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func benchRead(b *testing.B, c Compression) {
	tr := benchTree()
	stream := writeStream(b, tr, WriterOptions{Compression: c})
	b.SetBytes(tr.data)
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(stream), ReaderOptions{})
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
}

func BenchmarkWriteZstd(b *testing.B) { benchWrite(b, CompressZstd) }
func BenchmarkReadZstd(b *testing.B)  { benchRead(b, CompressZstd) }
func BenchmarkWriteNone(b *testing.B) { benchWrite(b, CompressNone) }
func BenchmarkReadNone(b *testing.B)  { benchRead(b, CompressNone) }
func BenchmarkWriteXZ(b *testing.B)   { benchWrite(b, CompressXZ) }
func BenchmarkReadXZ(b *testing.B)    { benchRead(b, CompressXZ) }

// TestCRCCombine checks crcCombine, which the writer uses instead of a
// second CRC pass over uncompressed chunks, against direct CRCs.
func TestCRCCombine(t *testing.T) {
	buf := make([]byte, 3<<20)
	content(7, 0, buf)
	for _, cut := range [][2]int{{0, 0}, {0, 5}, {1, 1}, {100, 4096}, {4095, 1 << 20}, {1 << 20, 2<<20 + 12345}, {17, 3 << 20}} {
		a, b := buf[:cut[0]], buf[cut[0]:cut[1]]
		want := crc(buf[:cut[1]])
		if got := crcCombine(crc(a), crc(b), int64(len(b))); got != want {
			t.Errorf("crcCombine over %d+%d bytes: %08x, want %08x", len(a), len(b), got, want)
		}
	}
	// Lengths past the tables' first bytes: CRC(x‖zeros) = combine(CRC(x), CRC(zeros), n).
	z := make([]byte, 5<<20+3)
	if got, want := crcCombine(crc(buf[:9]), crc(z), int64(len(z))), crc(append(append([]byte{}, buf[:9]...), z...)); got != want {
		t.Errorf("crcCombine over 9+%d bytes: %08x, want %08x", len(z), got, want)
	}
}

// TestWriteDataInPlace checks that pieces given in place, with their CRCs,
// make exactly the stream WriteData makes (pieces crossing several chunks,
// small pieces, compressed and not), and that it reads back complete.
func TestWriteDataInPlace(t *testing.T) {
	big := make([]byte, 3<<20+12345)
	content(300, 0, big)
	small := big[:5000]
	hdr := Header{SessionID: UUID{1, 2, 3}, Created: time.Unix(1700000000, 5)}
	dir := Dir{Meta: FileMeta{Ino: 128, Mode: ModeDir | 0o755}, Parent: 128}
	write := func(opts WriterOptions, inPlace bool) []byte {
		var out bytes.Buffer
		w, err := NewWriter(&out, hdr, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		for i, data := range [][]byte{small, big, small} {
			if err := w.BeginFile(FileMeta{Ino: uint64(200 + i), Mode: ModeRegular | 0o644, Size: int64(len(data)) + 100}, nil); err != nil {
				t.Fatal(err)
			}
			if !inPlace {
				err = w.WriteData(100, bytes.NewReader(data), int64(len(data)))
			}
			for off := 0; inPlace && off < len(data) && err == nil; off += MaxDataPiece {
				p := data[off:min(off+MaxDataPiece, len(data))]
				buf := append(make([]byte, DataHeadroom), p...)
				err = w.WriteDataInPlace(int64(100+off), buf, PieceCRC(p))
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.EndFile(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	for _, c := range []Compression{CompressNone, CompressZstd} {
		for _, chunk := range []int{MinChunkSize, 1000 << 10, DefaultChunkSize} {
			opts := WriterOptions{Compression: c, ChunkSize: chunk}
			want, got := write(opts, false), write(opts, true)
			if !bytes.Equal(got, want) {
				t.Errorf("%s, chunks of %d: in-place stream (%d bytes) differs from WriteData's (%d bytes)", c, chunk, len(got), len(want))
				continue
			}
			r, err := NewReader(bytes.NewReader(got), ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			if !r.Complete() {
				t.Errorf("%s, chunks of %d: stream not complete: %v", c, chunk, r.Damage())
			}
		}
	}
}
