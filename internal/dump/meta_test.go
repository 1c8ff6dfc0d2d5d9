package dump

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// xfsIOStat returns the fsxattr fields `xfs_io -c stat` prints for path.
func xfsIOStat(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	out := oracle.Run(t, "xfs_io", "-r", "-c", "stat", path)
	re := regexp.MustCompile(`(?m)^fsxattr\.(\w+) = (0x[0-9a-f]+|\d+)`)
	m := map[string]uint64{}
	for _, g := range re.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseUint(g[2], 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		m[g[1]] = v
	}
	if _, ok := m["xflags"]; !ok {
		t.Fatalf("no fsxattr.xflags in xfs_io stat output:\n%s", out)
	}
	return m
}

// TestInodeMetadata checks what treecmp does not: fsxattr flags, project
// IDs, extent size hints, creation times and generation numbers against
// what the kernel reports for files set up through it.
func TestInodeMetadata(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "512m", "-m", "bigtime=1")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	p := func(rel string) string { return filepath.Join(mnt, rel) }
	if err := os.MkdirAll(p("d/inherit"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"plain", "flags", "proj", "hint", "cow", "d/inherit/child"} {
		if err := os.WriteFile(p(f), []byte(f), 0o644); err != nil && f != "hint" && f != "cow" {
			t.Fatal(err)
		}
	}
	os.Truncate(p("hint"), 0)
	os.Truncate(p("cow"), 0)
	oracle.Run(t, "xfs_io", "-c", "chattr +Ads", p("flags"))
	oracle.Run(t, "xfs_io", "-c", "chproj 4242", p("proj"))
	oracle.Run(t, "xfs_io", "-c", "extsize 1m", p("hint"))
	oracle.Run(t, "xfs_io", "-c", "cowextsize 256k", p("cow"))
	oracle.Run(t, "xfs_io", "-c", "chattr +P", "-c", "chproj 77", "-c", "extsize 64k", p("d"))
	oracle.Run(t, "xfs_io", "-c", "chattr +n", p("d/inherit"))
	future := time.Date(2300, 5, 6, 7, 8, 9, 123456789, time.UTC)
	// Not os.Chtimes: 2300 is beyond int64 nanoseconds.
	tsp := unix.Timespec{Sec: future.Unix(), Nsec: int64(future.Nanosecond())}
	if err := unix.UtimesNano(p("plain"), []unix.Timespec{tsp, tsp}); err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)

	inv := filepath.Join(t.TempDir(), "inv.db")
	r := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: inv})
	c := readStreams(t, mediaOf(r))
	paths := c.paths(t)
	meta := func(rel string) stream.FileMeta {
		ino := paths[rel]
		if d := c.dirs[ino]; d != nil {
			return d.Meta
		}
		if f := c.files[ino]; f != nil {
			return f.meta
		}
		t.Fatalf("%s not in the stream", rel)
		return stream.FileMeta{}
	}

	mnt = oracle.Mount(t, img, true)
	for _, rel := range []string{"plain", "flags", "proj", "hint", "cow", "d", "d/inherit", "d/inherit/child"} {
		m := meta(rel)
		k := xfsIOStat(t, p(rel))
		if uint64(m.XFlags) != k["xflags"]&^0x80000000 { // HASATTR is not dumped
			t.Errorf("%s: xflags 0x%x, kernel 0x%x", rel, m.XFlags, k["xflags"])
		}
		if uint64(m.ProjectID) != k["projid"] || uint64(m.ExtSize) != k["extsize"] || uint64(m.CowExtSize) != k["cowextsize"] {
			t.Errorf("%s: projid %d extsize %d cowextsize %d, kernel %v", rel, m.ProjectID, m.ExtSize, m.CowExtSize, k)
		}
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p(rel), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_ALL|unix.STATX_BTIME, &sx); err != nil {
			t.Fatal(err)
		}
		if m.Crtime.Sec != sx.Btime.Sec || m.Crtime.Nsec != sx.Btime.Nsec || m.Ctime.Sec != sx.Ctime.Sec || m.Ctime.Nsec != sx.Ctime.Nsec {
			t.Errorf("%s: crtime %v ctime %v, kernel %v %v", rel, m.Crtime, m.Ctime, sx.Btime, sx.Ctime)
		}
		fd, err := unix.Open(p(rel), unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		gen, err := unix.IoctlGetUint32(fd, 0x80087601) // FS_IOC_GETVERSION
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		if m.Gen != gen {
			t.Errorf("%s: generation %d, kernel %d", rel, m.Gen, gen)
		}
	}
	if m := meta("flags"); m.XFlags&0xe0 != 0xe0 { // noatime, nodump, sync
		t.Errorf("flags: xflags 0x%x lack A, d, s", m.XFlags)
	}
	if m := meta("proj"); m.ProjectID != 4242 {
		t.Errorf("proj: project %d", m.ProjectID)
	}
	if m := meta("plain"); m.Mtime.Sec != future.Unix() || m.Mtime.Nsec != 123456789 {
		t.Errorf("plain: mtime %v, want %v", m.Mtime, future)
	}
}

// TestMountedReadWrite: an image mounted read-write is refused before
// anything is recorded (its on-disk state lags behind the kernel's); a
// read-only mount is consistent and is dumped.
func TestMountedReadWrite(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "512m")
	mnt := oracle.Mount(t, img, false)
	dir := t.TempDir()
	o := Options{Image: img, Dests: []string{filepath.Join(dir, "s")}, Inventory: filepath.Join(dir, "inv.db")}
	_, err := Dump(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "mounted read-write at "+mnt) {
		t.Fatalf("dump of a read-write mount: %v", err)
	}
	if _, err := os.Stat(o.Inventory); err == nil {
		t.Error("the inventory was touched for a refused image")
	}
	oracle.Run(t, "mount", "-o", "remount,ro", mnt)
	if r, err := Dump(t.Context(), o); err != nil || r.Dirs == 0 {
		t.Fatalf("dump of a read-only mount: %+v %v", r, err)
	}
}
