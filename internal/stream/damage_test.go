package stream

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// corruptions applied to a valid stream; each returns the damaged copy.
var corruptions = []struct {
	name string
	fn   func(b []byte, r *rand.Rand) []byte
}{
	{"flip-middle", func(b []byte, r *rand.Rand) []byte {
		b = append([]byte(nil), b...)
		p := len(b)/2 + r.IntN(len(b)/8)
		b[p] ^= 0x55
		return b
	}},
	{"flip-three", func(b []byte, r *rand.Rand) []byte {
		b = append([]byte(nil), b...)
		for _, f := range []float64{0.25, 0.5, 0.8} {
			p := int(float64(len(b))*f) + r.IntN(1000)
			for i := range 4 {
				b[p+i] ^= byte(1 + r.IntN(255))
			}
		}
		return b
	}},
	{"zero-sector", func(b []byte, r *rand.Rand) []byte {
		b = append([]byte(nil), b...)
		p := len(b)/3 + r.IntN(len(b)/3)
		clear(b[p : p+4096])
		return b
	}},
	{"cut-middle", func(b []byte, r *rand.Rand) []byte {
		p := len(b)/3 + r.IntN(len(b)/3)
		return append(append([]byte(nil), b[:p]...), b[p+5000+r.IntN(100000):]...)
	}},
	{"insert-junk", func(b []byte, r *rand.Rand) []byte {
		p := len(b)/3 + r.IntN(len(b)/3)
		junk := make([]byte, 3000)
		for i := range junk {
			junk[i] = byte(r.IntN(256))
		}
		copy(junk[100:], chunkMagic[:])
		copy(junk[1000:], recordMagic[:])
		return append(append(append([]byte(nil), b[:p]...), junk...), b[p:]...)
	}},
	{"truncate", func(b []byte, r *rand.Rand) []byte {
		return append([]byte(nil), b[:len(b)/2+r.IntN(len(b)/3)]...)
	}},
	{"truncate-at-index", func(b []byte, r *rand.Rand) []byte {
		return append([]byte(nil), b[:len(b)-100]...)
	}},
}

func TestDamage(t *testing.T) {
	for _, c := range []Compression{CompressZstd, CompressNone} {
		tr := genTree(20, treeOpts{dirs: 20, files: 200, maxFile: 100 << 10})
		good := writeStream(t, tr, WriterOptions{Compression: c, ChunkSize: 64 << 10})
		for ci, cor := range corruptions {
			for _, chunkCRC := range []bool{true, false} {
				if !chunkCRC && c != CompressNone {
					continue // record-level resync: only meaningful with raw chunks
				}
				name := fmt.Sprintf("%s/%s", c, cor.name)
				if !chunkCRC {
					name += "/record-level"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					rng := rand.New(rand.NewPCG(uint64(ci), 5))
					bad := cor.fn(good, rng)
					r, err := NewReader(bytes.NewReader(bad), ReaderOptions{Name: "bad.dump", noChunkCRC: !chunkCRC})
					if err != nil {
						t.Fatal(err)
					}
					res := readAll(t, r, tr)
					dmg := r.Damage()
					if len(dmg) == 0 || r.Complete() {
						t.Fatal("damage not reported")
					}
					for _, d := range dmg {
						t.Log(d.Error())
						if d.Media != "bad.dump" {
							t.Errorf("damage without media name: %+v", d)
						}
						if d.Lost != 0 && d.Logical < 0 {
							t.Errorf("lost data without logical offset: %+v", d)
						}
					}
					if strings.HasPrefix(cor.name, "truncate") {
						if last := dmg[len(dmg)-1]; last.Lost != -1 {
							t.Errorf("truncation not reported as such: %v", last)
						}
					}
					checkSurvivors(t, tr, res, len(dmg))
				})
			}
		}
	}
}

// TestDamageReportsRecord flips one byte inside a known file's data and
// checks the report names that inode and record.
func TestDamageReportsRecord(t *testing.T) {
	tr := genTree(21, treeOpts{dirs: 5, files: 50, maxFile: 200 << 10})
	good := writeStream(t, tr, WriterOptions{Compression: CompressNone, ChunkSize: 64 << 10})
	r, err := NewReader(bytes.NewReader(good), ReaderOptions{KeepIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r, tr)
	lb := logicalBytes(t, good)
	// Pick a file with data in the middle of the stream and find the
	// physical position of its first DATA record.
	var target IndexEntry
	for _, e := range r.Index()[len(r.Index())/2:] {
		if f := tr.files[e.Ino]; f != nil && len(f.exts) > 0 {
			target = e
			break
		}
	}
	off := target.Offset
	for {
		h, ok := decodeRecordHeader(lb[off:], false)
		if !ok {
			t.Fatal("lost track of records")
		}
		if h.typ == recData {
			break
		}
		off += RecordHeaderSize + int64(h.length)
	}
	// With CompressNone the physical offset is the logical one plus the
	// media header and the chunk headers before it.
	chunk := off / (64 << 10)
	phys := MediaHeaderSize + (chunk+1)*ChunkHeaderSize + off + RecordHeaderSize + 20
	bad := append([]byte(nil), good...)
	bad[phys] ^= 1
	for _, chunkCRC := range []bool{true, false} {
		r, err = NewReader(bytes.NewReader(bad), ReaderOptions{noChunkCRC: !chunkCRC})
		if err != nil {
			t.Fatal(err)
		}
		res := readAll(t, r, tr)
		if res.files[target.Ino] {
			t.Fatalf("damaged file %d read as intact", target.Ino)
		}
		dmg := r.Damage()
		if len(dmg) != 1 {
			t.Fatalf("damage %v", dmg)
		}
		d := dmg[0]
		t.Log(d.Error())
		found := false
		for _, ino := range d.Inos {
			found = found || ino == target.Ino
		}
		if !found || d.Records < 1 || d.Logical > off || d.Logical+d.Lost <= off {
			t.Fatalf("report %+v does not name inode %d / logical %d", d, target.Ino, off)
		}
		if !chunkCRC && (d.Records != 1 || d.Logical != off) {
			t.Fatalf("record-level report %+v should name exactly the record at %d", d, off)
		}
		checkSurvivors(t, tr, res, 1)
	}
}

func TestNotAStream(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0}, 100000)} {
		if _, err := NewReader(bytes.NewReader(in), ReaderOptions{}); err == nil {
			t.Errorf("%d bytes of junk accepted", len(in))
		}
	}
}

// zeroReader never makes progress.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	_, err := NewReader(zeroReader{}, ReaderOptions{})
	if err == nil || !strings.Contains(err.Error(), io.ErrNoProgress.Error()) {
		t.Fatalf("err = %v", err)
	}
}
