package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/build"
	"xfskit/internal/image"
	"xfskit/internal/stream"
)

// populatedImage makes a small image with xfskit's own mkfs -p (no root)
// from a tree with every directory and file form a few hundred entries
// give: short-form, block and leaf directories, inline and remote
// symlinks, small, multi-block and sparse files, xattrs, hard links.
// It returns the image file's path and bytes.
func populatedImage(t testing.TB) (string, []byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "small"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "big"), 0o755))
	for i := range 300 {
		must(os.WriteFile(filepath.Join(src, "big", fmt.Sprintf("entry-with-a-long-name-%04d", i)), []byte(strings.Repeat("x", i*37)), 0o644))
	}
	must(os.WriteFile(filepath.Join(src, "small", "a"), []byte("a"), 0o600))
	must(os.Symlink("a", filepath.Join(src, "small", "inline")))
	must(os.Symlink(strings.Repeat("long/", 150), filepath.Join(src, "small", "remote")))
	must(os.Link(filepath.Join(src, "small", "a"), filepath.Join(src, "small", "hard")))
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(err)
	for i := int64(0); i < 40; i++ {
		_, err := f.WriteAt([]byte("data"), i*200000)
		must(err)
	}
	must(f.Close())
	_ = unix.Setxattr(filepath.Join(src, "sparse"), "user.small", []byte("v"), 0)
	_ = unix.Setxattr(filepath.Join(src, "small", "a"), "user.remote", bytes.Repeat([]byte("r"), 3000), 0)
	path := filepath.Join(t.TempDir(), "f.img")
	o := build.NewOptions()
	o.Target = path
	o.DataSize = "48m"
	o.BlockSize = 1024
	o.Quiet = true
	o.Rmapbt = true
	o.Proto = src
	if _, err := build.Run(o, io.Discard, io.Discard); err != nil {
		t.Skipf("xfskit mkfs cannot make the fuzz base image: %v", err)
	}
	b, err := os.ReadFile(path)
	must(err)
	return path, b
}

// FuzzDump mutates metadata bytes of a small populated image and dumps it:
// dump must never panic, hang or write a malformed stream, whatever the
// damage (damaged inodes are left out and listed as problems). Each 5
// input bytes are (offset into an AG's metadata area, new byte).
func FuzzDump(f *testing.F) {
	path, base := populatedImage(f)
	f.Add([]byte{0, 0, 0, 0, 0xff})
	f.Add([]byte{0x00, 0x00, 0x20, 0x10, 0x01, 0x00, 0x00, 0x40, 0x08, 0x7f})
	const window = 256 << 10 // AG headers, B-trees, the first inode chunks and directories
	agBytes := int(binary.BigEndian.Uint32(base[84:])) * int(binary.BigEndian.Uint32(base[4:]))
	agCount := int(binary.BigEndian.Uint32(base[88:]))
	f.Fuzz(func(t *testing.T, muts []byte) {
		img := append([]byte(nil), base...)
		for len(muts) >= 5 {
			off := int(binary.BigEndian.Uint32(muts))
			pos := (off/window)%agCount*agBytes + off%window
			if pos < len(img) {
				img[pos] = muts[4]
			}
			muts = muts[5:]
		}
		var out bytes.Buffer
		o := Options{Image: path, device: &image.Mem{B: img, ReadOnly: true}, Dests: []string{"-"}, Stdout: &out,
			Compression: "none", Inventory: filepath.Join(t.TempDir(), "inv.db")}
		type result struct {
			r   *Result
			err error
		}
		done := make(chan result, 1)
		go func() {
			r, err := Dump(t.Context(), o)
			done <- result{r, err}
		}()
		var res result
		select {
		case res = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("dump did not finish within 20s")
		}
		if res.err != nil {
			t.Log(res.err)
			return
		}
		// A dump that succeeded wrote a stream that reads back whole.
		r, err := stream.NewReader(bytes.NewReader(out.Bytes()), stream.ReaderOptions{})
		if err != nil {
			t.Fatalf("the stream of a finished dump: %v", err)
		}
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("the stream of a finished dump: %v", err)
			}
			if fe, ok := e.(*stream.File); ok {
				for {
					if _, err := fe.NextExtent(); err == io.EOF {
						break
					} else if err != nil {
						t.Fatalf("the stream of a finished dump, inode %d: %v", fe.Meta.Ino, err)
					}
				}
			}
		}
		if d := r.Damage(); len(d) > 0 {
			t.Fatalf("the stream of a finished dump is damaged: %+v", d)
		}
	})
}

// TestFuzzBaseDumps: the undamaged fuzz base image dumps without problems,
// so problems on mutated copies come from the mutations.
func TestFuzzBaseDumps(t *testing.T) {
	path, b := populatedImage(t)
	var out bytes.Buffer
	r, err := Dump(t.Context(), Options{Image: path, device: &image.Mem{B: b, ReadOnly: true}, Dests: []string{"-"}, Stdout: &out,
		Inventory: filepath.Join(t.TempDir(), "inv.db")})
	if err != nil || len(r.Problems) > 0 || r.Files < 300 {
		t.Fatalf("dump of the fuzz base: %v, %d files, problems %q", err, r.Files, r.Problems)
	}
}
