package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"xfskit/internal/clitest"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
)

// TestPopulateFlags runs -p and its options through the command line.
func TestPopulateFlags(t *testing.T) {
	bin := clitest.Build(t, ".", "mkfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "f"), []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--owner", "1:2", "-d", "size=64m", filepath.Join(dir, "x.img")}, // needs -p
		{"--root-owner", "-d", "size=64m", filepath.Join(dir, "x.img")},   // needs -p
		{"-p", src, "--owner", "1", filepath.Join(dir, "x.img")},          // not UID:GID
		{"-p", src, "--owner", "1:2", "--root-owner", filepath.Join(dir, "x.img")},
		{"-p", src, "--size-margin", "-5", filepath.Join(dir, "x.img")},
		{"-p", filepath.Join(dir, "missing"), filepath.Join(dir, "x.img")},
		{"-p", src, filepath.Join(src, "sub", "f")}, // target inside the tree
	} {
		if _, e, code := run(bin, nil, args...); code != 1 || e == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, e)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img")); err == nil {
		t.Errorf("a refused run left an image behind")
	}

	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := filepath.Join(dir, "a.img")
	env := []string{"SOURCE_DATE_EPOCH=1000000000"}
	if o, e, code := run(bin, env, "-q", "-p", src, "--owner", "7:8", "-m", "uuid=5f0c2d4e-8a1b-4c3d-9e7f-123456789abc", img); code != 0 {
		t.Fatalf("mkfs -p: exit %d\n%s%s", code, o, e)
	}
	img2 := filepath.Join(dir, "b.img")
	run(bin, env, "-q", "-p", src, "--owner", "7:8", "-m", "uuid=5f0c2d4e-8a1b-4c3d-9e7f-123456789abc", img2)
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(img2)
	if string(a) != string(b) {
		t.Errorf("two runs with SOURCE_DATE_EPOCH and -m uuid= differ")
	}
	oracle.RequireRepairClean(t, img)
	mnt := oracle.Mount(t, img, true)
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(mnt, "sub", "f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 7 || st.Gid != 8 || st.Mtim.Sec > 1000000000 || st.Mode&0o777 != 0o640 {
		t.Errorf("sub/f: owner %d:%d mtime %d mode 0%o", st.Uid, st.Gid, st.Mtim.Sec, st.Mode)
	}
	if d, _ := os.ReadFile(filepath.Join(mnt, "sub", "f")); !strings.EqualFold(string(d), "data") {
		t.Errorf("sub/f reads %q", d)
	}
}
