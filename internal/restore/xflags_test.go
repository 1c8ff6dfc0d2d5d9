package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// fakeAttrs is an inode on a pretend filesystem: it drops the flags in
// drop without a word (as ext4 does with XFS-only flags), refuses the
// flags in refuse and project ids other than 0 with the given errors,
// and, like a strict filesystem, refuses any change but clearing the
// lock flags while one is set.
type fakeAttrs struct {
	cur     fsAttr
	drop    uint32
	refuse  uint32
	projErr error
	getErr  error
	sets    int
}

func (f *fakeAttrs) get() (fsAttr, error) { return f.cur, f.getErr }

func (f *fakeAttrs) set(v fsAttr) error {
	f.sets++
	if f.cur.XFlags&xfLock != 0 && v != merge(f.cur, v, xfLock, false) {
		return unix.EPERM
	}
	if v.XFlags&f.refuse != 0 {
		return unix.EINVAL
	}
	if v.ProjID != 0 && f.projErr != nil {
		return f.projErr
	}
	v.XFlags &^= f.drop
	if v.XFlags&(xfExtSize|xfExtSzInherit) == 0 {
		v.ExtSize = 0
	}
	f.cur = v
	return nil
}

func TestApplyAttrs(t *testing.T) {
	want := fsAttr{XFlags: xfImmutable | xfNodump | xfNoSymlinks | xfExtSzInherit, ExtSize: 1 << 20, ProjID: 42}
	for _, c := range []struct {
		name   string
		fs     fakeAttrs
		want   fsAttr
		final  fsAttr
		fails  []string
		noSets bool
	}{
		{name: "xfs", want: want, final: want},
		{name: "ext4-like", fs: fakeAttrs{drop: xfNoSymlinks | xfExtSzInherit, projErr: unix.EOPNOTSUPP}, want: want,
			final: fsAttr{XFlags: xfImmutable | xfNodump},
			fails: []string{"project id 42: not supported by the destination filesystem",
				"nosymlinks flag: not kept by the destination filesystem",
				"extent size hint 1048576: not kept by the destination filesystem"}},
		{name: "refused flag, lock still last", fs: fakeAttrs{refuse: xfNoSymlinks}, want: want,
			final: fsAttr{XFlags: xfImmutable | xfNodump | xfExtSzInherit, ExtSize: 1 << 20, ProjID: 42},
			fails: []string{"nosymlinks flag: refused by the destination filesystem (invalid argument)"}},
		{name: "unlock first", fs: fakeAttrs{cur: fsAttr{XFlags: xfImmutable | xfSync}, projErr: unix.EPERM},
			want: fsAttr{XFlags: xfNodump, ProjID: 3}, final: fsAttr{XFlags: xfNodump},
			fails: []string{"project id 3: not permitted"}},
		{name: "nothing to do", fs: fakeAttrs{cur: fsAttr{XFlags: xfHasAttr | xfPrealloc}}, want: fsAttr{},
			final: fsAttr{XFlags: xfHasAttr | xfPrealloc}, noSets: true},
		{name: "unreadable, nothing wanted", fs: fakeAttrs{getErr: unix.ENOTTY}, want: fsAttr{}, noSets: true},
		{name: "unreadable", fs: fakeAttrs{getErr: unix.ENOTTY, refuse: xfAll}, want: fsAttr{XFlags: xfAppend},
			fails: []string{"append-only flag: not supported by the destination filesystem"}, noSets: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := c.fs
			got, _, fails := applyAttrs(&fs, nil, c.want, xfAll, true)
			if fs.getErr == nil && got != c.final {
				t.Errorf("attributes after: %+v, want %+v", got, c.final)
			}
			if fs.cur != c.final {
				t.Errorf("inode has %+v, want %+v", fs.cur, c.final)
			}
			if strings.Join(fails, "\n") != strings.Join(c.fails, "\n") {
				t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(fails, "\n"), strings.Join(c.fails, "\n"))
			}
			if c.noSets != (fs.sets == 0) {
				t.Errorf("%d set calls", fs.sets)
			}
		})
	}
	// A mask touches nothing else: the late step sets only late flags.
	fs := fakeAttrs{cur: fsAttr{XFlags: xfNodump, ProjID: 5}}
	_, _, fails := applyAttrs(&fs, nil, fsAttr{XFlags: xfAppend}, xfLate, false)
	if len(fails) > 0 || fs.cur != (fsAttr{XFlags: xfNodump | xfAppend, ProjID: 5}) {
		t.Errorf("late step: %+v %v", fs.cur, fails)
	}
}

func TestWantAttr(t *testing.T) {
	for _, c := range []struct {
		m    stream.FileMeta
		want fsAttr
	}{
		{stream.FileMeta{XFlags: xfPrealloc | xfHasAttr | xfNodump}, fsAttr{XFlags: xfNodump}},
		{stream.FileMeta{XFlags: xfExtSize, ExtSize: 4096}, fsAttr{XFlags: xfExtSize, ExtSize: 4096}},
		{stream.FileMeta{XFlags: xfExtSize}, fsAttr{}},               // a flag without a size
		{stream.FileMeta{ExtSize: 4096, CowExtSize: 8192}, fsAttr{}}, // sizes without flags
		{stream.FileMeta{XFlags: xfCowExtSize, CowExtSize: 8192, ProjectID: 9}, fsAttr{XFlags: xfCowExtSize, CowExtSize: 8192, ProjID: 9}},
	} {
		if got := wantAttr(&c.m); got != c.want {
			t.Errorf("%+v: %+v, want %+v", c.m, got, c.want)
		}
	}
	if s := xflagsString(xfImmutable | xfAppend | 1<<20); s != "immutable,append-only,0x100000" {
		t.Errorf("xflagsString: %q", s)
	}
}

// ---- stand-in dumps on the test's temporary filesystem ----

// lockFlags returns the XFS flags of p (0 if unreadable).
func readXFlags(t *testing.T, p string) uint32 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	defer unix.Close(fd)
	a, err := (&fdAttrs{fd: fd}).get()
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return a.XFlags & xfAll
}

// requireLockableTemp skips unless the temporary filesystem holds the
// immutable flag.
func requireLockableTemp(t *testing.T) {
	oracle.Require(t, oracle.Root)
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	io := &fdAttrs{fd: fd}
	if err := io.set(fsAttr{XFlags: xfImmutable | xfSync}); err != nil {
		t.Skipf("the temporary filesystem (%s) has no immutable flag: %v", fsType(t, os.TempDir()), err)
	}
	unlock(io)
	io.set(fsAttr{})
}

// withXFlags sets the XFlags of the named paths (relative to root) in a
// stand-in dump.
func withXFlags(t *testing.T, root string, flags map[string]uint32) func([]*stream.Dir, []*dumpFile) {
	return func(dirs []*stream.Dir, files []*dumpFile) {
		byIno := map[uint64]uint32{}
		for rel, x := range flags {
			byIno[lino(t, filepath.Join(root, rel))] = x
		}
		for _, d := range dirs {
			d.Meta.XFlags = byIno[d.Meta.Ino]
		}
		for _, f := range files {
			f.meta.XFlags = byIno[f.meta.Ino]
		}
	}
}

func checkXFlags(t *testing.T, dest string, flags map[string]uint32, others []string) {
	t.Helper()
	for rel, x := range flags {
		if got := readXFlags(t, filepath.Join(dest, rel)); got != x {
			t.Errorf("%s: flags %s, want %s", rel, xflagsString(got), xflagsString(x))
		}
	}
	for _, rel := range others {
		if got := readXFlags(t, filepath.Join(dest, rel)); got != 0 {
			t.Errorf("%s: flags %s, want none", rel, xflagsString(got))
		}
	}
}

// TestXFlagsResumeAfterKill kills a plain restore and a cumulative level
// 1 restore at their steps (the late flags and the unlocking of what
// level 0 locked among them) and resumes: the tree and the flags end up
// as if nothing had happened.
func TestXFlagsResumeAfterKill(t *testing.T) {
	requireLockableTemp(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	b := &builder{t: t, root: src}
	b.mkdir("locked", 0o755)
	b.mkdir("appdir", 0o755)
	b.mkdir("plain", 0o755)
	b.write("imm", []byte("immutable\n"))
	b.write("app", []byte("append-only\n"))
	b.write("sync", []byte("sync\n"))
	b.write("still", []byte("never changes\n"))
	b.write("locked/x", []byte("in a locked directory\n"))
	b.write("appdir/y", []byte("in an append-only directory\n"))
	b.write("plain/h1", []byte("immutable, two names\n"))
	b.must(os.Link(b.p("plain/h1"), b.p("plain/h2")))
	for i := 0; i < 6; i++ {
		b.write(fmt.Sprintf("plain/f%d", i), pattern(i, 100*i))
	}
	setDirTimes(t, src)
	flags0 := map[string]uint32{"imm": xfImmutable, "app": xfAppend, "sync": xfSync | xfNodump, "still": xfImmutable,
		"locked": xfImmutable, "appdir": xfAppend | xfNoatime, "plain/h1": xfImmutable}
	start := time.Now()
	time.Sleep(5 * time.Millisecond)
	os.Mkdir(filepath.Join(tmp, "l0"), 0o755)
	l0 := dumpDir(t, src, filepath.Join(tmp, "l0"), dumpOpts{edit: withXFlags(t, src, flags0)})

	// Level 1: rewrite, remove and rename locked things.
	b.write("imm", []byte("rewritten at level 1\n"))
	b.must(os.Remove(b.p("app")))
	b.must(os.Remove(b.p("locked/x")))
	b.write("locked/z", []byte("new in a locked directory\n"))
	b.must(os.Remove(b.p("appdir/y")))
	b.must(os.Rename(b.p("plain/h1"), b.p("plain/h3")))
	setDirTimes(t, src)
	flags1 := map[string]uint32{"imm": xfImmutable | xfNodump, "sync": xfSync | xfNodump, "still": xfImmutable,
		"locked": xfImmutable, "appdir": xfAppend | xfNoatime, "plain/h3": xfImmutable, "plain/h2": xfImmutable}
	l1dir := filepath.Join(tmp, "l1")
	os.Mkdir(l1dir, 0o755)
	l1 := dumpDir(t, src, l1dir, dumpOpts{level: 1, base: l0.session, edit: withXFlags(t, src, flags1),
		include: func(rel string, st *unix.Stat_t) bool {
			return !time.Unix(st.Ctim.Sec, st.Ctim.Nsec).Before(start) && rel != "still"
		}})
	others1 := []string{"locked/z", "plain", "plain/f1"}

	dests := map[string]bool{}
	newDest := func() string {
		d := filepath.Join(t.TempDir(), "dest")
		dests[d] = true
		return d
	}
	t.Cleanup(func() {
		for d := range dests {
			unlockTree(t, d)
		}
	})

	t.Run("plain", func(t *testing.T) {
		total := countSteps(t, Options{Sources: l0.files, Dest: newDest()})
		for _, k := range spread(total, 6) {
			dest := newDest()
			if !killAt(t, childSpec{Sources: l0.files, Dest: dest, KillAt: k}) {
				t.Fatalf("the restore finished before step %d of %d", k, total)
			}
			requireOK(t, runRestore(t, Options{Sources: l0.files, Dest: dest, Resume: true}))
			checkXFlags(t, dest, flags0, []string{"plain/f1", "locked/x"})
			if _, err := os.Lstat(filepath.Join(dest, stateDirName)); err == nil {
				t.Errorf("killed at %d: the state directory is left in the destination", k)
			}
		}
	})
	t.Run("cumulative", func(t *testing.T) {
		base := func(dest string) {
			requireOK(t, runRestore(t, Options{Sources: l0.files, Dest: dest, Cumulative: true}))
			checkXFlags(t, dest, flags0, nil)
		}
		cdest := newDest()
		base(cdest)
		total := countSteps(t, Options{Sources: l1.files, Dest: cdest, Cumulative: true})
		sameTree(t, src, cdest)
		checkXFlags(t, cdest, flags1, others1)
		for _, k := range spread(total, total) {
			t.Run(fmt.Sprint("kill-at-", k), func(t *testing.T) {
				dest := newDest()
				base(dest)
				if !killAt(t, childSpec{Sources: l1.files, Dest: dest, Cumulative: true, KillAt: k}) {
					t.Fatalf("the restore finished before step %d of %d", k, total)
				}
				requireOK(t, runRestore(t, Options{Sources: l1.files, Dest: dest, Cumulative: true, Resume: true}))
				sameTree(t, src, dest)
				checkXFlags(t, dest, flags1, others1)
			})
		}
	})
}

// TestXFlagsLockedRoot: an immutable dumped root is locked after
// everything else (the state directory leaves it first in a plain
// restore), and a cumulative restore that keeps its state inside the
// destination unlocks it to apply the next session.
func TestXFlagsLockedRoot(t *testing.T) {
	requireLockableTemp(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	b := &builder{t: t, root: src}
	b.mkdir("d", 0o755)
	b.write("d/f", []byte("level 0\n"))
	setDirTimes(t, src)
	flags := map[string]uint32{".": xfImmutable | xfNodump, "d": xfImmutable}
	start := time.Now()
	time.Sleep(5 * time.Millisecond)
	os.Mkdir(filepath.Join(tmp, "l0"), 0o755)
	l0 := dumpDir(t, src, filepath.Join(tmp, "l0"), dumpOpts{edit: withXFlags(t, src, flags)})
	b.write("new", []byte("level 1\n"))
	b.write("d/f", []byte("level 1\n"))
	setDirTimes(t, src)
	os.Mkdir(filepath.Join(tmp, "l1"), 0o755)
	l1 := dumpDir(t, src, filepath.Join(tmp, "l1"), dumpOpts{level: 1, base: l0.session, edit: withXFlags(t, src, flags),
		include: func(rel string, st *unix.Stat_t) bool { return !time.Unix(st.Ctim.Sec, st.Ctim.Nsec).Before(start) }})

	plain := filepath.Join(t.TempDir(), "plain")
	cum := filepath.Join(t.TempDir(), "cum")
	t.Cleanup(func() { unlockTree(t, plain); unlockTree(t, cum) })
	requireOK(t, runRestore(t, Options{Sources: l0.files, Dest: plain}))
	checkXFlags(t, plain, flags, nil)
	if _, err := os.Lstat(filepath.Join(plain, stateDirName)); err == nil {
		t.Error("the state directory is left in the locked root")
	}
	checkTimes(t, plain, map[string]stream.FileMeta{".": l0.meta["."], "d": l0.meta["d"]})

	requireOK(t, runRestore(t, Options{Sources: l0.files, Dest: cum, Cumulative: true}))
	checkXFlags(t, cum, flags, nil)
	requireOK(t, runRestore(t, Options{Sources: l1.files, Dest: cum, Cumulative: true}))
	checkXFlags(t, cum, flags, []string{"new"})
	sameTree(t, src, cum)
}
