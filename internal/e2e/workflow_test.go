package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/restore"
	"xfskit/internal/treecmp"
)

// exact compares everything a copy keeps: content, data ranges (holes),
// link counts and atimes besides what Diff compares by default.
var exact = treecmp.DiffOptions{Atime: true, Sparse: true, Nlink: true}

// TestWorkflows builds the tools and one source tree, then runs the
// users' workflows on them, in parallel.
func TestWorkflows(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	tl := buildTools(t)
	src := makeSource(t)
	want := snapshot(t, src)
	t.Run("appliance", func(t *testing.T) {
		t.Parallel()
		applianceWorkflow(t, tl, src, want)
	})
	t.Run("geometries", func(t *testing.T) {
		t.Parallel()
		geometriesWorkflow(t, tl, src, want)
	})
	t.Run("kernel-corpus", func(t *testing.T) {
		t.Parallel()
		kernelCorpus(t, tl)
	})
	t.Run("grow-fragmented-last-ag", func(t *testing.T) {
		t.Parallel()
		growFragmentedLastAG(t, tl, src)
	})
	t.Run("growfs-vs-xfs_growfs", func(t *testing.T) {
		t.Parallel()
		growVsKernel(t, tl, src)
	})
	t.Run("reproducible", func(t *testing.T) {
		t.Parallel()
		reproducibleImages(t, tl, src)
	})
	t.Run("huge-sparse", func(t *testing.T) {
		t.Parallel()
		hugeSparseImage(t, tl, src, want)
	})
	t.Run("single-ag", func(t *testing.T) {
		t.Parallel()
		singleAG(t, tl, src, want)
	})
	t.Run("block-device", func(t *testing.T) {
		t.Parallel()
		blockDevice(t, tl, src, want)
	})
	t.Run("interrupted-growfs", func(t *testing.T) {
		t.Parallel()
		interruptedGrow(t, tl, src)
	})
	t.Run("non-utf8-selections", func(t *testing.T) {
		t.Parallel()
		nonUTF8Selections(t, tl)
	})
	t.Run("dirty-log", func(t *testing.T) {
		t.Parallel()
		dirtyLog(t, tl, src)
	})
	t.Run("mounted", func(t *testing.T) {
		t.Parallel()
		mountedRefusals(t, tl, src)
	})
	t.Run("restore-over-existing", func(t *testing.T) {
		t.Parallel()
		restoreOverExisting(t, tl, src, want)
	})
}

// applianceWorkflow: an image built without root (mkfs -p, an odd size),
// checked, grown three times offline (within the last AG, with new AGs,
// with a remainder too short for an AG), backed up right after growing,
// booted (mounted, filled through the new AGs), then backed up at levels 0
// and 1 around kernel changes and restored cumulatively, by subtree and as
// a table of contents; finally the inventory is listed and pruned.
func applianceWorkflow(t *testing.T, tl tools, src string, want *treecmp.Tree) {
	dir := t.TempDir()
	img := filepath.Join(dir, "appliance.img")
	// Four 64 MiB AGs and a short fifth one: the size is no multiple of
	// the AG size.
	tl.run(t, "mkfs", "-q", "-L", "appliance", "-p", src, "-d", "size=300004k,agsize=64m", img)
	tl.checkClean(t, img)
	sb := sbFields(t, img, "dblocks", "agcount", "agblocks", "logblocks", "agblklog", "inopblog")
	if sb["agcount"] != 5 || sb["dblocks"] != 300004/4 {
		t.Fatalf("mkfs made %d AGs, %d blocks; want 5 AGs, %d blocks", sb["agcount"], sb["dblocks"], 300004/4)
	}
	agBlocks := sb["agblocks"]

	// Within the last AG.
	g := tl.grow(t, "--size", "310m", img)
	if g.NewAGCount != 5 || g.NewBlocks != 310<<8 || g.LastAGAdded != uint32(g.NewBlocks-g.OldBlocks) || g.FreeAdded != g.NewBlocks-g.OldBlocks {
		t.Fatalf("growfs within the last AG: %+v", g)
	}
	tl.checkClean(t, img)
	// New AGs: 700 MiB = 10 full AGs and a short eleventh.
	g = tl.grow(t, "--size", "700m", img)
	if g.OldAGCount != 5 || g.NewAGCount != 11 || g.NewBlocks != 700<<8 || g.LastAGAdded != uint32(agBlocks)-(310<<8-4*uint32(agBlocks)) {
		t.Fatalf("growfs with new AGs: %+v", g)
	}
	tl.checkClean(t, img)
	// The eleventh AG filled up and 30 blocks more: too few for a new AG,
	// left unused with a note.
	g = tl.grow(t, "--size", fmt.Sprint((11*agBlocks+30)*4096), img)
	if g.NewAGCount != 11 || g.NewBlocks != 11*agBlocks || len(g.Notes) == 0 {
		t.Fatalf("growfs with a 30-block remainder: %+v", g)
	}
	tl.checkClean(t, img)
	newBlocks := g.NewBlocks
	// Nothing left to grow into: nothing to do, exit 0.
	if g := tl.grow(t, img); g.NewBlocks != newBlocks {
		t.Fatalf("growfs into the 30-block remainder changed the size: %+v", g)
	}

	// A backup straight after growing, before any kernel saw the image,
	// restores to the source tree exactly.
	t.Run("dump-after-growfs", func(t *testing.T) {
		s0, s1 := filepath.Join(dir, "grown.0"), filepath.Join(dir, "grown.1")
		tl.run(t, "dump", "-q", "--inventory", filepath.Join(dir, "grown-inv.db"), "-f", s0, "-f", s1, img)
		dest := filepath.Join(scratchXFS(t, 4096), "dest")
		tl.run(t, "restore", "-q", "-f", s1, "-f", s0, dest)
		sameTree(t, "restore of a dump taken right after growfs vs the source", want, snapshot(t, dest), exact)
	})

	// xfsdump, through the kernel, reads the grown image completely.
	t.Run("xfsdump", func(t *testing.T) { xfsdumpReadsOurImage(t, img, want) })

	// Boot: the kernel sees the source tree and the new size.
	mnt := oracle.Mount(t, img, true)
	sameTree(t, "kernel mount of the grown image vs the source", want, snapshot(t, mnt), exact)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	// statfs (df) counts the data section less the internal log.
	if st.Bsize != 4096 || st.Blocks != newBlocks-sb["logblocks"] {
		t.Fatalf("statfs: %d blocks of %d bytes, want %d of 4096", st.Blocks, st.Bsize, newBlocks-sb["logblocks"])
	}
	oracle.Unmount(t, mnt)

	// The kernel fills the filesystem, new AGs included.
	mnt = oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	inos := fillWithFallocate(t, filepath.Join(mnt, "fill"))
	inNew := 0
	for _, ino := range inos {
		if agOf(ino, sb) >= 5 {
			inNew++
		}
	}
	if inNew == 0 {
		t.Fatalf("none of the %d fill files has its inode in a new AG", len(inos))
	}
	oracle.Unmount(t, mnt)
	// The kernel keeps a reserve pool (up to 8192 blocks) and a little
	// per AG; the rest of every AG, the new ones too, must have been used.
	var total uint64
	for ag, free := range agFreeBlocks(t, img, 11) {
		total += free
		if ag >= 5 && free > agBlocks*3/4 {
			t.Errorf("new AG %d still has %d of %d blocks free after the kernel filled the filesystem", ag, free, agBlocks)
		}
	}
	if total > 8192+11*1024 {
		t.Errorf("%d blocks still free after the kernel filled the filesystem", total)
	}
	tl.checkClean(t, img)
	mnt = oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if err := os.RemoveAll(filepath.Join(mnt, "fill")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 24; i++ {
		d := filepath.Join(mnt, "booted", fmt.Sprintf("d%02d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "data"), pattern(100+i, 70000+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Unmount(t, mnt)
	tl.checkClean(t, img)

	backupWorkflow(t, tl, img)
}

// backupWorkflow dumps a kernel-modified image at levels 0 and 1 around
// more kernel changes and restores the chain, a subtree and the table of
// contents; then lists and prunes the inventory.
func backupWorkflow(t *testing.T, tl tools, img string) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.db")
	l0, l1 := filepath.Join(dir, "level0"), filepath.Join(dir, "level1")
	tl.run(t, "dump", "-q", "--inventory", inv, "-l", "0", "-L", "base", "-f", l0, img)
	before := kernelView(t, img)

	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	kernelChanges(t, mnt)
	oracle.Unmount(t, mnt)
	tl.checkClean(t, img)
	after := kernelView(t, img)
	tl.run(t, "dump", "-q", "--inventory", inv, "-l", "1", "-L", "incr", "-f", l1, img)

	var list struct {
		Sessions []struct {
			ID     string `json:"id"`
			Level  int    `json:"level"`
			BaseID string `json:"base_id"`
			Label  string `json:"label"`
			Status string `json:"status"`
		} `json:"sessions"`
	}
	tl.runJSON(t, &list, "dump", "-I", "--json", "--inventory", inv, img)
	ss := list.Sessions
	sort.Slice(ss, func(i, j int) bool { return ss[i].Level < ss[j].Level })
	if len(ss) != 2 || ss[0].Level != 0 || ss[1].Level != 1 || ss[1].BaseID != ss[0].ID ||
		ss[0].Label != "base" || ss[1].Label != "incr" || ss[0].Status != "complete" || ss[1].Status != "complete" {
		t.Fatalf("dump -I: %+v, want a complete level 0 and a level 1 based on it", ss)
	}
	text, _ := tl.run(t, "dump", "-I", "--inventory", inv, img)
	for _, s := range ss {
		if !strings.Contains(text, s.ID) {
			t.Errorf("dump -I does not name session %s:\n%s", s.ID, text)
		}
	}

	// Cumulative restore into XFS, one session at a time; the state
	// directory outside DEST keeps DEST comparable.
	scratch := scratchXFS(t, 4096)
	dest, state := filepath.Join(scratch, "dest"), filepath.Join(dir, "state")
	tl.run(t, "restore", "-q", "-r", "--state", state, "-f", l0, dest)
	sameTree(t, "cumulative restore of level 0 vs the kernel at level 0", before, snapshot(t, dest), exact)
	tl.run(t, "restore", "-q", "-r", "--state", state, "-f", l1, dest)
	// A level 1 session holds only the files whose data or inode changed:
	// an unchanged file keeps the atime it had at level 0.
	sameTree(t, "cumulative restore of levels 0 and 1 vs the kernel at level 1", after, snapshot(t, dest), treecmp.DiffOptions{Sparse: true, Nlink: true})

	// Both levels in one run, the default state directory inside DEST.
	dest2 := filepath.Join(scratch, "dest2")
	tl.run(t, "restore", "-q", "-r", "-f", l1, "-f", l0, dest2)
	sameTree(t, "cumulative restore of both levels in one run", after, snapshot(t, dest2), treecmp.DiffOptions{Sparse: true,
		Skip: func(p string) bool { return p == "." }}) // DEST's link count includes the state directory

	// Subtrees: what was asked for, the directories on the way, nothing else.
	sub := filepath.Join(scratch, "sub")
	tl.run(t, "restore", "-q", "-s", "dirs/d400", "-s", "links/max", "-f", l0, sub)
	got := snapshot(t, sub)
	sameTree(t, "restore -s dirs/d400", subTree(before, "dirs/d400"), subTree(got, "dirs/d400"), exact)
	var paths []string
	for _, e := range got.Entries {
		if e.Path != "dirs/d400" && !strings.HasPrefix(e.Path, "dirs/d400/") {
			paths = append(paths, e.Path)
		}
	}
	if !slices.Equal(paths, []string{".", "dirs", "links", "links/max"}) {
		t.Errorf("restore -s dirs/d400 -s links/max made %q besides the subtree", paths)
	}
	if d := treecmp.Diff(before, got, treecmp.DiffOptions{Atime: true, Skip: func(p string) bool {
		return p != "links/max"
	}}); len(d) > 0 {
		t.Errorf("restore -s links/max: %v", d)
	}

	// The table of contents lists exactly the tree: as JSON (names that
	// are not UTF-8 exactly in path_bytes), and one path per line, escaped
	// like ls -b (a newline inside a name stays on its line).
	var toc struct {
		Entries []struct {
			Path      string `json:"path"`
			PathBytes []byte `json:"path_bytes"`
			Type      string `json:"type"`
			Size      int64  `json:"size"`
			Nlink     uint32 `json:"nlink"`
		} `json:"entries"`
	}
	tl.runJSON(t, &toc, "restore", "-t", "--json", "-f", l0)
	var listed, lines, tree, escaped []string
	for _, e := range toc.Entries {
		p := e.Path
		if e.PathBytes != nil {
			p = string(e.PathBytes)
		}
		if p == "." {
			continue
		}
		if w := before.Lookup(p); w != nil && e.Type == "file" && (w.Size != e.Size || w.Nlink != e.Nlink) {
			t.Errorf("restore -t --json: %q: size %d, %d links; the kernel shows %d, %d", p, e.Size, e.Nlink, w.Size, w.Nlink)
		}
		if e.Type == "dir" {
			p += "/"
		}
		listed = append(listed, p)
	}
	text, _ = tl.run(t, "restore", "-t", "-f", l0)
	lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for _, e := range before.Entries {
		p := e.Path
		switch {
		case p == ".":
			continue
		case e.Type == treecmp.Dir:
			tree = append(tree, p+"/")
			escaped = append(escaped, restore.EscapeName(p)+"/")
		default:
			tree = append(tree, p)
			escaped = append(escaped, restore.EscapeName(p))
		}
	}
	for _, l := range [][]string{listed, tree, lines, escaped} {
		sort.Strings(l)
	}
	if !slices.Equal(listed, tree) {
		t.Errorf("restore -t --json lists %d paths, the tree has %d; first differences: %v", len(listed), len(tree), firstDiffs(listed, tree, 10))
	}
	if !slices.Equal(lines, escaped) {
		t.Errorf("restore -t lists %d lines for %d paths; first differences: %v", len(lines), len(escaped), firstDiffs(lines, escaped, 10))
	}

	// Pruning everything before a future date empties the inventory.
	out, _ := tl.run(t, "dump", "--prune", "--until", "2100-01-01", "--inventory", inv)
	for _, s := range ss {
		if !strings.Contains(out, s.ID) {
			t.Errorf("dump --prune does not name session %s:\n%s", s.ID, out)
		}
	}
	list.Sessions = nil
	tl.runJSON(t, &list, "dump", "-I", "--json", "--inventory", inv)
	if len(list.Sessions) != 0 {
		t.Fatalf("after --prune --until 2100-01-01 the inventory still lists %+v", list.Sessions)
	}
}

// kernelChanges makes, through the kernel, every kind of change an
// incremental dump must carry.
func kernelChanges(t *testing.T, mnt string) {
	t.Helper()
	p := func(rel string) string { return filepath.Join(mnt, filepath.FromSlash(rel)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(p("new/sub"), 0o750))
	must(os.WriteFile(p("new/sub/file"), pattern(9, 50000), 0o640))
	must(os.WriteFile(p("new/attrs"), nil, 0o600))
	must(unix.Setxattr(p("new/attrs"), "user.fresh", []byte("value"), 0))
	must(os.Symlink("sub/file", p("new/link")))
	must(os.Remove(p("files/blocks")))
	must(os.Remove(p("dirs/d100/entry-000005-ppppp")))
	must(os.RemoveAll(p("deep/level-00/level-01")))
	must(os.Rename(p("files/hole-tail"), p("other/hole-tail-moved")))
	must(os.Rename(p("dirs/d400"), p("new/d400-moved")))
	must(os.Truncate(p("files/big"), 1000)) // has a second name
	must(unix.Setxattr(p("files/empty"), "user.added", []byte("later"), 0))
	must(unix.Removexattr(p("xattrs/many"), "user.attr000"))
	must(unix.Setxattr(p("xattrs/large"), "user.big", pattern(6, 3000), 0))
	must(os.Chmod(p("files/setid"), 0o700))
	must(os.Chown(p("files/small"), 4242, 4343))
	must(os.Link(p("files/islands"), p("other/islands-link")))
	must(os.Remove(p("names/-dash")))
	must(os.Mkdir(p("names/-dash"), 0o711)) // a directory where a file was
	f, err := os.OpenFile(p("files/hole-head"), os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("patched"), 4096) // data in what was a hole
	must(err)
	must(f.Close())
	for i := 0; i < 30; i++ { // shortform to block
		must(os.WriteFile(p(fmt.Sprintf("dirs/d3/later-%02d", i)), pattern(i, i*100), 0o644))
	}
	for i := 2; i < 5000; i++ { // node form, mostly emptied
		if i%50 != 1 && i%7 != 0 {
			must(os.Remove(p(fmt.Sprintf("dirs/d5000/entry-%06d-%s", i, strings.Repeat("p", i%40)))))
		}
	}
	// Preallocated space, partly written: unwritten extents read as holes.
	f, err = os.Create(p("new/prealloc"))
	must(err)
	must(unix.Fallocate(int(f.Fd()), 0, 0, 1<<20))
	_, err = f.WriteAt(pattern(3, 4096), 256<<10)
	must(err)
	must(f.Close())
	// Shared extents (reflink is on by default): the dump holds full copies.
	for _, c := range [][2]string{{"files/islands", "new/islands-clone"}, {"files/hole-head", "new/hole-head-clone"}} {
		src, err := os.Open(p(c[0]))
		must(err)
		dst, err := os.Create(p(c[1]))
		must(err)
		must(unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())))
		src.Close()
		must(dst.Close())
	}
}

// firstDiffs lists up to n elements in one sorted list but not the other.
func firstDiffs(a, b []string, n int) []string {
	var out []string
	i, j := 0, 0
	for (i < len(a) || j < len(b)) && len(out) < n {
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, "only listed: "+fmt.Sprintf("%q", a[i]))
			i++
		case i >= len(a) || b[j] < a[i]:
			out = append(out, "only in tree: "+fmt.Sprintf("%q", b[j]))
			j++
		default:
			i++
			j++
		}
	}
	return out
}
