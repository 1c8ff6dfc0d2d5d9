package oracle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/treecmp"
)

// alwaysForms are in every small corpus, whatever the geometry.
var alwaysForms = []CorpusForm{
	FormDirShortform, FormDirBlock, FormDirLeaf, FormDirNode, FormDirBtree,
	FormFileEmpty, FormFileExtents, FormFileBtree, FormFileSparse,
	FormFileHoleStart, FormFileHoleMiddle, FormFileHoleEnd, FormFileUnwritten,
	FormFilePrealloc, FormFileLarge, FormSymlinkLocal,
	FormAttrShortform, FormAttrLeaf, FormAttrNode, FormAttrRemote,
	FormXattrUser, FormXattrTrusted, FormXattrSecurity,
	FormHardLink, FormChr, FormBlk, FormFifo, FormSock,
	FormName255, FormNameUTF8, FormDeepPath,
	FormSetuid, FormSetgid, FormSticky, FormOwner, FormTimeNsec, FormTimePre1970,
}

func requireForms(t *testing.T, m *CorpusManifest, forms []CorpusForm) {
	t.Helper()
	have := m.Forms()
	for _, f := range forms {
		if !slices.Contains(have, f) {
			t.Errorf("corpus (block %d, inode %d, dir block %d) lacks form %s", m.BlockSize, m.InodeSize, m.DirBlockSize, f)
		}
	}
}

func TestCorpusDefault(t *testing.T) {
	img, m := CorpusWithManifest(t, CorpusOptions{})
	want := append([]CorpusForm{FormSymlinkRemote, FormFileFragmented}, alwaysForms...)
	if m.Bigtime {
		want = append(want, FormTimePost2038)
	}
	requireForms(t, m, want)
	if !m.Bigtime {
		t.Errorf("mkfs.xfs 6.1 defaults to bigtime, manifest says no")
	}

	// Inode numbers in the manifest are what xfs_db finds by path.
	var cmds []string
	for _, it := range m.Items {
		if strings.ContainsAny(it.Path, " \t'\"\\") {
			continue // xfs_db splits its arguments at blanks
		}
		cmds = append(cmds, "echo @@ "+strconv.FormatUint(it.Ino, 10), "path /"+it.Path, "p v3.inumber")
	}
	out := DB(t, img, []string{"-r"}, cmds...)
	for _, sec := range strings.Split(out, "@@ ")[1:] {
		want, rest, _ := strings.Cut(sec, "\n")
		got, err := Field(rest, "v3.inumber")
		if err != nil || got != strings.TrimSpace(want) {
			t.Errorf("manifest inode %s: xfs_db path lookup gives %q (%v)", strings.TrimSpace(want), got, err)
		}
	}
	if len(m.Items) < 50 {
		t.Errorf("only %d manifest items", len(m.Items))
	}

	// Directly from xfs_db, independent of the manifest checker.
	node := DB(t, img, []string{"-r"}, "path /forms/dirs/node", "p core.format",
		fmt.Sprintf("dblock %d", (int64(32)<<30)/int64(m.BlockSize)), "p nhdr.info.hdr.magic nhdr.level")
	if v, _ := Field(node, "nhdr.info.hdr.magic"); v != "0x3ebe" {
		t.Errorf("node directory: block at the leaf offset is not a da node:\n%s", node)
	}
	bt := DB(t, img, []string{"-r"}, "path /forms/files/btree", "p core.format u3.bmbt.level")
	if v, _ := Field(bt, "core.format"); v != "3 (btree)" {
		t.Errorf("btree file: %s", bt)
	}
	if v, _ := Field(bt, "u3.bmbt.level"); v == "" || v == "0" {
		t.Errorf("btree file: root level %q", v)
	}

	// The checker itself must catch false claims.
	bad := *m
	bad.Items = []CorpusItem{
		{Path: "forms/dirs/leaf", Ino: m.Item("forms/dirs/leaf").Ino, Type: treecmp.Dir, Forms: []CorpusForm{FormDirNode, FormDirShortform}},
		{Path: "forms/files/tiny", Ino: m.Item("forms/files/tiny").Ino, Type: treecmp.Reg, Forms: []CorpusForm{FormFileBtree, FormFileSparse, FormAttrRemote, FormOwner}},
	}
	problems, err := CheckCorpusForms(img, &bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 6 {
		t.Errorf("checker found %d problems in 6 false claims:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	problems, err = CheckCorpusForms(img, m)
	if err != nil || len(problems) > 0 {
		t.Errorf("cached corpus fails its own manifest: %v\n%s", err, strings.Join(problems, "\n"))
	}

	// The stored snapshot is what the kernel shows now, atimes included.
	mnt := MountCorpus(t, img, true)
	now, err := treecmp.FromDir(mnt, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := treecmp.Diff(m.Tree, now, treecmp.DiffOptions{Atime: true, Sparse: true, Nlink: true, Max: 20}); len(d) > 0 {
		t.Errorf("manifest tree differs from the mounted corpus:\n%s", strings.Join(d, "\n"))
	}
	if e := now.Lookup("forms/special/chr-big-minor"); e == nil || e.Rdev != (treecmp.Rdev{Major: 241, Minor: 70000}) {
		t.Errorf("chr-big-minor: %+v", e)
	}
	if e := now.Lookup("forms/files/unwritten"); e == nil || !slices.Equal(e.Data, []treecmp.Range{{Off: 4 * int64(m.BlockSize), Len: 2 * int64(m.BlockSize)}}) {
		t.Errorf("unwritten: data ranges %v, want only the two written blocks", e.Data)
	}
}

func TestCorpusGeometries(t *testing.T) {
	cases := []struct {
		name string
		opts CorpusOptions
	}{
		{"1k-blocks", CorpusOptions{BlockSize: 1024}},
		{"2k-blocks-1k-inodes-8k-dirs", CorpusOptions{BlockSize: 2048, InodeSize: 1024, DirBlockSize: 8192}},
		{"no-bigtime-v5-minimal", CorpusOptions{Mkfs: []string{"-m", "bigtime=0,reflink=0,rmapbt=0,finobt=0", "-i", "sparse=0"}}},
	}
	if !testing.Short() {
		cases = append(cases, struct {
			name string
			opts CorpusOptions
		}{"64k-blocks", CorpusOptions{BlockSize: 65536}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, m := CorpusWithManifest(t, c.opts)
			requireForms(t, m, alwaysForms)
			if c.opts.BlockSize != 0 && m.BlockSize != c.opts.BlockSize {
				t.Errorf("block size %d, asked for %d", m.BlockSize, c.opts.BlockSize)
			}
			if c.opts.DirBlockSize != 0 && m.DirBlockSize != c.opts.DirBlockSize {
				t.Errorf("dir block size %d, asked for %d", m.DirBlockSize, c.opts.DirBlockSize)
			}
			if strings.Contains(c.name, "no-bigtime") {
				if m.Bigtime || len(m.Paths(FormTimePost2038)) > 0 {
					t.Errorf("bigtime=0 image claims bigtime times")
				}
			}
			sb := DB(t, img, []string{"-r"}, "sb 0", "p blocksize inodesize")
			if v, _ := Field(sb, "inodesize"); v != strconv.Itoa(m.InodeSize) {
				t.Errorf("manifest inode size %d, superblock %s", m.InodeSize, v)
			}
		})
	}
}

func TestCorpusCacheBuildsOnce(t *testing.T) {
	opts := CorpusOptions{Size: "520M"} // used by no other test
	o := opts.normalized()
	base := filepath.Join(CorpusDir(), o.cacheKey())
	os.Remove(base + ".img")
	os.Remove(ManifestPath(base + ".img"))

	var mu sync.Mutex
	inodes := map[uint64]bool{}
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				img := Corpus(t, opts)
				st, err := os.Stat(img)
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				inodes[st.Sys().(*syscall.Stat_t).Ino] = true
				mu.Unlock()
				if st.Mode().Perm()&0o222 != 0 {
					t.Errorf("shared image %s is writable (%v)", img, st.Mode())
				}
			})
		}
	})
	if len(inodes) != 1 {
		t.Errorf("3 concurrent callers saw %d different image files: built more than once", len(inodes))
	}
	if left, _ := filepath.Glob(base + ".img*.tmp-*"); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestCorpusCopy(t *testing.T) {
	src, m := CorpusWithManifest(t, CorpusOptions{})
	cp := CorpusCopy(t, CorpusOptions{})
	if cp == src {
		t.Fatal("copy is the shared image")
	}
	cm, err := LoadCorpusManifest(cp)
	if err != nil || len(cm.Items) != len(m.Items) {
		t.Fatalf("copy's manifest: %v", err)
	}
	same := func(a, b string) bool {
		eq, err := sameContent(a, b)
		if err != nil {
			t.Fatal(err)
		}
		return eq
	}
	if !same(src, cp) {
		t.Fatal("copy differs from the shared image")
	}
	orig := filepath.Join(t.TempDir(), "orig.img")
	if err := copyImage(src, orig); err != nil {
		t.Fatal(err)
	}

	// A read-write mount of the copy leaves the shared image alone.
	mnt := MountCorpus(t, cp, false)
	MustBeMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "forms/files/tiny"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	Unmount(t, mnt)
	if !same(src, orig) {
		t.Error("writing the copy changed the shared image")
	}
	if same(cp, orig) {
		t.Error("writing through the mount did not change the copy")
	}
}

func TestMountCorpusRefusesSharedReadWrite(t *testing.T) {
	Require(t, Root, Loop)
	img := Corpus(t, CorpusOptions{})
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { recover() }()
		MountCorpus(ft, img, false)
	}()
	if !ft.failed {
		t.Error("MountCorpus mounted the shared image read-write")
	}
}

// fatalRecorder turns Fatalf into a panic the test recovers from.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	panic(fmt.Sprintf(format, args...))
}

func (f *fatalRecorder) Helper() {}

// TestBuildCorpusImage builds a corpus at $XFSKIT_CORPUS_OUT; it is how
// bench/make-image.sh reuses this builder.
func TestBuildCorpusImage(t *testing.T) {
	out := os.Getenv("XFSKIT_CORPUS_OUT")
	if out == "" {
		t.Skip("XFSKIT_CORPUS_OUT not set (used by bench/make-image.sh)")
	}
	opts := CorpusOptions{Scale: ScaleLarge, Size: os.Getenv("XFSKIT_CORPUS_SIZE"), TreeSource: os.Getenv("XFSKIT_CORPUS_SOURCE")}
	if s := os.Getenv("XFSKIT_CORPUS_TREES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("XFSKIT_CORPUS_TREES=%q: %v", s, err)
		}
		opts.Trees = n
		if n == 0 {
			opts.Trees = -1
		}
	}
	if s := os.Getenv("XFSKIT_CORPUS_MKFS"); s != "" {
		opts.Mkfs = strings.Fields(s)
	}
	m := BuildCorpus(t, out, opts)
	fmt.Printf("%s: %d entries, block size %d, inode size %d, dir block size %d; manifest %s\n",
		out, len(m.Tree.Entries), m.BlockSize, m.InodeSize, m.DirBlockSize, ManifestPath(out))
}

// sameContent compares two sparse files by reading only where either has
// data (holes read as zeros on both sides).
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, _ := fa.Stat()
	sb, _ := fb.Stat()
	if sa.Size() != sb.Size() {
		return false, nil
	}
	var ranges []treecmp.Range
	for _, f := range []*os.File{fa, fb} {
		for off := int64(0); off < sa.Size(); {
			d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
			if err != nil {
				break // ENXIO: no more data
			}
			h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
			if err != nil {
				return false, err
			}
			ranges = append(ranges, treecmp.Range{Off: d, Len: h - d})
			off = h
		}
	}
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, r := range treecmp.NormalizeRanges(ranges, sa.Size()) {
		for p := r.Off; p < r.Off+r.Len; {
			n := min(int64(len(ba)), r.Off+r.Len-p)
			if _, err := fa.ReadAt(ba[:n], p); err != nil {
				return false, err
			}
			if _, err := fb.ReadAt(bb[:n], p); err != nil {
				return false, err
			}
			if !bytes.Equal(ba[:n], bb[:n]) {
				return false, nil
			}
			p += n
		}
	}
	return true, nil
}
