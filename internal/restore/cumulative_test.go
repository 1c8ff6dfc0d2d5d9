package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// chain builds a source tree and dumps it at several levels, like a
// filesystem changed between incremental dumps.
type chain struct {
	t        *testing.T
	b        *builder
	out      string
	skip     map[uint64]bool // inodes only renamed/linked: left out of incrementals
	sessions map[string]*dumped
	since    map[string]time.Time // session name → its start
}

func newChain(t *testing.T) *chain {
	tmp := t.TempDir()
	c := &chain{t: t, b: &builder{t: t, root: filepath.Join(tmp, "src")}, out: filepath.Join(tmp, "out"),
		skip: map[uint64]bool{}, sessions: map[string]*dumped{}, since: map[string]time.Time{}}
	os.Mkdir(c.b.root, 0o755)
	os.Mkdir(c.out, 0o755)
	return c
}

func (c *chain) ino(rel string) uint64 {
	var st unix.Stat_t
	c.b.must(unix.Lstat(c.b.p(rel), &st))
	return st.Ino
}

// mvKeep renames without changing the file: incrementals leave it out.
func (c *chain) mvKeep(from, to string) {
	c.skip[c.ino(from)] = true
	c.b.must(os.Rename(c.b.p(from), c.b.p(to)))
}

func (c *chain) mv(from, to string) { c.b.must(os.Rename(c.b.p(from), c.b.p(to))) }

// rm removes a path; inodes it frees may be reused, so they leave skip.
func (c *chain) rm(rel string) {
	filepath.WalkDir(c.b.p(rel), func(p string, d os.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil && unix.Lstat(p, &st) == nil && st.Nlink <= 1 {
			delete(c.skip, st.Ino)
		}
		return nil
	})
	c.b.must(os.RemoveAll(c.b.p(rel)))
}

// dump makes session name at level, based on session base ("" for level 0).
func (c *chain) dump(name string, level uint32, base string, streams int) *dumped {
	c.t.Helper()
	setDirTimes(c.t, c.b.root)
	start := time.Now()
	time.Sleep(2 * time.Millisecond)
	o := dumpOpts{level: level, streams: streams}
	if base != "" {
		since := c.since[base]
		o.base = c.sessions[base].session
		o.include = func(rel string, st *unix.Stat_t) bool {
			if c.skip[st.Ino] {
				return false
			}
			return !time.Unix(st.Ctim.Sec, st.Ctim.Nsec).Before(since) || !time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Before(since)
		}
	}
	dir := filepath.Join(c.out, name)
	os.Mkdir(dir, 0o755)
	d := dumpDir(c.t, c.b.root, dir, o)
	c.sessions[name] = d
	c.since[name] = start
	time.Sleep(2 * time.Millisecond)
	return d
}

func (c *chain) step0() {
	b := c.b
	for _, d := range []string{"d1/sub", "d2/deep/er", "d3/y", "mv", "moveme", "becomes-file"} {
		b.mkdir(d, 0o755)
	}
	b.write("d1/f1", []byte("one"))
	b.write("d1/f2", []byte("two"))
	b.write("d1/sub/f3", []byte("three"))
	b.write("d2/f4", []byte("four"))
	b.write("d2/deep/er/f5", []byte("five"))
	b.write("d3/x", []byte("x"))
	b.write("d3/y/z", []byte("z"))
	b.write("mv/content", []byte("moved dir content"))
	b.write("moveme/inner", []byte("inner"))
	b.write("top-file", []byte("top"))
	b.write("swap-a", []byte("A"))
	b.write("swap-b", []byte("B"))
	b.write("becomes-dir", []byte("file for now"))
	b.write("becomes-file/child", []byte("child"))
	b.write("d1/hl1", []byte("hard"))
	b.must(os.Link(b.p("d1/hl1"), b.p("d2/hl2")))
	b.must(unix.Lsetxattr(b.p("d2"), "user.gone", []byte("soon"), 0))
	b.must(unix.Lsetxattr(b.p("d2"), "system.posix_acl_default", testACL, 0))
	b.must(os.Symlink("d1/f1", b.p("sym")))
}

func (c *chain) step1() {
	b := c.b
	c.rm("d1/f2")
	c.rm("d3")
	c.mvKeep("d1/f1", "d2/f1-moved")
	c.mv("mv", "mv-renamed")
	c.mv("moveme", "d1/moveme")
	b.write("d1/new", []byte("new"))
	b.mkdir("newdir", 0o750)
	b.write("newdir/file", []byte("newdir file"))
	b.write("d2/f4", []byte("four, changed"))
	b.must(unix.Chmod(b.p("d2/deep/er/f5"), 0o600))
	c.mvKeep("swap-a", "swap-tmp")
	c.mvKeep("swap-b", "swap-a")
	c.mvKeep("swap-tmp", "swap-b")
	c.rm("becomes-dir")
	b.mkdir("becomes-dir", 0o755)
	b.write("becomes-dir/in", []byte("in"))
	c.rm("becomes-file")
	b.write("becomes-file", []byte("now a file"))
	c.skip[c.ino("d1/sub/f3")] = true
	b.must(os.Link(b.p("d1/sub/f3"), b.p("d2/f3-link")))
	c.skip[c.ino("d1/hl1")] = true
	b.must(os.Remove(b.p("d1/hl1")))
	b.must(unix.Lsetxattr(b.p("d1"), "user.x", []byte("new attr"), 0))
	b.must(unix.Lremovexattr(b.p("d2"), "user.gone"))
	// New entries of d2 inherit its default ACL; these two lose it again,
	// so the restore must not leave the inherited one on them.
	b.write("d2/no-acl", []byte("no acl"))
	b.must(unix.Mkfifo(b.p("d2/fifo-no-acl"), 0o600))
	b.mkdir("d2/dir-no-acl", 0o755)
	for _, p := range []string{"d2/no-acl", "d2/fifo-no-acl", "d2/dir-no-acl"} {
		b.must(unix.Lremovexattr(b.p(p), "system.posix_acl_access"))
	}
	b.must(unix.Lremovexattr(b.p("d2/dir-no-acl"), "system.posix_acl_default"))
	b.write("d2/with-acl", []byte("inherited"))
}

func (c *chain) step2() {
	b := c.b
	c.mv("d1", "d2/d1")
	c.rm("d2/f1-moved")
	b.write("top-file", []byte("top, changed at level 2"))
	b.mkdir("a/b/c/d", 0o700)
	c.mvKeep("newdir/file", "a/b/file")
	b.must(os.Truncate(b.p("d2/deep/er/f5"), 2))
}

func (c *chain) step3() {
	b := c.b
	c.rm("a")
	c.mv("d2/d1/sub", "sub-top")
	b.write("sub-top/f-new", []byte("f-new"))
	b.must(os.Symlink("elsewhere", b.p("d2/d1/moveme/sym2")))
}

func TestCumulativeChain(t *testing.T) {
	oracle.Require(t, oracle.Root)
	c := newChain(t)
	dest := filepath.Join(t.TempDir(), "dest")
	apply := func(name string) *Result {
		t.Helper()
		res := runRestore(t, Options{Sources: c.sessions[name].files, Dest: dest, Cumulative: true})
		requireOK(t, res)
		sameTree(t, c.b.root, dest)
		return res
	}
	c.step0()
	c.dump("l0", 0, "", 2)
	apply("l0")
	if _, err := os.Stat(filepath.Join(dest, stateDirName, stateFile)); err != nil {
		t.Fatalf("no state after a cumulative restore: %v", err)
	}
	c.step1()
	c.dump("l1", 1, "l0", 1)
	// l1 must not hold the renamed-only files: restore moves what it has.
	if res := apply("l1"); res.Moved == 0 || res.Removed == 0 {
		t.Errorf("level 1: moved %d removed %d", res.Moved, res.Removed)
	}
	c.step2()
	c.dump("l2", 2, "l1", 2)
	apply("l2")
	c.step3()
	c.dump("l1b", 1, "l0", 3)
	apply("l1b")
	if _, err := os.Lstat(filepath.Join(dest, orphanageName)); !os.IsNotExist(err) {
		t.Errorf("orphanage left behind: %v", err)
	}

	// Again, every session in one run, given in a scrambled order, with
	// the state outside the destination.
	dest2 := filepath.Join(t.TempDir(), "dest2")
	var all []string
	for _, n := range []string{"l2", "l1b", "l0", "l1"} {
		all = append(all, c.sessions[n].files...)
	}
	state := filepath.Join(t.TempDir(), "state")
	requireOK(t, runRestore(t, Options{Sources: all, Dest: dest2, Cumulative: true, StateDir: state}))
	sameTree(t, c.b.root, dest2)
	if _, err := os.Lstat(filepath.Join(dest2, stateDirName)); !os.IsNotExist(err) {
		t.Errorf("state written into the destination despite --state: %v", err)
	}

	// Misuse is refused with a clear error.
	for _, x := range []struct {
		srcs []string
		dest string
		want string
	}{
		{c.sessions["l1"].files, filepath.Join(t.TempDir(), "fresh"), "starts with a level 0"},
		{c.sessions["l1b"].files, dest, "already applied"},
		{c.sessions["l2"].files, dest, "not in the applied chain"},
	} {
		_, err := Restore(t.Context(), Options{Sources: x.srcs, Dest: x.dest, Cumulative: true})
		if err == nil || !strings.Contains(err.Error(), x.want) {
			t.Errorf("got %v, want an error about %q", err, x.want)
		}
	}
	sameTree(t, c.b.root, dest)
}

// A plain restore of an incremental session restores what it holds.
func TestPlainIncremental(t *testing.T) {
	oracle.Require(t, oracle.Root)
	c := newChain(t)
	c.step0()
	c.dump("l0", 0, "", 1)
	c.step1()
	d := c.dump("l1", 1, "l0", 1)
	dest := filepath.Join(t.TempDir(), "dest")
	requireOK(t, runRestore(t, Options{Sources: d.files, Dest: dest}))
	if got := string(readAll(t, filepath.Join(dest, "d2/f4"))); got != "four, changed" {
		t.Errorf("d2/f4 = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dest, "d1/sub/f3")); !os.IsNotExist(err) {
		t.Errorf("unchanged file restored from an incremental: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dest, "newdir"), &st); err != nil || st.Mode&0o7777 != 0o750 {
		t.Errorf("newdir: %v mode %o", err, st.Mode&0o7777)
	}
	_ = stream.TypeDir
}
