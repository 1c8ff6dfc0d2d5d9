package check_test

import (
	"encoding/binary"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"xfskit/internal/build"
	"xfskit/internal/check"
	"xfskit/internal/image"
	"xfskit/internal/xfs"
)

// smallImage formats a tiny filesystem with xfskit's own mkfs (no root).
func smallImage(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.img")
	o := build.NewOptions()
	o.Target = path
	o.DataSize = "48m"
	o.BlockSize = 1024
	o.Quiet = true
	o.Rmapbt = true
	if _, err := build.Run(o, io.Discard, io.Discard); err != nil {
		t.Skipf("xfskit mkfs cannot make the fuzz base image: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCheck mutates metadata bytes of a small image and checks it: the
// checker must never panic or hang, whatever the damage. Each 5 input bytes
// are (offset into the metadata area, new byte).
func FuzzCheck(f *testing.F) {
	base := smallImage(f)
	f.Add([]byte{0, 0, 0, 0, 0xff})
	f.Add([]byte{0x00, 0x02, 0x00, 0x10, 0x01, 0x00, 0x04, 0x00, 0x08, 0x7f})
	// Metadata lives in the first blocks of each AG; aim mutations there.
	const window = 96 << 10
	f.Fuzz(func(t *testing.T, muts []byte) {
		img := append([]byte(nil), base...)
		agBytes := int(binary.BigEndian.Uint32(base[84:])) * int(binary.BigEndian.Uint32(base[4:]))
		for len(muts) >= 5 {
			off := int(binary.BigEndian.Uint32(muts))
			ag := (off / window) % 4
			pos := ag*agBytes + off%window
			if pos < len(img) {
				img[pos] = muts[4]
			}
			muts = muts[5:]
		}
		fs, err := xfs.OpenDevice(&image.Mem{B: img})
		if err != nil {
			return // unusable superblock: reported by Open, nothing more to do
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			check.CheckFS(fs, check.Options{})
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("check did not finish within 20s")
		}
	})
}

// The fuzz base image is clean, so findings on mutated copies come from
// the mutations.
func TestFuzzBaseIsClean(t *testing.T) {
	fs, err := xfs.OpenDevice(&image.Mem{B: smallImage(t)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := check.CheckFS(fs, check.Options{})
	if err != nil || !r.Clean() {
		t.Fatalf("err %v, findings:\n%s", err, findings(r))
	}
	// And one flipped byte in the AGF is found.
	b := smallImage(t)
	sect := int(binary.BigEndian.Uint16(b[102:]))
	b[sect+40] ^= 0x10 // AGF freeblks
	fs, _ = xfs.OpenDevice(&image.Mem{B: b})
	if r, _ := check.CheckFS(fs, check.Options{}); r.Clean() {
		t.Fatalf("damaged AGF not reported")
	}
}

// Random damage to the metadata area of a small image: check never panics
// and every run finishes quickly (a hostile image must not make it loop).
func TestRandomDamage(t *testing.T) {
	base := smallImage(t)
	rng := rand.New(rand.NewSource(7))
	agBytes := int(binary.BigEndian.Uint32(base[84:])) * int(binary.BigEndian.Uint32(base[4:]))
	found := 0
	for i := 0; i < 400; i++ {
		img := append([]byte(nil), base...)
		for k := 0; k < 1+rng.Intn(4); k++ {
			if pos := rng.Intn(4)*agBytes + rng.Intn(96<<10); pos < len(img) {
				img[pos] = byte(rng.Intn(256))
			}
		}
		fs, err := xfs.OpenDevice(&image.Mem{B: img})
		if err != nil {
			found++
			continue
		}
		start := time.Now()
		r, err := check.CheckFS(fs, check.Options{})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("input %d: check took %v", i, d)
		}
		if err != nil || !r.Clean() {
			found++
		}
	}
	// About a fifth of the window is metadata (the rest free blocks), so at
	// least that share of damage must be noticed.
	if found < 60 {
		t.Errorf("only %d of 400 damaged images reported (about a fifth of the window is metadata)", found)
	}
}
