package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// Sizes of the source tree's directories: shortform, block, leaf and node
// forms with 4 KiB directory blocks (node also with 16 KiB ones).
var sourceDirSizes = []int{0, 3, 100, 400, 5000}

// makeSource mounts a tmpfs (unlike ext4 it holds any number of
// attributes, and noatime keeps readlink from changing symlink atimes)
// and fills it with what an appliance image holds and more: every file
// type, holes, hard links across directories, attributes of every
// namespace and size, ACLs, nanosecond times, dates past 2038 and before
// 1970, odd modes and owners, long and non-UTF-8 names, directories of
// every form and a deep path. About 12 MiB of data and 6,000 inodes.
func makeSource(t *testing.T) string {
	t.Helper()
	oracle.Require(t, oracle.Root)
	dir := t.TempDir()
	oracle.Run(t, "mount", "-t", "tmpfs", "-o", "size=512m,mode=0755,noatime", "tmpfs", dir)
	t.Cleanup(func() { oracle.Unmount(t, dir) })
	oracle.MustBeMounted(t, dir)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	mkdir := func(rel string, perm os.FileMode) {
		must(os.MkdirAll(p(rel), 0o755))
		must(os.Chmod(p(rel), perm))
	}
	write := func(rel string, data []byte, perm os.FileMode) {
		must(os.WriteFile(p(rel), data, perm))
		must(os.Chmod(p(rel), perm))
	}
	// writeAt writes 4 KiB-aligned pieces so that data ranges compare
	// across block sizes of 1 to 4 KiB.
	writeAt := func(rel string, size int64, at ...int64) {
		f, err := os.Create(p(rel))
		must(err)
		for i, off := range at {
			_, err := f.WriteAt(pattern(i+7, 4096), off)
			must(err)
		}
		must(f.Truncate(size))
		must(f.Close())
	}

	mkdir("files", 0o755)
	write("files/empty", nil, 0o644)
	write("files/small", []byte("hello, appliance\n"), 0o600)
	write("files/blocks", pattern(1, 3*4096+17), 0o640)
	write("files/big", pattern(2, 4<<20+5), 0o644)
	var islands []int64
	for i := int64(0); i < 300; i++ {
		islands = append(islands, i*65536)
	}
	writeAt("files/islands", 300*65536-4096+100, islands...) // 300 extents: a bmbt fork
	writeAt("files/hole-head", 1<<20+8192, 1<<20, 1<<20+4096)
	writeAt("files/hole-tail", 3<<20, 0, 4096)
	writeAt("files/all-hole", 7<<20)
	write("files/setid", []byte("#!/bin/sh\n"), 0o755|os.ModeSetuid|os.ModeSetgid)
	mkdir("files/sticky", 0o1777|os.ModeSticky)
	must(os.Link(p("files/small"), p("files/small-link")))
	mkdir("other", 0o750)
	must(os.Link(p("files/small"), p("other/small-link")))
	must(os.Link(p("files/big"), p("other/big-link")))

	mkdir("names", 0o755)
	for i, n := range []string{strings.Repeat("n", 255), strings.Repeat("é", 127), "日本語のファイル名", "emoji-🎉",
		"tab\tname", "new\nline", "\xff\xfe-not-utf8", " lead space", "-dash", "trailing.", strings.Repeat("m", 254) + "x"} {
		write("names/"+n, []byte(fmt.Sprint(i)), 0o644)
	}

	mkdir("links", 0o755)
	must(os.Symlink("../files/small", p("links/short")))
	must(os.Symlink(strings.Repeat("x/", 511)+"y", p("links/max")))
	must(os.Symlink(strings.Repeat("z", 300), p("links/remote")))
	must(os.Symlink("/nonexistent/target", p("links/dangling")))
	must(os.Symlink("../dirs", p("links/to-dir")))

	mkdir("dev", 0o755)
	must(unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("dev/loop7"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 7))))
	must(unix.Mknod(p("dev/big-minor"), unix.S_IFCHR|0o600, int(unix.Mkdev(200, 200000))))
	must(unix.Mkfifo(p("dev/fifo"), 0o640))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(err)
	must(unix.Bind(fd, &unix.SockaddrUnix{Name: p("dev/sock")}))
	unix.Close(fd)

	mkdir("xattrs", 0o755)
	write("xattrs/many", []byte("x"), 0o644)
	for i := 0; i < 120; i++ { // beyond a leaf block: node form
		must(unix.Setxattr(p("xattrs/many"), fmt.Sprintf("user.attr%03d", i), pattern(i, 20+i%90), 0))
	}
	write("xattrs/large", nil, 0o644)
	must(unix.Setxattr(p("xattrs/large"), "user.big", pattern(5, 4000), 0)) // a remote value
	must(unix.Setxattr(p("xattrs/large"), "trusted.secret", []byte("t"), 0))
	must(unix.Setxattr(p("xattrs/large"), "security.label", []byte("s0"), 0))
	must(unix.Setxattr(p("xattrs/large"), "user.empty", nil, 0))
	acl := treecmp.ACLXattr([]treecmp.ACLEntry{{Tag: 1, Perm: 7}, {Tag: 2, Perm: 5, ID: 1234}, {Tag: 4, Perm: 5},
		{Tag: 8, Perm: 1, ID: 4321}, {Tag: 0x10, Perm: 5}, {Tag: 0x20, Perm: 4}})
	mkdir("xattrs/acl", 0o755)
	must(unix.Setxattr(p("xattrs/acl"), "system.posix_acl_access", acl, 0))
	must(unix.Setxattr(p("xattrs/acl"), "system.posix_acl_default", acl, 0))
	write("xattrs/acl/file", []byte("acl"), 0o640)
	must(unix.Setxattr(p("xattrs/acl/file"), "system.posix_acl_access", acl, 0))
	must(unix.Lsetxattr(p("links/short"), "trusted.on-symlink", []byte("v"), 0))

	for _, n := range sourceDirSizes {
		d := fmt.Sprintf("dirs/d%d", n)
		mkdir(d, 0o755)
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s/entry-%06d-%s", d, i, strings.Repeat("p", i%40))
			if i%50 == 1 {
				mkdir(name, 0o700)
			} else {
				write(name, []byte(name[len(name)-3:]), 0o644)
			}
		}
	}
	deep := "deep"
	for i := 0; i < 40; i++ {
		deep += fmt.Sprintf("/level-%02d", i)
	}
	mkdir(deep, 0o755)
	write(deep+"/leaf", []byte("deep"), 0o444)

	// Owners and times (nanoseconds; some past 2038, one before 1970),
	// directories last and deepest first so their mtimes stick.
	mkdir("times", 0o755)
	for _, n := range []string{"y2100", "y2400", "y1938", "epoch"} {
		write("times/"+n, []byte(n), 0o644)
	}
	special := map[string][2]int64{
		"times/y2100": {4102444800 + 1, 4102444800 + 2},
		"times/y2400": {13569465600 + 3, 13569465600 + 4},
		"times/y1938": {-1000000000, -999999999},
		"times/epoch": {0, 0},
		"links/max":   {4102444800 + 5, 2147483648},
	}
	var dirs []string
	i := 0
	must(filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		must(err)
		i++
		must(unix.Lchown(path, 1000+i%7, 2000+i%5))
		if fi.IsDir() {
			dirs = append(dirs, path)
			return nil
		}
		ts := []unix.Timespec{{Sec: 1600000000 + int64(i), Nsec: int64(i * 1013 % 1e9)}, {Sec: 1500000000 + int64(i), Nsec: int64(999999999 - i)}}
		rel, _ := filepath.Rel(dir, path)
		if s, ok := special[filepath.ToSlash(rel)]; ok {
			ts = []unix.Timespec{{Sec: s[0], Nsec: 123456789}, {Sec: s[1], Nsec: 987654321}}
		}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
		return nil
	}))
	for k := len(dirs) - 1; k >= 0; k-- {
		ts := []unix.Timespec{{Sec: 1400000000 + int64(k), Nsec: 5}, {Sec: 1300000000 + int64(k), Nsec: int64(k)}}
		if strings.HasSuffix(dirs[k], "/times") {
			ts[1] = unix.Timespec{Sec: 4102444800 + 99, Nsec: 1}
		}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, dirs[k], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	return dir
}
