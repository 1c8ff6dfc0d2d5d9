package dump

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"xfskit/internal/stream"
	"xfskit/internal/treecmp"
	"xfskit/inventory"
)

// fileRec is a file record as read back from a stream.
type fileRec struct {
	meta   stream.FileMeta
	xattrs map[string][]byte // Linux names
	sha    string            // SHA-256 of the content, holes as zeros
	data   []treecmp.Range   // data ranges, NormalizeRanges form
	stream int
}

// streamContent is what a set of streams of one session holds.
type streamContent struct {
	hdrs  []stream.Header
	dirs  map[uint64]*stream.Dir // from stream 0; every stream's section must be identical
	files map[uint64]*fileRec
	// per stream: file inodes in record order
	order [][]uint64
}

func linuxXattrName(x stream.Xattr) string {
	switch x.Namespace {
	case stream.XattrUser:
		return "user." + x.Name
	case stream.XattrTrusted:
		return "trusted." + x.Name
	case stream.XattrSecurity:
		return "security." + x.Name
	case stream.XattrRoot:
		return "system." + x.Name
	}
	return fmt.Sprintf("ns%d.%s", x.Namespace, x.Name)
}

func xattrMap(xs []stream.Xattr) map[string][]byte {
	if len(xs) == 0 {
		return nil
	}
	m := map[string][]byte{}
	for _, x := range xs {
		m[linuxXattrName(x)] = x.Value
	}
	return m
}

// readStreams reads every stream (each a list of media file paths, in any
// order), failing on damage, incompleteness or a file recorded twice.
func readStreams(t testing.TB, streams [][]string) *streamContent {
	t.Helper()
	c := &streamContent{files: map[uint64]*fileRec{}}
	var dirSections []string
	for si, media := range streams {
		var list []stream.Media
		for _, p := range media {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			list = append(list, stream.Media{Name: p, R: f})
		}
		r, err := stream.NewMediaReader(list, stream.ReaderOptions{})
		if err != nil {
			t.Fatalf("stream %d: %v", si, err)
		}
		h, ok := r.Header()
		if !ok {
			t.Fatalf("stream %d: no header", si)
		}
		c.hdrs = append(c.hdrs, h)
		dirs := map[uint64]*stream.Dir{}
		var section strings.Builder
		var order []uint64
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("stream %d: %v", si, err)
			}
			switch e := e.(type) {
			case *stream.Dir:
				if e.Damaged {
					t.Fatalf("stream %d: directory %d damaged", si, e.Meta.Ino)
				}
				dirs[e.Meta.Ino] = e
				fmt.Fprintf(&section, "%d %o %d %v %v|", e.Meta.Ino, e.Meta.Mode, e.Parent, e.Entries, e.Xattrs)
			case *stream.HardLink:
				t.Fatalf("stream %d: unexpected hard link record for %d", si, e.Ino)
			case *stream.File:
				if _, dup := c.files[e.Meta.Ino]; dup {
					t.Fatalf("inode %d recorded twice (streams %d and %d)", e.Meta.Ino, c.files[e.Meta.Ino].stream, si)
				}
				fr := &fileRec{meta: e.Meta, xattrs: xattrMap(e.Xattrs), stream: si}
				if e.Meta.Type() == stream.TypeRegular {
					h := sha256.New()
					zero := make([]byte, 1<<16)
					var pos int64
					var ranges []treecmp.Range
					for {
						x, err := e.NextExtent()
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Fatalf("stream %d inode %d: %v", si, e.Meta.Ino, err)
						}
						for n := x.Offset - pos; n > 0; {
							k := min(n, int64(len(zero)))
							h.Write(zero[:k])
							n -= k
						}
						h.Write(x.Data)
						pos = x.Offset + int64(len(x.Data))
						ranges = append(ranges, treecmp.Range{Off: x.Offset, Len: int64(len(x.Data))})
					}
					for n := e.Meta.Size - pos; n > 0; {
						k := min(n, int64(len(zero)))
						h.Write(zero[:k])
						n -= k
					}
					fr.sha = hex.EncodeToString(h.Sum(nil))
					fr.data = treecmp.NormalizeRanges(ranges, e.Meta.Size)
				}
				c.files[e.Meta.Ino] = fr
				order = append(order, e.Meta.Ino)
			}
		}
		if d := r.Damage(); len(d) > 0 || !r.Complete() {
			t.Fatalf("stream %d: complete=%v damage=%v", si, r.Complete(), d)
		}
		if si == 0 {
			c.dirs = dirs
		}
		dirSections = append(dirSections, section.String())
		c.order = append(c.order, order)
	}
	for i := 1; i < len(dirSections); i++ {
		if dirSections[i] != dirSections[0] {
			t.Fatalf("directory section of stream %d differs from stream 0's", i)
		}
	}
	return c
}

// paths maps every path of the directory section to its inode ("." is the
// root: the directory that is its own parent).
func (c *streamContent) paths(t testing.TB) map[string]uint64 {
	t.Helper()
	var root uint64
	for ino, d := range c.dirs {
		if d.Parent == ino {
			if root != 0 {
				t.Fatalf("two roots: %d and %d", root, ino)
			}
			root = ino
		}
	}
	if root == 0 {
		t.Fatal("no root directory in the directory section")
	}
	out := map[string]uint64{".": root}
	var walk func(dir uint64, prefix string)
	walk = func(dir uint64, prefix string) {
		for _, e := range c.dirs[dir].Entries {
			p := e.Name
			if prefix != "." {
				p = prefix + "/" + e.Name
			}
			out[p] = e.Ino
			if e.Type == stream.TypeDir {
				if c.dirs[e.Ino] == nil {
					t.Fatalf("%s: directory inode %d has no directory record", p, e.Ino)
				}
				if c.dirs[e.Ino].Parent != dir {
					t.Fatalf("%s: directory record says parent %d, entry is in %d", p, c.dirs[e.Ino].Parent, dir)
				}
				walk(e.Ino, p)
			}
		}
	}
	walk(root, ".")
	return out
}

func treeTime(t stream.Timestamp) treecmp.Timestamp {
	return treecmp.NewTimestamp(t.Sec, int64(t.Nsec))
}

// tree builds a treecmp snapshot from the directory section and the file
// records; paths whose inode has no record are left out (unchanged files
// of an incremental dump), unless they are directories.
func (c *streamContent) tree(t testing.TB) *treecmp.Tree {
	t.Helper()
	var entries []treecmp.Entry
	for p, ino := range c.paths(t) {
		var meta stream.FileMeta
		var e treecmp.Entry
		if d, ok := c.dirs[ino]; ok {
			meta = d.Meta
			e.Xattrs = xattrMap(d.Xattrs)
		} else if f, ok := c.files[ino]; ok {
			meta = f.meta
			e.Xattrs = f.xattrs
			e.SHA256 = f.sha
			e.Data = f.data
		} else {
			continue
		}
		typ, ok := treecmp.TypeFromMode(meta.Mode)
		if !ok {
			t.Fatalf("%s: bad mode %o", p, meta.Mode)
		}
		e.Path, e.Type, e.Mode = p, typ, treecmp.PermFromMode(meta.Mode)
		e.UID, e.GID, e.Nlink, e.Size = meta.UID, meta.GID, meta.Nlink, meta.Size
		e.Mtime, e.Atime = treeTime(meta.Mtime), treeTime(meta.Atime)
		e.Target, e.Ino = meta.Symlink, ino
		if typ == treecmp.Chr || typ == treecmp.Blk {
			e.Rdev = treecmp.RdevFromLinux(meta.Rdev)
		}
		if typ == treecmp.Dir {
			e.Size = 0
		}
		if typ == treecmp.Reg && e.Data == nil {
			e.Data = []treecmp.Range{}
		}
		entries = append(entries, e)
	}
	return treecmp.NewTree(entries)
}

// fileSet lists the inodes with file records, sorted.
func (c *streamContent) fileSet() []uint64 {
	out := make([]uint64, 0, len(c.files))
	for ino := range c.files {
		out = append(out, ino)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// signature renders the whole content (directory section and every file
// record) for equality checks between dumps of the same image.
func (c *streamContent) signature() string {
	var b strings.Builder
	dirs := make([]uint64, 0, len(c.dirs))
	for ino := range c.dirs {
		dirs = append(dirs, ino)
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i] < dirs[j] })
	for _, ino := range dirs {
		d := c.dirs[ino]
		fmt.Fprintf(&b, "D %+v %d %v %v\n", d.Meta, d.Parent, d.Entries, d.Xattrs)
	}
	for _, ino := range c.fileSet() {
		f := c.files[ino]
		names := make([]string, 0, len(f.xattrs))
		for k := range f.xattrs {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "F %+v %s %v", f.meta, f.sha, f.data)
		for _, k := range names {
			fmt.Fprintf(&b, " %s=%x", k, f.xattrs[k])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// mediaOf lists the media files of each stream of a result.
func mediaOf(r *Result) [][]string {
	var out [][]string
	for _, s := range r.Streams {
		out = append(out, s.Media)
	}
	return out
}

// dumpT runs a dump and fails the test on error or problems.
func dumpT(t testing.TB, o Options) *Result {
	t.Helper()
	r, err := Dump(context.Background(), o)
	if err != nil {
		t.Fatalf("dump %s: %v", o.Image, err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("dump %s: problems: %v", o.Image, r.Problems)
	}
	return r
}

// dests returns n destination paths in a fresh directory.
func dests(t testing.TB, n int) []string {
	dir := t.TempDir()
	var out []string
	for i := range n {
		out = append(out, filepath.Join(dir, fmt.Sprintf("stream%d", i)))
	}
	return out
}

func openInv(t testing.TB, path string) *inventory.DB {
	t.Helper()
	db, err := inventory.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var _ = errors.Is
