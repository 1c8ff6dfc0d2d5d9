package dump

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectFile writes a media file through directFile in pieces of
// random sizes with flushes in between: what was flushed is in the file
// at once (Staged is 0), the file always holds a prefix of what was
// written, and it ends up identical to it.
func TestDirectFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "media")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df := newDirectFile(f, path)
	if df == nil {
		t.Skipf("%s: O_DIRECT not supported here", path)
	}
	defer df.close()
	rng := rand.New(rand.NewPCG(3, 4))
	want := make([]byte, 3*directBlock+12345)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	for done := 0; done < len(want); {
		n := min(len(want)-done, 1+rng.IntN(1<<20))
		if k, err := df.Write(want[done : done+n]); k != n || err != nil {
			t.Fatalf("write of %d bytes at %d: %d, %v", n, done, k, err)
		}
		done += n
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > done || !bytes.Equal(got, want[:len(got)]) {
			t.Fatalf("after %d bytes: the file (%d bytes) is not a prefix of them", done, len(got))
		}
		if rng.IntN(3) == 0 {
			if err := df.Flush(); err != nil {
				t.Fatal(err)
			}
			if s := df.Staged(); s != 0 {
				t.Fatalf("after a flush at %d: %d bytes staged", done, s)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, want[:done]) {
				t.Fatalf("after a flush at %d: the file holds %d bytes, not what was written", done, len(got))
			}
		} else if s := df.Staged(); s < 0 || s > int64(done) {
			t.Fatalf("after %d bytes: %d staged", done, s)
		}
	}
	if err := df.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Fatalf("file differs from what was written (%d bytes, want %d)", len(got), len(want))
	}
}
