package restore

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/dump"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// kernel-made XFS attributes, dumped by xfskit dump and restored.

// sh runs a command (xfs_io, chattr, …) and fails the test on error.
func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	oracle.Run(t, name, args...)
}

func xfsIO(t *testing.T, path string, cmds ...string) {
	t.Helper()
	args := []string{}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	sh(t, "xfs_io", append(args, path)...)
}

// xfsAttrs is what `xfs_io -r -c 'lsattr -v' -c stat` shows of a regular
// file or directory: the flag names (without prealloc and has-xattr, which
// the kernel keeps itself) and the fsxattr fields restore sets.
func xfsAttrs(t *testing.T, path string) string {
	t.Helper()
	out := oracle.Run(t, "xfs_io", "-r", "-c", "lsattr -v", "-c", "stat", path)
	var flags, fields []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "[") {
			names, _, _ := strings.Cut(line[1:], "]")
			for _, n := range strings.Split(names, ", ") {
				if n != "" && n != "has-xattr" && n != "prealloc" {
					flags = append(flags, n)
				}
			}
		}
		k, v, ok := strings.Cut(line, " = ")
		switch k {
		case "fsxattr.projid", "fsxattr.extsize", "fsxattr.cowextsize":
			if ok {
				fields = append(fields, k[len("fsxattr."):]+"="+v)
			}
		}
	}
	if len(fields) != 3 {
		t.Fatalf("xfs_io output for %s lacks fsxattr fields:\n%s", path, out)
	}
	return "[" + strings.Join(flags, ",") + "] " + strings.Join(fields, " ")
}

// dbAttrs is what xfs_db prints of the inodes (for symlinks and fifos,
// which xfs_io cannot open): project id and every set flag.
func dbAttrs(t *testing.T, img string, inos map[string]uint64) map[string]string {
	t.Helper()
	var names []string
	var cmds []string
	for n := range inos {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cmds = append(cmds, "inode "+strconv.FormatUint(inos[n], 10), "print core v3.dax v3.cowextsz", "echo ====")
	}
	out := oracle.DB(t, img, []string{"-r"}, cmds...)
	parts := strings.Split(out, "====")
	got := map[string]string{}
	for i, n := range names {
		if i >= len(parts) {
			t.Fatalf("xfs_db output too short:\n%s", out)
		}
		var flags []string
		var projLo, projHi string
		for _, line := range strings.Split(parts[i], "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
			if !ok {
				continue
			}
			switch k {
			case "core.projid_lo":
				projLo = v
			case "core.projid_hi":
				projHi = v
			case "core.immutable", "core.append", "core.sync", "core.noatime", "core.nodump", "core.projinherit",
				"core.nosymlinks", "core.extsz", "core.extszinherit", "core.nodefrag", "core.filestream", "v3.dax", "v3.cowextsz":
				if v == "1" {
					flags = append(flags, k[strings.IndexByte(k, '.')+1:])
				}
			}
		}
		got[n] = "projid=" + projHi + ":" + projLo + " [" + strings.Join(flags, ",") + "]"
	}
	return got
}

func lino(t *testing.T, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// xflagsSource fills a fresh XFS image through the kernel with every
// attribute restore sets; it returns the paths to compare (regular files
// and directories) and the specials (symlinks, fifos).
func xflagsSource(t *testing.T, mnt string) (paths, specials []string) {
	p := func(rel string) string { return filepath.Join(mnt, rel) }
	mk := func(rel string) {
		if err := os.MkdirAll(p(rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wr := func(rel, data string) {
		if err := os.WriteFile(p(rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oracle.MustBeMounted(t, mnt)
	// Project 42 with inheritance: what is made inside gets the id.
	mk("proj")
	xfsIO(t, p("proj"), "chproj 42", "chattr +P")
	wr("proj/file", "in project 42\n")
	mk("proj/sub")
	if err := os.Symlink("../file", p("proj/sub/link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p("proj/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	wr("proj/other", "moved to project 7\n")
	xfsIO(t, p("proj/other"), "chproj 7")
	// chattr flags, set with e2fsprogs' chattr and with xfs_io.
	wr("imm", "immutable data\n")
	wr("imm-linked", "immutable with two names\n")
	if err := os.Link(p("imm-linked"), p("imm-link2")); err != nil {
		t.Fatal(err)
	}
	wr("app", "append-only data\n")
	wr("sync", "sync\n")
	wr("noatime", "no atime\n")
	wr("nodump", "no dump\n")
	wr("combo", "several\n")
	wr("defrag", "no defrag\n")
	wr("dax", "dax\n")
	sh(t, "touch", "-d", "2001-02-03 04:05:06.123456789", p("imm"))
	sh(t, "chattr", "+i", p("imm"))
	xfsIO(t, p("imm-linked"), "chattr +i")
	sh(t, "chattr", "+a", p("app"))
	sh(t, "chattr", "+S", p("sync"))
	xfsIO(t, p("noatime"), "chattr +A")
	xfsIO(t, p("nodump"), "chattr +d")
	xfsIO(t, p("combo"), "chattr +sAd")
	xfsIO(t, p("defrag"), "chattr +f")
	xfsIO(t, p("dax"), "chattr +x")
	// Hints: set before the data, as the kernel requires.
	sh(t, "xfs_io", "-f", "-c", "extsize 1m", "-c", "pwrite -q 0 3m", p("ext"))
	sh(t, "xfs_io", "-f", "-c", "cowextsize 256k", "-c", "pwrite -q 0 64k", p("cow"))
	mk("extdir")
	xfsIO(t, p("extdir"), "extsize 1m")
	sh(t, "xfs_io", "-f", "-c", "pwrite -q 0 2m", p("extdir/inherited"))
	mk("cowdir")
	xfsIO(t, p("cowdir"), "cowextsize 512k")
	// Directory flags; the locked ones after their contents.
	mk("nosym")
	if err := os.Symlink("target", p("nosym/before")); err != nil {
		t.Fatal(err)
	}
	xfsIO(t, p("nosym"), "chattr +n")
	mk("fsdir")
	xfsIO(t, p("fsdir"), "chattr +S")
	mk("nodumpdir")
	sh(t, "chattr", "+d", p("nodumpdir"))
	wr("nodumpdir/child", "made after no-dump: inherits it\n")
	mk("immdir/sub")
	wr("immdir/a", "a\n")
	wr("immdir/sub/b", "b\n")
	sh(t, "touch", "-d", "1999-12-31 23:59:59.5", p("immdir"))
	sh(t, "chattr", "+i", p("immdir"))
	mk("appdir")
	wr("appdir/x", "x\n")
	sh(t, "chattr", "+a", p("appdir"))
	paths = []string{".", "proj", "proj/file", "proj/sub", "proj/other", "imm", "imm-linked", "imm-link2", "app", "sync",
		"noatime", "nodump", "combo", "defrag", "dax", "ext", "cow", "extdir", "extdir/inherited", "cowdir", "nosym",
		"fsdir", "nodumpdir", "nodumpdir/child", "immdir", "immdir/a", "immdir/sub", "immdir/sub/b", "appdir", "appdir/x"}
	specials = []string{"proj/sub/link", "proj/fifo", "nosym/before"}
	return paths, specials
}

// xflagsDump makes the source image and dumps it; want holds the
// attributes the kernel shows of every path.
type xflagsDumped struct {
	img, inv  string
	media     []string
	paths     []string
	specials  []string
	want      map[string]string
	wantDB    map[string]string
	wantTree  *treecmp.Tree
	unchanged []string
}

func makeXFlagsDump(t *testing.T) *xflagsDumped {
	t.Helper()
	d := &xflagsDumped{img: oracle.Mkfs(t, "512m"), inv: filepath.Join(t.TempDir(), "inv.db")}
	mnt := oracle.Mount(t, d.img, false)
	d.paths, d.specials = xflagsSource(t, mnt)
	oracle.Unmount(t, mnt)
	d.media = dumpImage(t, dump.Options{Image: d.img, Inventory: d.inv})
	d.want, d.wantDB, d.wantTree = kernelAttrs(t, d.img, "", d.paths, d.specials)
	return d
}

// kernelAttrs reads the attributes of paths under sub of img through a
// read-only mount (xfs_io) and of specials with xfs_db, and the tree.
func kernelAttrs(t *testing.T, img, sub string, paths, specials []string) (map[string]string, map[string]string, *treecmp.Tree) {
	t.Helper()
	mnt := oracle.Mount(t, img, true)
	root := filepath.Join(mnt, sub)
	attrs := map[string]string{}
	for _, p := range paths {
		attrs[p] = xfsAttrs(t, filepath.Join(root, p))
	}
	inos := map[string]uint64{}
	for _, p := range specials {
		inos[p] = lino(t, filepath.Join(root, p))
	}
	tr, err := treecmp.FromDir(root, treecmp.Options{Skip: skipHousekeeping})
	if err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	return attrs, dbAttrs(t, img, inos), tr
}

func compareAttrs(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: %s: restored %q, source %q", what, k, got[k], want[k])
		}
	}
}

// TestXFlagsKernelImage: flags (immutable, append-only, sync, no-atime,
// no-dump, proj-inherit, nosymlinks, extsize, extsz-inherit, no-defrag,
// filestream, dax, cowextsize), project ids and both extent size hints
// set by the kernel (xfs_io, chattr) come back as the kernel shows them
// on the source, on files, directories, symlinks and fifos; locked files
// and directories keep their data, names and times.
func TestXFlagsKernelImage(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	if _, err := exec.LookPath("xfs_io"); err != nil {
		t.Skip("xfs_io not installed")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr (e2fsprogs) not installed")
	}
	d := makeXFlagsDump(t)
	for _, p := range []string{"imm", "app", "sync", "ext", "cow", "extdir", "immdir", "nosym", "proj/file", "nodumpdir/child"} {
		if strings.HasPrefix(d.want[p], "[] projid=0 extsize=0 cowextsize=0") {
			t.Fatalf("source %s has no attributes (%s): the test would prove nothing", p, d.want[p])
		}
	}
	if !strings.Contains(d.wantDB["proj/sub/link"], "projid=0:42") {
		t.Fatalf("the source symlink did not inherit project 42: %s", d.wantDB["proj/sub/link"])
	}

	simg, mnt := scratchXFS(t)
	dest := filepath.Join(mnt, "dest")
	res := runRestore(t, Options{Sources: d.media, Dest: dest})
	requireOK(t, res)
	oracle.Unmount(t, mnt)
	got, gotDB, gotTree := kernelAttrs(t, simg, "dest", d.paths, d.specials)
	compareAttrs(t, "xfs_io", d.want, got)
	compareAttrs(t, "xfs_db", d.wantDB, gotDB)
	diffTrees(t, d.wantTree, gotTree, treecmp.DiffOptions{Sparse: true, Nlink: true})

	// --no-xflags: nothing of it, and nothing reported.
	mnt = oracle.Mount(t, simg, false)
	oracle.MustBeMounted(t, mnt)
	res = runRestore(t, Options{Sources: d.media, Dest: filepath.Join(mnt, "plain"), NoXFlags: true})
	requireOK(t, res)
	if a := xfsAttrs(t, filepath.Join(mnt, "plain", "imm")); a != "[] projid=0 extsize=0 cowextsize=0" {
		t.Errorf("with NoXFlags, imm got %s", a)
	}
}

// TestXFlagsIntoExt4: ext4 takes the chattr flags (immutable,
// append-only, sync, no-atime, no-dump); the XFS-only ones, the hints
// and (without its project feature) project ids are reported per path,
// and the restore is not OK — unless NoXFlags is given.
func TestXFlagsIntoExt4(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	for _, c := range []string{"mkfs.ext4", "xfs_io", "chattr", "lsattr"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed (e2fsprogs is not installed by tests)", c)
		}
	}
	d := makeXFlagsDump(t)
	img := filepath.Join(t.TempDir(), "ext4.img")
	sh(t, "truncate", "-s", "256m", img)
	sh(t, "mkfs.ext4", "-q", "-F", img)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "mount", "-t", "ext4", "-o", "loop", img, mnt)
	t.Cleanup(func() { oracle.Unmount(t, mnt) })
	oracle.MustBeMounted(t, mnt)

	dest := filepath.Join(mnt, "dest")
	res := runRestore(t, Options{Sources: d.media, Dest: dest})
	if res.OK() {
		t.Fatal("restore into ext4 reported nothing")
	}
	reported := map[string]string{}
	for _, p := range res.Problems {
		t.Logf("reported: %s", p)
		if !strings.Contains(p.Reason, "XFS attributes not restored") {
			t.Errorf("unexpected problem: %s", p)
			continue
		}
		reported[p.Path] += p.Reason
	}
	for p, what := range map[string][]string{
		"nosym":            {"nosymlinks flag"},
		"fsdir":            {"filestream flag"},
		"defrag":           {"no-defrag flag"},
		"ext":              {"extent size hint 1048576"},
		"extdir":           {"extent size hint 1048576"},
		"extdir/inherited": {"extent size hint 1048576"},
		"cow":              {"CoW extent size hint 262144"},
		"cowdir":           {"CoW extent size hint 524288"},
		"proj":             {"project id 42"},
		"proj/file":        {"project id 42"},
		"proj/other":       {"project id 7"},
		"proj/sub/link":    {"project id 42"},
	} {
		for _, w := range what {
			if !strings.Contains(reported[p], w) {
				t.Errorf("%s: %q not reported (got %q)", p, w, reported[p])
			}
		}
	}
	for _, p := range []string{"imm", "app", "sync", "noatime", "nodump", "immdir/a", "appdir/x"} {
		if reported[p] != "" {
			t.Errorf("%s: reported although ext4 holds its flags: %s", p, reported[p])
		}
	}
	// The chattr flags are there (lsattr letters: i a S A d).
	for p, letter := range map[string]string{"imm": "i", "imm-linked": "i", "app": "a", "sync": "S", "noatime": "A",
		"nodump": "d", "immdir": "i", "appdir": "a", "nodumpdir": "d", "nodumpdir/child": "d"} {
		out := oracle.Run(t, "lsattr", "-d", filepath.Join(dest, p))
		flags, _, _ := strings.Cut(out, " ")
		if !strings.Contains(flags, letter) {
			t.Errorf("%s on ext4: lsattr %q lacks %s", p, strings.TrimSpace(out), letter)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dest, "immdir/sub/b")); err != nil || string(b) != "b\n" {
		t.Errorf("immdir/sub/b: %q %v", b, err)
	}

	res = runRestore(t, Options{Sources: d.media, Dest: filepath.Join(mnt, "plain"), NoXFlags: true})
	requireOK(t, res)
	unlockTree(t, mnt)
}

// unlockTree clears immutable and append-only under dir (so that test
// directories can be removed).
func unlockTree(t *testing.T, dir string) {
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || !(e.Type().IsRegular() || e.IsDir()) {
			return nil
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unlock(&fdAttrs{fd: fd})
			unix.Close(fd)
		}
		return nil
	})
}

// TestXFlagsCumulativeKernel: a level 1 dump after the kernel changed,
// removed and renamed files that level 0 made immutable or append-only
// (and inside such directories) applies on top of the level 0 restore;
// files that stay locked are locked again, and a level 2 that unlocks a
// file unlocks it.
func TestXFlagsCumulativeKernel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	for _, c := range []string{"xfs_io", "chattr"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed", c)
		}
	}
	img := oracle.Mkfs(t, "512m")
	inv := filepath.Join(t.TempDir(), "inv.db")
	change := func(fn func(p func(string) string)) {
		t.Helper()
		m := oracle.Mount(t, img, false)
		oracle.MustBeMounted(t, m)
		fn(func(rel string) string { return filepath.Join(m, rel) })
		oracle.Unmount(t, m)
	}
	write := func(p, data string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	_, mnt := scratchXFS(t)
	dest := filepath.Join(mnt, "dest")
	state := filepath.Join(t.TempDir(), "state")
	apply := func(level int) {
		t.Helper()
		media := dumpImage(t, dump.Options{Image: img, Level: level, Inventory: inv})
		oracle.MustBeMounted(t, mnt)
		requireOK(t, runRestore(t, Options{Sources: media, Dest: dest, Cumulative: true, StateDir: state}))
		src := oracle.Mount(t, img, true)
		for _, p := range paths {
			if w, g := xfsAttrs(t, filepath.Join(src, p)), xfsAttrs(t, filepath.Join(dest, p)); w != g {
				t.Errorf("level %d: %s: restored %s, source %s", level, p, g, w)
			}
		}
		want, err := treecmp.FromDir(src, treecmp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		oracle.Unmount(t, src)
		got, err := treecmp.FromDir(dest, treecmp.Options{Skip: skipHousekeeping})
		if err != nil {
			t.Fatal(err)
		}
		diffTrees(t, want, got, treecmp.DiffOptions{Sparse: true, Nlink: true})
	}
	change(func(p func(string) string) {
		os.MkdirAll(p("a"), 0o755)
		os.MkdirAll(p("lockdir"), 0o755)
		os.MkdirAll(p("appdir"), 0o755)
		write(p("a/imm"), "level 0\n")
		write(p("a/imm2"), "removed at level 1\n")
		write(p("keep"), "renamed at level 1\n")
		write(p("still"), "never changes\n")
		write(p("lockdir/f1"), "renamed inside a locked directory\n")
		write(p("lockdir/f2"), "removed from a locked directory\n")
		write(p("appdir/x"), "removed from an append-only directory\n")
		write(p("log"), "append-only\n")
		for _, f := range []string{"a/imm", "a/imm2", "keep", "still", "lockdir"} {
			sh(t, "chattr", "+i", p(f))
		}
		for _, f := range []string{"appdir", "log"} {
			sh(t, "chattr", "+a", p(f))
		}
	})
	paths = []string{".", "a", "a/imm", "a/imm2", "keep", "still", "lockdir", "lockdir/f1", "lockdir/f2", "appdir", "appdir/x", "log"}
	apply(0)
	change(func(p func(string) string) {
		sh(t, "chattr", "-i", p("a/imm"))
		write(p("a/imm"), "level 1: rewritten\n")
		sh(t, "chattr", "+i", p("a/imm"))
		sh(t, "chattr", "-i", p("a/imm2"))
		os.Remove(p("a/imm2"))
		sh(t, "chattr", "-i", p("keep"))
		os.Rename(p("keep"), p("a/keep-moved"))
		sh(t, "chattr", "+i", p("a/keep-moved"))
		sh(t, "chattr", "-i", p("lockdir"))
		os.Rename(p("lockdir/f1"), p("lockdir/f1-renamed"))
		os.Remove(p("lockdir/f2"))
		sh(t, "chattr", "+i", p("lockdir"))
		sh(t, "chattr", "-a", p("appdir"))
		os.Remove(p("appdir/x"))
		write(p("appdir/y"), "new in an append-only directory\n")
		sh(t, "chattr", "+a", p("appdir"))
		f, err := os.OpenFile(p("log"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("appended at level 1\n")
		f.Close()
	})
	paths = []string{".", "a", "a/imm", "a/keep-moved", "still", "lockdir", "lockdir/f1-renamed", "appdir", "appdir/y", "log"}
	apply(1)
	change(func(p func(string) string) {
		sh(t, "chattr", "-i", p("a/imm"))
		sh(t, "chattr", "-i", p("lockdir"))
	})
	apply(2)
	if a := xfsAttrs(t, filepath.Join(dest, "still")); !strings.HasPrefix(a, "[immutable]") {
		t.Errorf("still (kept from level 0) after level 2: %s", a)
	}
}

// TestXFlagsWithoutFileSetattr: on kernels without file_setattr a fifo is
// reached through a descriptor (never a device: those are not opened),
// and a symlink is reported.
func TestXFlagsWithoutFileSetattr(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	_, mnt := scratchXFS(t)
	for _, mk := range []func() error{
		func() error { return unix.Mkfifo(filepath.Join(mnt, "fifo"), 0o644) },
		func() error { return os.Symlink("fifo", filepath.Join(mnt, "link")) },
		func() error { return unix.Mknod(filepath.Join(mnt, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) },
	} {
		if err := mk(); err != nil {
			t.Fatal(err)
		}
	}
	dfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	r := &run{}
	r.xf.noCall.Store(true)
	want := fsAttr{XFlags: xfNodump, ProjID: 9}
	io := r.nodeIO(dfd, "fifo")
	if _, _, fails := applyAttrs(io, nil, want, xfAll, true); len(fails) > 0 {
		t.Errorf("fifo: %v", fails)
	}
	io.close()
	if got, err := (&pathAttrs{dfd, "fifo"}).get(); err != nil || got.XFlags&xfAll != want.XFlags || got.ProjID != 9 {
		t.Errorf("fifo has %+v (%v)", got, err)
	}
	for _, name := range []string{"link", "null"} {
		io := r.nodeIO(dfd, name)
		_, _, fails := applyAttrs(io, nil, want, xfAll, true)
		io.close()
		if len(fails) != 2 || !strings.Contains(fails[0], "file_setattr") {
			t.Errorf("%s: %v", name, fails)
		}
	}
}
