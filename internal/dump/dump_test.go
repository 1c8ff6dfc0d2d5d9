package dump

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
	"xfskit/internal/treecmp"
	"xfskit/inventory"
)

// geometries are corpus variants shared with other packages' tests (so the
// cached images are built once per CI run).
var geometries = []struct {
	name string
	opts oracle.CorpusOptions
}{
	{"default", oracle.CorpusOptions{}},
	{"1k-blocks", oracle.CorpusOptions{BlockSize: 1024}},
	{"no-bigtime-v5-minimal", oracle.CorpusOptions{Mkfs: []string{"-m", "bigtime=0,reflink=0,rmapbt=0,finobt=0", "-i", "sparse=0"}}},
}

// aclOnce compares everything, except that the raw trusted.SGI_ACL_*
// attributes the kernel lists to root are not expected in the stream: they
// are the POSIX ACLs, which the stream carries once, as system.posix_acl_*.
var aclOnce = treecmp.DiffOptions{Atime: true, Sparse: true, Nlink: true, Max: 30, IgnoreXattrPrefixes: []string{"trusted.SGI_ACL_"}}

// kernelTree snapshots a read-only mount of img as the kernel shows it.
func kernelTree(t *testing.T, img string) *treecmp.Tree {
	t.Helper()
	mnt := oracle.MountCorpus(t, img, true)
	tr, err := treecmp.FromDir(mnt, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	return tr
}

// TestLevel0MatchesKernel dumps kernel-made images holding every file type
// and on-disk form and checks the stream against the kernel's view through
// a read-only mount: every path appears with the right type, mode, owner,
// link count, size, content hash, data ranges (holes), times with
// nanoseconds, symlink target, device numbers, xattrs and hard-link
// groups; every non-directory inode has exactly one record.
func TestLevel0MatchesKernel(t *testing.T) {
	for _, g := range geometries {
		t.Run(g.name, func(t *testing.T) {
			img, m := oracle.CorpusWithManifest(t, g.opts)
			want := kernelTree(t, img)
			inv := filepath.Join(t.TempDir(), "inv.db")
			before, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			r := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv, SessionLabel: "full", MediaLabels: []string{"m0"}})
			if after, err := os.Stat(img); err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
				t.Fatalf("the image was modified by the dump")
			}
			c := readStreams(t, mediaOf(r))
			got := c.tree(t)
			diff := treecmp.Diff(want, got, aclOnce)
			if len(diff) > 0 {
				t.Fatalf("stream differs from the kernel's view:\n%s", strings.Join(diff, "\n"))
			}
			// Every non-directory inode of the tree has one record, and
			// nothing else has one.
			inos := map[uint64]bool{}
			for _, e := range want.Entries {
				if e.Type != treecmp.Dir {
					inos[got.Lookup(e.Path).Ino] = true
				}
			}
			if len(inos) != len(c.files) || int64(len(inos)) != r.Files || r.Named != r.Files {
				t.Fatalf("%d non-directory inodes in the tree, %d file records, result says %d files of %d named", len(inos), len(c.files), r.Files, r.Named)
			}
			if len(c.dirs) != int(r.Dirs) {
				t.Fatalf("%d directory records, result says %d", len(c.dirs), r.Dirs)
			}
			// The forms the corpus promises are really in the stream.
			for _, f := range []oracle.CorpusForm{oracle.FormFileSparse, oracle.FormFileUnwritten, oracle.FormHardLink,
				oracle.FormACL, oracle.FormXattrTrusted, oracle.FormXattrSecurity, oracle.FormAttrRemote, oracle.FormChr, oracle.FormSock, oracle.FormFifo, oracle.FormSymlinkRemote} {
				if len(m.Paths(f)) == 0 {
					t.Errorf("corpus has no %s item", f)
				}
			}
			for _, p := range m.Paths(oracle.FormFileUnwritten) {
				if slices.Contains(m.Paths(oracle.FormFilePrealloc), p) {
					continue // unwritten past EOF only
				}
				e := got.Lookup(p)
				if e == nil || e.Size == 0 {
					t.Fatalf("%s: missing or empty in the stream", p)
				}
				var sum int64
				for _, r := range e.Data {
					sum += r.Len
				}
				if sum >= e.Size {
					t.Errorf("%s: unwritten extents were stored as data (%v of %d bytes)", p, e.Data, e.Size)
				}
			}
			for _, p := range m.Paths(oracle.FormACL) {
				if _, ok := got.Lookup(p).Xattrs["system.posix_acl_access"]; !ok {
					t.Errorf("%s: no system.posix_acl_access in the stream", p)
				}
			}
			// Header and inventory.
			h := c.hdrs[0]
			if h.Level != 0 || h.StreamCount != 1 || h.SessionLabel != "full" || h.MediaLabel != "m0" || h.BaseSessionID != (stream.UUID{}) || len(h.Subtrees) != 0 {
				t.Errorf("header %+v", h)
			}
			db := openInv(t, inv)
			s, err := db.Session(r.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if s.Status != inventory.StatusComplete || s.Level != 0 || s.Counts.Files != r.Files || s.Counts.Dirs != r.Dirs ||
				s.Counts.Bytes != r.Bytes || len(s.Streams) != 1 || s.Streams[0].Bytes != r.Bytes || len(s.Streams[0].Media) != 1 {
				t.Errorf("inventory session %+v, result %+v", s, r)
			}
			if st, _ := os.Stat(r.Streams[0].Media[0]); st == nil || st.Size() != r.Bytes {
				t.Errorf("stream file size %v, result says %d bytes", st, r.Bytes)
			}
			if s.FSUUID != uuid.UUID(h.FSUUID).String() || s.ID != uuid.UUID(h.SessionID).String() {
				t.Errorf("inventory filesystem %s session %s, stream header %x %x", s.FSUUID, s.ID, h.FSUUID, h.SessionID)
			}
		})
	}
}
