package dump

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// weight is the partition weight of a file record as the stream shows it.
func weight(f *fileRec) int64 {
	var n int64
	for _, r := range f.data {
		n += r.Len
	}
	return n + perFileWeight
}

// TestStreams dumps the same image to 1, 2 and 4 streams: every split
// holds the same directory section in each stream and, together, exactly
// the files of the single stream, each once, in contiguous inode ranges of
// balanced weight.
func TestStreams(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	inv := filepath.Join(t.TempDir(), "inv.db")
	one := readStreams(t, mediaOf(dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv})))
	var total, maxw int64
	for _, f := range one.files {
		total += weight(f)
		maxw = max(maxw, weight(f))
	}
	for _, n := range []int{2, 4} {
		r := dumpT(t, Options{Image: img, Dests: dests(t, n), Inventory: inv, MediaLabels: []string{"a", "b", "c", "d"}[:n]})
		c := readStreams(t, mediaOf(r))
		if c.signature() != one.signature() {
			t.Fatalf("%d streams: content differs from the single stream", n)
		}
		for k, h := range c.hdrs {
			if h.StreamIndex != uint32(k) || h.StreamCount != uint32(n) || h.SessionID != c.hdrs[0].SessionID || h.MediaLabel != string(rune('a'+k)) {
				t.Fatalf("stream %d header %+v", k, h)
			}
		}
		for k := range n {
			var w int64
			for _, ino := range c.order[k] {
				w += weight(c.files[ino])
				if !(r.Streams[k].Range[0] <= ino && ino <= r.Streams[k].Range[1]) {
					t.Fatalf("stream %d holds inode %d outside its range %v", k, ino, r.Streams[k].Range)
				}
			}
			if !slices.IsSorted(c.order[k]) {
				t.Fatalf("stream %d: files not in inode order", k)
			}
			if k > 0 && r.Streams[k].Range[0] != r.Streams[k-1].Range[1]+1 {
				t.Fatalf("ranges not contiguous: %v then %v", r.Streams[k-1].Range, r.Streams[k].Range)
			}
			if share := total / int64(n); w > share+maxw || w < share-maxw {
				t.Errorf("%d streams: stream %d weighs %d, share %d, largest file %d", n, k, w, share, maxw)
			}
			t.Logf("%d streams: stream %d: %d files, weight %d (share %d)", n, k, len(c.order[k]), w, total/int64(n))
		}
		if r.Streams[0].Range[0] != 0 || r.Streams[n-1].Range[1] != ^uint64(0) {
			t.Fatalf("ranges do not cover every inode: %v", r.Streams)
		}
		db := openInv(t, inv)
		s, err := db.Session(r.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Streams) != n || s.Counts.Files != int64(len(one.files)) {
			t.Fatalf("inventory: %d streams, %d files", len(s.Streams), s.Counts.Files)
		}
	}
}

// TestPartition checks the balance of the partition on synthetic sizes,
// including more streams than files.
func TestPartition(t *testing.T) {
	var files []fileRef
	for i := range 1000 {
		files = append(files, fileRef{ino: uint64(100 + 3*i), bytes: int64((i * 7919) % 100000)})
	}
	files = append(files, fileRef{ino: 5000, bytes: 5 << 20})
	for _, n := range []int{1, 2, 3, 7, 16} {
		rs := partition(files, n)
		var total, maxw int64
		for _, f := range files {
			total += f.bytes + perFileWeight
			maxw = max(maxw, f.bytes+perFileWeight)
		}
		seen := 0
		for k, r := range rs {
			var w int64
			for _, f := range files {
				if r.in(f.ino) {
					w += f.bytes + perFileWeight
					seen++
				}
			}
			if share := total / int64(n); w > share+maxw || w < share-maxw {
				t.Errorf("n=%d: range %d weighs %d, share %d", n, k, w, share)
			}
			if k > 0 && r.Lo != rs[k-1].Hi+1 {
				t.Errorf("n=%d: ranges %v %v not contiguous", n, rs[k-1], r)
			}
		}
		if seen != len(files) {
			t.Errorf("n=%d: %d of %d files in a range", n, seen, len(files))
		}
	}
	rs := partition(files[:2], 4)
	count := 0
	for _, r := range rs {
		for _, f := range files[:2] {
			if r.in(f.ino) {
				count++
			}
		}
	}
	if count != 2 || rs[0].Lo != 0 || rs[3].Hi != ^uint64(0) {
		t.Errorf("2 files in 4 streams: %v", rs)
	}
	if rs := partition(nil, 3); rs[0].Lo != 0 || rs[2].Hi != ^uint64(0) {
		t.Errorf("no files: %v", rs)
	}
}

// TestOutputs covers compression on and off, xz, media splitting (read
// back in any order), fixed-size records, stdout and a character device:
// the content is the same every time.
func TestOutputs(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	inv := filepath.Join(t.TempDir(), "inv.db")
	base := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv})
	want := readStreams(t, mediaOf(base)).signature()
	// xz is slow: it gets the text-heavy part of the corpus only.
	small := []string{"forms/xattrs", "forms/dirs"}
	sizes := map[string]int64{"zstd": base.Bytes}
	for _, comp := range []string{"none", "xz", "zstd"} {
		o := Options{Image: img, Dests: dests(t, 1), Inventory: inv, Compression: comp}
		if comp != "none" {
			o.Subtrees = small
		}
		r := dumpT(t, o)
		c := readStreams(t, mediaOf(r))
		ref := want
		if comp != "none" {
			plain := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv, Compression: "none", Subtrees: small})
			ref = readStreams(t, mediaOf(plain)).signature()
			sizes["none-small"] = plain.Bytes
			comp += "-small"
		}
		if c.signature() != ref || !strings.HasPrefix(comp, c.hdrs[0].Compression.String()) {
			t.Fatalf("%s: content differs or header says %s", comp, c.hdrs[0].Compression)
		}
		sizes[comp] = r.Bytes
	}
	t.Logf("stream sizes: %v (data %d bytes)", sizes, base.DataBytes)
	if sizes["zstd"] >= sizes["none"] || sizes["xz-small"] >= sizes["none-small"]/2 || sizes["zstd-small"] >= sizes["none-small"]/2 || sizes["none"] < base.DataBytes {
		t.Errorf("compressed streams not smaller than uncompressed, %v", sizes)
	}

	t.Run("media", func(t *testing.T) {
		dst := dests(t, 2)
		const media = 256 << 10
		r := dumpT(t, Options{Image: img, Dests: dst, Inventory: inv, MediaSize: media, ChunkSize: 64 << 10})
		for k, s := range r.Streams {
			if len(s.Media) < 2 && k == 0 {
				t.Fatalf("stream %d: %d media files, want several", k, len(s.Media))
			}
			for i, m := range s.Media {
				st, err := os.Stat(m)
				if err != nil || st.Size() > media || m != stream.MediaName(dst[k], i) {
					t.Fatalf("media %s: %v (size limit %d)", m, st, media)
				}
			}
			slices.Reverse(s.Media) // any order
		}
		if readStreams(t, mediaOf(r)).signature() != want {
			t.Fatal("split streams differ")
		}
		db := openInv(t, inv)
		s, err := db.Session(r.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for k, st := range s.Streams {
			if len(st.Media) != len(r.Streams[k].Media) {
				t.Fatalf("inventory stream %d: %d media files, wrote %d", k, len(st.Media), len(r.Streams[k].Media))
			}
			for _, m := range st.Media {
				fi, err := os.Stat(m.Path)
				if err != nil || fi.Size() != m.Bytes {
					t.Fatalf("inventory media %+v: %v", m, err)
				}
				sum += m.Bytes
			}
		}
		if sum != s.Counts.Bytes {
			t.Fatalf("media files hold %d bytes, session %d", sum, s.Counts.Bytes)
		}
		// A shorter dump to the same destinations leaves no stale media.
		r2 := dumpT(t, Options{Image: img, Subtrees: []string{"forms/names"}, Dests: dst, Inventory: inv, MediaSize: media, ChunkSize: 64 << 10})
		for k := range dst {
			if left, _ := filepath.Glob(dst[k] + ".*"); len(left) != len(r2.Streams[k].Media) {
				t.Fatalf("stream %d: files %v after a shorter dump wrote %v", k, left, r2.Streams[k].Media)
			}
		}
	})

	t.Run("blocks", func(t *testing.T) {
		r := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv, BlockSize: 4096})
		st, err := os.Stat(r.Streams[0].Media[0])
		if err != nil || st.Size()%4096 != 0 || st.Size() != r.Bytes {
			t.Fatalf("blocked stream: %v, %d bytes reported", st, r.Bytes)
		}
		c := readStreams(t, mediaOf(r))
		if c.signature() != want || c.hdrs[0].BlockSize != 4096 {
			t.Fatal("blocked stream differs")
		}
	})

	t.Run("stdout", func(t *testing.T) {
		var buf bytes.Buffer
		r := dumpT(t, Options{Image: img, Dests: []string{"-"}, Stdout: &buf, Inventory: inv})
		p := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if int64(buf.Len()) != r.Bytes || readStreams(t, [][]string{{p}}).signature() != want {
			t.Fatalf("stdout stream: %d bytes, result %d", buf.Len(), r.Bytes)
		}
	})

	t.Run("device", func(t *testing.T) {
		r := dumpT(t, Options{Image: img, Dests: []string{os.DevNull}, Inventory: inv})
		if r.Bytes%DefaultDeviceBlockSize != 0 || r.Bytes == 0 {
			t.Fatalf("%d bytes written to %s, not whole records of %d", r.Bytes, os.DevNull, DefaultDeviceBlockSize)
		}
	})
	var _ = io.EOF
}

// TestDestinationChecks: destinations that would destroy the image, the
// inventory or another stream are refused before anything is written; a
// named pipe is written like stdout.
func TestDestinationChecks(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.db")
	dumpT(t, Options{Image: img, Subtrees: []string{"forms/names"}, Dests: []string{filepath.Join(dir, "first")}, Inventory: inv})
	link := filepath.Join(dir, "img-link")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(img)
	for _, d := range [][]string{{link}, {inv}, {filepath.Join(dir, "first"), filepath.Join(dir, ".", "first")}, {dir}} {
		_, err := Dump(t.Context(), Options{Image: img, Dests: d, Inventory: inv})
		if !errors.Is(err, ErrUsage) {
			t.Errorf("destinations %v: %v, want a usage error", d, err)
		}
	}
	if after, _ := os.Stat(img); after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("the image was modified")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- b
	}()
	r := dumpT(t, Options{Image: img, Subtrees: []string{"forms/names"}, Dests: []string{fifo}, Inventory: inv})
	b := <-got
	p := filepath.Join(dir, "from-fifo")
	os.WriteFile(p, b, 0o600)
	c := readStreams(t, [][]string{{p}})
	if int64(len(b)) != r.Bytes || len(c.files) != int(r.Files) || r.Files == 0 {
		t.Fatalf("pipe: %d bytes read, result %+v", len(b), r)
	}
}
