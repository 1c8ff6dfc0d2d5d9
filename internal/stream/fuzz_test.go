package stream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// fuzzSeeds returns small valid streams in every framing (small, so that
// executions and minimisation stay fast).
func fuzzSeeds(t testing.TB) [][]byte {
	tr := genTree(30, treeOpts{dirs: 2, files: 3, maxFile: 100, small: true})
	var seeds [][]byte
	for _, c := range allCompressions {
		seeds = append(seeds, writeStream(t, tr, WriterOptions{Compression: c, ChunkSize: MinChunkSize}))
	}
	seeds = append(seeds, writeStream(t, tr, WriterOptions{Compression: CompressNone, ChunkSize: MinChunkSize, BlockSize: 512}))
	return seeds
}

// FuzzReader feeds arbitrary bytes to the reader. mode bit 0 turns off CRC
// checks so that mutations reach the record decoders.
//
//	go test -fuzz=FuzzReader -fuzzminimizetime=5s ./internal/stream
//
// (The reader resynchronises after damage, so almost every byte removal
// keeps an input's coverage and Go's default 60 s minimisation of each new
// input dominates short runs; a short -fuzzminimizetime keeps it fuzzing.)
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	f.Fuzz(readFuzz)
}

func readFuzz(t *testing.T, data []byte, mode uint8) {
	opts := ReaderOptions{Name: "fuzz", MaxDirBytes: 16 << 20, MaxXattrBytes: 16 << 20, KeepIndex: true, noCRC: mode&1 != 0}
	r, err := NewReader(bytes.NewReader(data), opts)
	if err != nil {
		return
	}
	r.Header()
	for n := 0; n < 1<<20; n++ {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err) // only I/O errors are returned, and bytes.Reader has none
		}
		if f, ok := e.(*File); ok {
			for {
				x, err := f.NextExtent()
				if err == io.EOF {
					break
				}
				var de *DamageError
				if errors.As(err, &de) {
					_ = de.Error()
					continue
				}
				if err != nil {
					t.Fatalf("NextExtent: %v", err)
				}
				if x.Offset < 0 || x.Offset+int64(len(x.Data)) > f.Meta.Size {
					t.Fatalf("extent %d+%d outside size %d", x.Offset, len(x.Data), f.Meta.Size)
				}
			}
		}
	}
	for _, d := range r.Damage() {
		_ = d.Error()
	}
	r.Trailer()
	if r.Complete() && mode&1 == 0 && len(r.Damage()) > 0 {
		t.Fatal("complete with damage")
	}
}

// TestMutatedStreams is a quick deterministic stand-in for the fuzzer: it
// damages valid streams at random and checks the reader finishes.
func TestMutatedStreams(t *testing.T) {
	seeds := fuzzSeeds(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1500 {
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
		readFuzz(t, s, uint8(rng.IntN(2)))
	}
}
