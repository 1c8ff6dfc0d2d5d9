package restore

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

func TestRestoreEveryType(t *testing.T) {
	oracle.Require(t, oracle.Root)
	for _, c := range []struct {
		name string
		o    dumpOpts
	}{
		{"zstd", dumpOpts{}},
		{"none-2streams", dumpOpts{compression: stream.CompressNone, streams: 2}},
		{"xz-4streams-media", dumpOpts{compression: stream.CompressXZ, streams: 4, chunkSize: stream.MinChunkSize, mediaSize: 300 << 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			src, out, dest := filepath.Join(tmp, "src"), filepath.Join(tmp, "out"), filepath.Join(tmp, "dest")
			os.Mkdir(src, 0o755)
			os.Mkdir(out, 0o755)
			fullTree(t, src)
			d := dumpDir(t, src, out, c.o)
			srcs := d.files
			if c.o.mediaSize > 0 {
				// Every media file by name, in reverse order.
				srcs = nil
				for _, f := range d.files {
					m, _ := filepath.Glob(f + ".*")
					for i := len(m) - 1; i >= 0; i-- {
						srcs = append(srcs, m[i])
					}
				}
				if len(srcs) < len(d.files)+3 {
					t.Fatalf("%d media files for %d streams, want several more", len(srcs), len(d.files))
				}
			}
			res := runRestore(t, Options{Sources: srcs, Dest: dest})
			requireOK(t, res)
			checkTimes(t, dest, d.meta)
			sameTree(t, src, dest)
			if _, err := os.Lstat(filepath.Join(dest, stateDirName)); !os.IsNotExist(err) {
				t.Errorf("state directory left behind after a plain restore: %v", err)
			}
			if res.Files == 0 || res.Links != 2 {
				t.Errorf("files %d links %d", res.Files, res.Links)
			}
		})
	}
}

func TestRestoreBaseNameMedia(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out, dest := filepath.Join(tmp, "src"), filepath.Join(tmp, "out"), filepath.Join(tmp, "dest")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	fullTree(t, src)
	d := dumpDir(t, src, out, dumpOpts{chunkSize: stream.MinChunkSize, mediaSize: 200 << 10, compression: stream.CompressNone})
	// The base name stands for its numbered media files.
	requireOK(t, runRestore(t, Options{Sources: d.files, Dest: dest}))
	sameTree(t, src, dest)
}

func TestSubtreeSelection(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	fullTree(t, src)
	d := dumpDir(t, src, out, dumpOpts{streams: 2})
	dest := filepath.Join(tmp, "dest")
	requireOK(t, runRestore(t, Options{Sources: d.files, Dest: dest, Subtrees: []string{"a/b", "/sparse", "./names/"}}))
	var got []string
	for _, p := range dirListing(t, dest) {
		rel, _ := filepath.Rel(dest, p)
		got = append(got, rel)
	}
	want := []string{".", "a", "a/b", "a/b/c", "a/b/c/deep", "a/b/dangling", "a/b/hard1", "names", "sparse"}
	for _, n := range []string{strings.Repeat("n", 255), "ütf-8 ☃ name", "with\nnewline", "\xff\xfe not utf8"} {
		want = append(want, "names/"+n)
	}
	if strings.Join(sortStrings(got), "|") != strings.Join(sortStrings(want), "|") {
		t.Fatalf("restored %q\nwant %q", got, want)
	}
	if !bytes.Equal(readAll(t, filepath.Join(dest, "a/b/hard1")), []byte("hello\n")) {
		t.Error("a/b/hard1 content")
	}
	if _, err := Restore(t.Context(), Options{Sources: d.files, Dest: dest, Subtrees: []string{"../x"}}); err == nil {
		t.Error("-s ../x accepted")
	}
	res := runRestore(t, Options{Sources: d.files, Dest: filepath.Join(tmp, "dest2"), Subtrees: []string{"a/small", "no/such"}})
	if len(res.Problems) != 1 || res.Problems[0].Path != "no/such" || res.Files != 1 {
		t.Errorf("-s a/small -s no/such: files %d, problems %v", res.Files, res.Problems)
	}
}

func sortStrings(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestTOC(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	fullTree(t, src)
	d := dumpDir(t, src, out, dumpOpts{streams: 2})
	var text bytes.Buffer
	res, err := Restore(t.Context(), Options{Sources: d.files, TOC: true, TOCOut: &text})
	if err != nil || !res.OK() {
		t.Fatalf("toc: %v %+v", err, res)
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	var want []string
	for p, m := range d.meta {
		if p == "." {
			continue
		}
		if m.Type() == stream.TypeDir {
			p += "/"
		}
		want = append(want, EscapeName(p))
	}
	if strings.Join(sortStrings(lines), "|") != strings.Join(sortStrings(want), "|") {
		t.Errorf("toc:\n%q\nwant\n%q", lines, want)
	}
	// One line per entry, escaped like ls -b.
	for _, l := range []string{`names/with\nnewline`, `names/\377\376 not utf8`} {
		if !slices.Contains(lines, l) {
			t.Errorf("toc lacks the escaped line %q", l)
		}
	}
	var all bytes.Buffer
	if _, err := Restore(t.Context(), Options{Sources: d.files, TOC: true, TOCOut: &all, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var whole struct {
		Entries []TOCEntry `json:"entries"`
	}
	if err := json.Unmarshal(all.Bytes(), &whole); err != nil {
		t.Fatal(err)
	}
	exact := 0
	for _, e := range whole.Entries {
		if e.PathBytes != nil {
			if _, ok := d.meta[string(e.PathBytes)]; !ok || utf8.Valid(e.PathBytes) {
				t.Errorf("path_bytes %q is not a dumped non-UTF-8 name", e.PathBytes)
			}
			exact++
		}
	}
	if exact != 1 {
		t.Errorf("%d entries with path_bytes, want 1 (names/\\xff\\xfe not utf8)", exact)
	}
	var js bytes.Buffer
	if _, err := Restore(t.Context(), Options{Sources: d.files, TOC: true, TOCOut: &js, JSON: true, Subtrees: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Entries []TOCEntry `json:"entries"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range doc.Entries {
		if !strings.HasPrefix(e.Path, "a") {
			t.Errorf("entry %q outside the selection", e.Path)
		}
		m := d.meta[e.Path]
		if e.Size != m.Size || e.Mode != m.Mode&0o7777 || e.Ino != m.Ino || e.Target != m.Symlink || e.Mtime != fmtTime(m.Mtime) || e.Type != typeNames[m.Type()] {
			t.Errorf("%s: %+v, want %+v", e.Path, e, m)
		}
		seen++
	}
	if seen != 9 { // a, a/small, a/empty, a/abs-link, a/b, a/b/c, a/b/c/deep, a/b/dangling, a/b/hard1
		t.Errorf("%d entries under a", seen)
	}
}

// A destination whose root has a default ACL: restored files and
// directories must not keep what they inherit from it.
func TestDestWithDefaultACL(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out, dest := filepath.Join(tmp, "src"), filepath.Join(tmp, "out"), filepath.Join(tmp, "dest")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	os.Mkdir(dest, 0o755)
	fullTree(t, src)
	if err := unix.Setxattr(dest, "system.posix_acl_default", testACL, 0); err != nil {
		t.Fatal(err)
	}
	d := dumpDir(t, src, out, dumpOpts{})
	requireOK(t, runRestore(t, Options{Sources: d.files, Dest: dest}))
	checkTimes(t, dest, d.meta)
	sameTree(t, src, dest)
}

// A stream read from a named pipe (no seeking; the media header is read
// and put back in front).
func TestFifoSource(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out, dest := filepath.Join(tmp, "src"), filepath.Join(tmp, "out"), filepath.Join(tmp, "dest")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	fullTree(t, src)
	d := dumpDir(t, src, out, dumpOpts{})
	fifo := filepath.Join(tmp, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	data := readAll(t, d.files[0])
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			// Small writes: the reader must cope with short reads.
			for len(data) > 0 && err == nil {
				n := min(len(data), 1000)
				_, err = f.Write(data[:n])
				data = data[n:]
			}
			f.Close()
		}
		done <- err
	}()
	requireOK(t, runRestore(t, Options{Sources: []string{fifo}, Dest: dest}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkTimes(t, dest, d.meta)
	sameTree(t, src, dest)
}
