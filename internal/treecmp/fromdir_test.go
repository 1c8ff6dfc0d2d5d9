package treecmp_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// TestFromDirPlain needs no privileges: a tree in the test's temp dir.
func TestFromDirPlain(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "d/e"), 0o750))
	must(os.WriteFile(filepath.Join(root, "d/f"), []byte("hello\n"), 0o640))
	must(os.Link(filepath.Join(root, "d/f"), filepath.Join(root, "g")))
	must(os.Symlink("d/f", filepath.Join(root, "s")))
	must(unix.Mkfifo(filepath.Join(root, "p"), 0o600))
	sparse := filepath.Join(root, "sparse")
	f, err := os.Create(sparse)
	must(err)
	_, err = f.WriteAt([]byte("end"), 1<<20)
	must(err)
	must(f.Close())
	xattrs := unix.Setxattr(filepath.Join(root, "d/f"), "user.k", []byte("v"), 0) == nil

	tr, err := treecmp.FromDir(root, treecmp.Options{})
	must(err)
	var paths []string
	for _, e := range tr.Entries {
		paths = append(paths, e.Path)
	}
	if want := []string{".", "d", "d/e", "d/f", "g", "p", "s", "sparse"}; !slices.Equal(paths, want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	e := tr.Lookup("d/f")
	if e.Type != treecmp.Reg || e.Mode != 0o640 || e.Size != 6 || e.SHA256 != treecmp.HashBytes([]byte("hello\n")) || e.LinkGroup != "d/f" || e.Nlink != 2 {
		t.Errorf("d/f: %+v", e)
	}
	if xattrs && string(e.Xattrs["user.k"]) != "v" {
		t.Errorf("d/f xattrs: %v", e.Xattrs)
	}
	if g := tr.Lookup("g"); g.LinkGroup != "d/f" || g.Ino != e.Ino {
		t.Errorf("g: %+v", g)
	}
	if s := tr.Lookup("s"); s.Type != treecmp.Symlink || s.Target != "d/f" || s.Size != 3 {
		t.Errorf("s: %+v", s)
	}
	if p := tr.Lookup("p"); p.Type != treecmp.Fifo || p.Mode != 0o600 {
		t.Errorf("p: %+v", p)
	}
	if d := tr.Lookup("d"); d.Type != treecmp.Dir || d.Mode != 0o750 || d.Size != 0 {
		t.Errorf("d: %+v", d)
	}
	sp := tr.Lookup("sparse")
	want := make([]byte, 1<<20+3)
	copy(want[1<<20:], "end")
	if sp.SHA256 != treecmp.HashBytes(want) {
		t.Errorf("sparse: content hash differs from the zero-filled file")
	}
	if len(sp.Data) == 0 || sp.Data[0].Off == 0 || sp.Data[len(sp.Data)-1].Off+sp.Data[len(sp.Data)-1].Len != 1<<20+3 {
		t.Errorf("sparse: data ranges %v, want data only near the end", sp.Data)
	}

	// Skip prunes whole subtrees.
	pruned, err := treecmp.FromDir(root, treecmp.Options{Skip: func(p string, dir bool) bool { return p == "d" && dir }})
	must(err)
	if pruned.Lookup("d") != nil || pruned.Lookup("d/f") != nil || pruned.Lookup("g") == nil {
		t.Errorf("Skip did not prune d: %d entries", len(pruned.Entries))
	}
	// Unlinking one of two links leaves no group.
	must(os.Remove(filepath.Join(root, "g")))
	tr2, err := treecmp.FromDir(root, treecmp.Options{})
	must(err)
	got := treecmp.Diff(tr, tr2, treecmp.DiffOptions{IgnoreDirMtime: true})
	if !slices.Equal(got, []string{"d/f: hard links [d/f g] != []", "g: only in a (reg)"}) {
		t.Errorf("after unlink: %q", got)
	}
}

// TestFromDirCorpus snapshots a mounted corpus copy and checks that Diff
// reports each single change, and only it.
func TestFromDirCorpus(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.CorpusCopy(t, oracle.CorpusOptions{})
	m, err := oracle.LoadCorpusManifest(img)
	if err != nil {
		t.Fatal(err)
	}
	mnt := oracle.MountCorpus(t, img, false)
	oracle.MustBeMounted(t, mnt)
	p := func(rel string) string { return filepath.Join(mnt, rel) }
	snap := func() *treecmp.Tree {
		t.Helper()
		tr, err := treecmp.FromDir(mnt, treecmp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	strict := treecmp.DiffOptions{Sparse: true, Nlink: true}

	prev := snap()
	// The kernel's view at build time (read-only mount) is the view now.
	if d := treecmp.Diff(m.Tree, prev, strict); len(d) > 0 {
		t.Fatalf("corpus copy differs from its manifest:\n%s", strings.Join(d, "\n"))
	}
	again := snap()
	if d := treecmp.Diff(prev, again, strict); len(d) > 0 {
		t.Fatalf("two snapshots differ:\n%s", strings.Join(d, "\n"))
	}
	// Only reading symlinks may move atimes (Linux has no O_NOATIME there).
	for _, line := range treecmp.Diff(m.Tree, again, treecmp.DiffOptions{Atime: true}) {
		path, _, _ := strings.Cut(line, ": atime ")
		if e := again.Lookup(path); e == nil || e.Type != treecmp.Symlink || !strings.Contains(line, ": atime ") {
			t.Errorf("atime changed by taking a snapshot: %s", line)
		}
	}
	if e := m.Tree.Lookup("forms/files/hole-only"); e == nil || e.Data == nil || len(e.Data) != 0 || e.Size != 1<<20 {
		t.Errorf("hole-only file in the manifest: %+v", e)
	}
	if len(m.Tree.Entries) < 1000 {
		t.Errorf("only %d entries in the corpus", len(m.Tree.Entries))
	}

	keepTimes := func(rel string) func() {
		e := prev.Lookup(rel)
		return func() {
			ts := []unix.Timespec{{Sec: e.Atime.Sec, Nsec: int64(e.Atime.Nsec)}, {Sec: e.Mtime.Sec, Nsec: int64(e.Mtime.Nsec)}}
			must(unix.UtimesNanoAt(unix.AT_FDCWD, p(rel), ts, unix.AT_SYMLINK_NOFOLLOW))
		}
	}
	// step applies one change and checks that Diff against the previous
	// snapshot reports exactly want(current snapshot).
	step := func(name string, opts treecmp.DiffOptions, change func(), want func(cur *treecmp.Tree) []string) {
		t.Helper()
		oracle.MustBeMounted(t, mnt)
		change()
		cur := snap()
		if got, w := treecmp.Diff(prev, cur, opts), want(cur); !slices.Equal(got, w) {
			t.Errorf("%s: Diff =\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
		prev = cur
	}
	lines := func(l ...string) func(*treecmp.Tree) []string { return func(*treecmp.Tree) []string { return l } }

	tiny := prev.Lookup("forms/files/tiny")
	newMtime := treecmp.NewTimestamp(time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC).Unix(), 10)
	step("one mtime", strict, func() {
		ts := []unix.Timespec{{Sec: tiny.Atime.Sec, Nsec: int64(tiny.Atime.Nsec)}, {Sec: newMtime.Sec, Nsec: 10}}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p("forms/files/tiny"), ts, 0))
	}, lines(fmt.Sprintf("forms/files/tiny: mtime %s != %s", tiny.Mtime, newMtime)))

	step("one xattr", strict, func() {
		must(unix.Lsetxattr(p("forms/xattrs/short"), "user.a", []byte("2"), 0))
	}, lines(`forms/xattrs/short: xattr user.a value "1" != "2"`))

	const ob = "forms/files/one-block"
	old := prev.Lookup(ob).SHA256
	step("one byte", strict, func() {
		restore := keepTimes(ob)
		f, err := os.OpenFile(p(ob), os.O_RDWR, 0)
		must(err)
		b := make([]byte, 1)
		_, err = f.ReadAt(b, 100)
		must(err)
		b[0] ^= 0xff
		_, err = f.WriteAt(b, 100)
		must(err)
		must(f.Close())
		restore()
	}, func(cur *treecmp.Tree) []string {
		return []string{fmt.Sprintf("%s: content sha256 %.16s... != %.16s...", ob, old, cur.Lookup(ob).SHA256)}
	})

	// Replace one link of the 3-link group by an identical lone file.
	const three = "forms/dirs/short/three"
	step("one hard link", treecmp.DiffOptions{Sparse: true}, func() {
		restoreDir := keepTimes("forms/dirs/short")
		restore := keepTimes(three)
		data, err := os.ReadFile(p(three))
		must(err)
		must(os.Remove(p(three)))
		must(os.WriteFile(p(three), data, 0o644))
		restore()
		restoreDir()
	}, lines(
		three+": hard links ["+three+" forms/links/one forms/links/sub/two] != []",
		"forms/links/one: hard links ["+three+" forms/links/one forms/links/sub/two] != [forms/links/one forms/links/sub/two]",
		"forms/links/sub/two: hard links ["+three+" forms/links/one forms/links/sub/two] != [forms/links/one forms/links/sub/two]",
	))

	// Zeros written over a hole: same content, other data ranges.
	const hm = "forms/files/hole-middle"
	bs := int64(m.BlockSize)
	var before []treecmp.Range
	step("fill a hole", treecmp.DiffOptions{}, func() {
		before = prev.Lookup(hm).Data
		restore := keepTimes(hm)
		f, err := os.OpenFile(p(hm), os.O_RDWR, 0)
		must(err)
		_, err = f.WriteAt(make([]byte, 15*bs), bs)
		must(err)
		must(f.Close())
		restore()
	}, lines())
	if got := treecmp.Diff(prev, snap(), strict); len(got) != 0 {
		t.Errorf("fill a hole: snapshots differ: %q", got)
	}
	if cur := prev.Lookup(hm).Data; !slices.Equal(cur, []treecmp.Range{{Off: 0, Len: 17 * bs}}) || len(before) != 2 {
		t.Errorf("fill a hole: data ranges %v -> %v, want 2 ranges -> [0+%d]", before, cur, 17*bs)
	}
	withHole := *prev
	withHole.Entries = slices.Clone(prev.Entries)
	withHole.Lookup(hm).Data = before
	if got := treecmp.Diff(&withHole, prev, strict); len(got) != 1 || !strings.HasPrefix(got[0], hm+": data ranges ") {
		t.Errorf("Sparse diff: %q", got)
	}

	beforeIgnored := prev
	step("LSM-style xattr, ignored", treecmp.DiffOptions{IgnoreXattrPrefixes: []string{"security.lsm"}}, func() {
		must(unix.Lsetxattr(p("forms/files/empty"), "security.lsm-label", []byte("ctx"), 0))
	}, lines())
	step("owner, ignored", treecmp.DiffOptions{IgnoreOwners: true}, func() {
		must(os.Lchown(p("forms/owners/symlink"), 0, 0))
	}, lines())
	if got := treecmp.Diff(beforeIgnored, prev, treecmp.DiffOptions{}); len(got) != 3 {
		t.Errorf("ignored changes not seen by a plain Diff: %q", got)
	}
	must(unix.Lremovexattr(p("forms/files/empty"), "security.lsm-label"))
	must(os.Lchown(p("forms/owners/symlink"), 1234, 5678))
	prev = snap()
	if got := treecmp.Diff(beforeIgnored, prev, strict); len(got) != 0 {
		t.Errorf("after undoing the ignored changes: %q", got)
	}
	// Everything changed above, seen at once (the filled hole only with Sparse).
	if d := treecmp.Diff(m.Tree, prev, treecmp.DiffOptions{}); len(d) != 6 {
		t.Errorf("manifest vs changed copy: %d differences, want 6:\n%s", len(d), strings.Join(d, "\n"))
	}
}

// TestConstructorsMatchXFSDB checks the field constructors meant for
// engine-side snapshots against raw on-disk values printed by xfs_db.
func TestConstructorsMatchXFSDB(t *testing.T) {
	img, m := oracle.CorpusWithManifest(t, oracle.CorpusOptions{})
	for _, rel := range []string{"forms/special/chr-big-minor", "forms/special/blk-7-0", "forms/modes/all-bits", "forms/xattrs/acl", "forms/times/pre-1970"} {
		it := m.Item(rel)
		want := m.Tree.Lookup(rel)
		if it == nil || want == nil {
			t.Fatalf("%s not in the manifest", rel)
		}
		out := oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("inode %d", it.Ino), "p core.mode core.mtime.nsec", "p")
		mode, err := strconv.ParseUint(field(t, out, "core.mode"), 8, 32)
		if err != nil {
			t.Fatal(err)
		}
		if typ, ok := treecmp.TypeFromMode(uint32(mode)); !ok || typ != want.Type || treecmp.PermFromMode(uint32(mode)) != want.Mode {
			t.Errorf("%s: core.mode 0%o gives %v/%04o, kernel shows %v/%04o", rel, mode, typ, treecmp.PermFromMode(uint32(mode)), want.Type, want.Mode)
		}
		if nsec := field(t, out, "core.mtime.nsec"); nsec != strconv.Itoa(int(want.Mtime.Nsec)) {
			t.Errorf("%s: mtime nsec %s on disk, kernel shows %d", rel, nsec, want.Mtime.Nsec)
		}
		if want.Type == treecmp.Chr || want.Type == treecmp.Blk {
			dev, err := strconv.ParseUint(field(t, out, "u3.dev"), 0, 32)
			if err != nil {
				t.Fatal(err)
			}
			if got := treecmp.RdevFromXFS(uint32(dev)); got != want.Rdev {
				t.Errorf("%s: RdevFromXFS(%#x) = %v, kernel shows %v", rel, dev, got, want.Rdev)
			}
		}
		if rel == "forms/xattrs/acl" {
			if name := field(t, out, "a.sfattr.list[0].name"); name != `"SGI_ACL_FILE"` || field(t, out, "a.sfattr.list[0].root") != "1" {
				t.Fatalf("ACL attribute on disk: %s", out)
			}
			raw, err := unquoteDB(field(t, out, "a.sfattr.list[0].value"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := treecmp.ACLFromXFS(raw)
			if err != nil {
				t.Fatal(err)
			}
			name := treecmp.XattrName(treecmp.NSTrusted, "SGI_ACL_FILE")
			if !bytes.Equal(got, want.Xattrs[name]) {
				t.Errorf("ACLFromXFS(%x) = %x, kernel shows %s = %x", raw, got, name, want.Xattrs[name])
			}
		}
	}
}

func field(t *testing.T, out, name string) string {
	t.Helper()
	v, err := oracle.Field(out, name)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	return v
}

// unquoteDB decodes a string as xfs_db prints it: in double quotes, with C
// escapes and octal escapes for other unprintable bytes.
func unquoteDB(s string) ([]byte, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, fmt.Errorf("not a quoted xfs_db string: %q", s)
	}
	s = s[1 : len(s)-1]
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		if i == len(s) {
			return nil, errors.New("trailing backslash")
		}
		if c, ok := map[byte]byte{'a': 7, 'b': 8, 'f': 12, 'n': 10, 'r': 13, 't': 9, 'v': 11, '\\': '\\', '"': '"', '\'': '\''}[s[i]]; ok {
			out = append(out, c)
			continue
		}
		v, n := 0, 0
		for n < 3 && i+n < len(s) && s[i+n] >= '0' && s[i+n] <= '7' {
			v = v*8 + int(s[i+n]-'0')
			n++
		}
		if n == 0 || v > 255 {
			return nil, fmt.Errorf("bad escape at %d in %q", i, s)
		}
		out = append(out, byte(v))
		i += n - 1
	}
	return out, nil
}
