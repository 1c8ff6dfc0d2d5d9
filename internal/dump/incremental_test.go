package dump

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
	"xfskit/inventory"
)

// times is the kernel's ctime and mtime of every non-directory inode of
// a mounted tree.
type times map[uint64][2]time.Time

func statTimes(t *testing.T, mnt string) times {
	t.Helper()
	out := times{}
	err := filepath.Walk(mnt, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			out[st.Ino] = [2]time.Time{time.Unix(st.Ctim.Sec, st.Ctim.Nsec), time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changedSince lists the inodes whose ctime or mtime is not before since
// (future mtimes included, as dump does).
func (ts times) changedSince(since time.Time) []uint64 {
	var out []uint64
	for ino, cm := range ts {
		if !cm[0].Before(since) || !cm[1].Before(since) {
			out = append(out, ino)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func inoOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// sameTree compares the directory structure (every path and its type) of
// the stream with the kernel's tree, and the file records present with the
// kernel's entries.
func checkIncremental(t *testing.T, want *treecmp.Tree, c *streamContent) {
	t.Helper()
	paths := c.paths(t)
	var wantPaths, gotPaths []string
	for _, e := range want.Entries {
		wantPaths = append(wantPaths, e.Path)
	}
	for p := range paths {
		gotPaths = append(gotPaths, p)
	}
	sort.Strings(gotPaths)
	if !slices.Equal(wantPaths, gotPaths) {
		t.Fatalf("directory section paths differ from the kernel's tree:\nkernel: %v\nstream: %v", wantPaths, gotPaths)
	}
	got := c.tree(t)
	opts := aclOnce
	opts.Nlink = true
	opts.Skip = func(p string) bool { return got.Lookup(p) == nil } // unchanged files: no record
	// Hard-link groups can only be compared where every member has a record.
	var diff []string
	for _, line := range treecmp.Diff(want, got, opts) {
		if !strings.Contains(line, ": hard links [") {
			diff = append(diff, line)
		}
	}
	if len(diff) > 0 {
		t.Fatalf("stream differs from the kernel:\n%s", strings.Join(diff, "\n"))
	}
}

// TestIncremental dumps level 0, changes the filesystem through the kernel
// (create, delete, rename files and a directory, modify, truncate, chmod,
// set and remove xattrs, add a hard link), then dumps level 1: the stream
// holds exactly the inodes the kernel shows as changed since the level-0
// start, the whole directory structure, and the level-0 session as base.
// A level 2 right after holds no files; a second level 1 has the level 0
// as base again.
func TestIncremental(t *testing.T) {
	img := oracle.CorpusCopy(t, oracle.CorpusOptions{})
	inv := filepath.Join(t.TempDir(), "inv.db")
	r0 := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv})
	c0 := readStreams(t, mediaOf(r0))

	mnt := oracle.MountCorpus(t, img, false)
	oracle.MustBeMounted(t, mnt)
	p := func(rel string) string { return filepath.Join(mnt, rel) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	untouched := inoOf(t, p("forms/files/frag-a"))
	deleted := inoOf(t, p("forms/files/tiny"))
	must(os.MkdirAll(p("inc/sub"), 0o750))
	must(os.WriteFile(p("inc/new"), []byte("created after level 0\n"), 0o640))
	must(os.Remove(p("forms/files/tiny")))
	must(os.Rename(p("forms/files/one-block"), p("inc/sub/renamed")))
	must(os.Rename(p("forms/dirs/short"), p("inc/moved-dir")))
	f, err := os.OpenFile(p("forms/files/hole-middle"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = f.Write([]byte("appended"))
	must(err)
	must(f.Close())
	must(os.Truncate(p("forms/files/block-plus-one"), 100))
	must(os.Chmod(p("forms/modes/no-bits"), 0o604))
	must(unix.Lsetxattr(p("forms/files/empty"), "user.added", []byte("v"), 0))
	must(unix.Lremovexattr(p("forms/xattrs/short"), "user.a"))
	must(os.Link(p("forms/files/hole-start"), p("inc/link-to-hole-start")))
	oracle.Unmount(t, mnt)

	mnt = oracle.MountCorpus(t, img, true)
	kt := statTimes(t, mnt)
	expect := kt.changedSince(r0.Start)
	named := map[string]uint64{}
	for _, rel := range []string{"inc/new", "inc/sub/renamed", "forms/files/hole-middle", "forms/files/block-plus-one",
		"forms/modes/no-bits", "forms/files/empty", "forms/xattrs/short", "forms/files/hole-start"} {
		named[rel] = inoOf(t, p(rel))
	}
	want, err := treecmp.FromDir(mnt, treecmp.Options{})
	must(err)
	oracle.Unmount(t, mnt)

	r1 := dumpT(t, Options{Image: img, Level: 1, Dests: dests(t, 1), Inventory: inv})
	c1 := readStreams(t, mediaOf(r1))
	if r1.BaseID != r0.SessionID || uuid.UUID(c1.hdrs[0].BaseSessionID).String() != r0.SessionID || c1.hdrs[0].Level != 1 {
		t.Fatalf("level 1 base %s (header %x level %d), want %s", r1.BaseID, c1.hdrs[0].BaseSessionID, c1.hdrs[0].Level, r0.SessionID)
	}
	if got := c1.fileSet(); !slices.Equal(got, expect) {
		t.Fatalf("level 1 file records %v, kernel shows changed %v", got, expect)
	}
	for rel, ino := range named {
		if c1.files[ino] == nil {
			t.Errorf("%s (inode %d) changed but is not in the level 1 stream", rel, ino)
		}
	}
	if c1.files[untouched] != nil || c1.files[deleted] != nil {
		t.Errorf("untouched or deleted inode in the level 1 stream")
	}
	if c0.files[untouched] == nil {
		t.Fatalf("level 0 lacks inode %d", untouched)
	}
	if len(c1.files) >= len(c0.files)/4 {
		t.Fatalf("level 1 holds %d of %d files", len(c1.files), len(c0.files))
	}
	checkIncremental(t, want, c1)
	if _, ok := c1.paths(t)["forms/files/tiny"]; ok {
		t.Error("deleted file still in the directory section")
	}

	// Level 2 right away: nothing changed since level 1 started.
	r2 := dumpT(t, Options{Image: img, Level: 2, Dests: dests(t, 1), Inventory: inv})
	c2 := readStreams(t, mediaOf(r2))
	// Only files with times in the future (the corpus has an mtime in
	// 2100) are newer than the level 1 start.
	if future := kt.changedSince(r1.Start); r2.BaseID != r1.SessionID || !slices.Equal(c2.fileSet(), future) || len(future) > 2 {
		t.Fatalf("level 2: base %s (want %s), files %v, want %v", r2.BaseID, r1.SessionID, c2.fileSet(), future)
	}
	checkIncremental(t, want, c2)
	// Level 1 again: based on level 0, so the same files as the first.
	r3 := dumpT(t, Options{Image: img, Level: 1, Dests: dests(t, 1), Inventory: inv})
	c3 := readStreams(t, mediaOf(r3))
	if r3.BaseID != r0.SessionID || !slices.Equal(c3.fileSet(), expect) {
		t.Fatalf("second level 1: base %s, files %v", r3.BaseID, c3.fileSet())
	}

	db := openInv(t, inv)
	ss, err := db.Sessions(inventory.Filter{})
	must(err)
	var levels []int
	for _, s := range ss {
		if s.Status != inventory.StatusComplete {
			t.Errorf("session %s is %s", s.ID, s.Status)
		}
		levels = append(levels, s.Level)
	}
	if !slices.Equal(levels, []int{0, 1, 2, 1}) || ss[1].BaseID != r0.SessionID || ss[2].BaseID != r1.SessionID || ss[3].BaseID != r0.SessionID {
		t.Fatalf("inventory levels %v, bases %q %q %q", levels, ss[1].BaseID, ss[2].BaseID, ss[3].BaseID)
	}
}

// TestSubtrees dumps a directory and a single file: the stream holds
// exactly those, everything below the directory, and the directories on
// the way (with only the entries on the way), matching the kernel.
func TestSubtrees(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	full := kernelTree(t, img)
	subs := []string{"forms/xattrs/", "/forms/links/sub/two", "forms/xattrs/leaf"}
	inv := filepath.Join(t.TempDir(), "inv.db")
	r := dumpT(t, Options{Image: img, Subtrees: subs, Dests: dests(t, 1), Inventory: inv})
	c := readStreams(t, mediaOf(r))
	wantSubs := []string{"forms/links/sub/two", "forms/xattrs"}
	if !slices.Equal(c.hdrs[0].Subtrees, wantSubs) || !slices.Equal(r.Subtrees, wantSubs) {
		t.Fatalf("subtrees recorded %v / %v, want %v", c.hdrs[0].Subtrees, r.Subtrees, wantSubs)
	}
	keep := func(p string) bool {
		for _, s := range []string{"forms/xattrs", "forms/links/sub/two"} {
			if p == s || strings.HasPrefix(p, s+"/") || strings.HasPrefix(s, p+"/") || p == "." {
				return true
			}
		}
		return false
	}
	var entries []treecmp.Entry
	for _, e := range full.Entries {
		if keep(e.Path) {
			entries = append(entries, e)
		}
	}
	want := treecmp.NewTree(entries)
	got := c.tree(t)
	if diff := treecmp.Diff(want, got, aclOnce); len(diff) > 0 {
		t.Fatalf("subtree stream differs from the kernel:\n%s", strings.Join(diff, "\n"))
	}
	// The directories on the way list only the way.
	paths := c.paths(t)
	if n := len(c.dirs[paths["forms"]].Entries); n != 2 {
		t.Errorf("forms lists %d entries, want 2 (links, xattrs)", n)
	}
	if n := len(c.dirs[paths["forms/links"]].Entries); n != 1 {
		t.Errorf("forms/links lists %d entries, want 1", n)
	}
	if int(r.Files) != len(c.files) || len(c.files) == 0 {
		t.Errorf("result %d files, stream %d", r.Files, len(c.files))
	}

	// Only the directories of the selection and those on the way are read.
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	m, err := scan(t.Context(), fs, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := selectTree(t.Context(), m, wantSubs); err != nil {
		t.Fatal(err)
	}
	if len(m.dirs) != len(c.dirs) || len(c.dirs) >= len(full.Entries)/20 {
		t.Fatalf("%d directories read for a selection of %d", len(m.dirs), len(c.dirs))
	}

	// Incremental bases are per subtree selection.
	r1 := dumpT(t, Options{Image: img, Level: 1, Subtrees: []string{"forms/xattrs", "forms/links/sub/two"}, Dests: dests(t, 1), Inventory: inv})
	if r1.BaseID != r.SessionID || r1.Files != 0 {
		t.Errorf("level 1 of the same selection: base %q files %d, want base %s and no files", r1.BaseID, r1.Files, r.SessionID)
	}
	r2 := dumpT(t, Options{Image: img, Level: 1, Subtrees: []string{"forms/xattrs"}, Dests: dests(t, 1), Inventory: inv})
	if r2.BaseID != "" || r2.Files == 0 || len(r2.Notes) != 1 || !strings.Contains(r2.Notes[0], "below level 1") {
		t.Errorf("level 1 of another selection: base %q files %d notes %q, want no base, every file and a note", r2.BaseID, r2.Files, r2.Notes)
	}

	for _, bad := range [][]string{{"forms/nonexistent"}, {"forms/../etc"}, {"forms/files/tiny/x"}, {"forms/symlinks/inline/x"}} {
		_, err := Dump(t.Context(), Options{Image: img, Subtrees: bad, Dests: dests(t, 1), Inventory: inv})
		if !errors.Is(err, ErrUsage) {
			t.Errorf("subtree %v: error %v, want a usage error", bad, err)
		}
	}
	var _ = stream.TypeDir
}
