package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"xfskit/internal/clitest"

	"xfskit/internal/oracle"
)

func run(bin string, env []string, args ...string) (string, string, int) {
	return clitest.Opts{Env: env}.Run(bin, args...)
}

func TestCommandLine(t *testing.T) {
	bin := clitest.Build(t, ".", "mkfs")
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")

	// Usage errors exit 1 like mkfs.xfs and say what is wrong.
	for _, args := range [][]string{
		{"-d", "agcount=4,agsize=1g", "-d", "size=1g", img},
		{"-m", "crc=0", "-d", "size=1g", img},
		{"-b", "size=3000", "-d", "size=1g", img},
		{"-d", "size=1g"},
		{"-x", img},
	} {
		if _, e, code := run(bin, nil, args...); code != 1 || e == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, e)
		}
	}
	if _, e, _ := run(bin, nil, "-m", "crc=0", "-d", "size=1g", img); !strings.Contains(e, "crc=0") {
		t.Errorf("crc=0 refusal does not name the option: %q", e)
	}

	// Creating an image prints the mkfs.xfs geometry block.
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	out, e, code := run(bin, env, "-d", "size=400m", "-m", "uuid=11111111-2222-3333-4444-555555555555", "-L", "cli", img)
	if code != 0 {
		t.Fatalf("mkfs: exit %d: %s", code, e)
	}
	if _, err := exec.LookPath("mkfs.xfs"); err == nil {
		want, _, _ := run("mkfs.xfs", nil, "-N", "-f", "-L", "cli", img)
		if out != want {
			t.Errorf("report differs from mkfs.xfs -N:\n%s\nvs\n%s", out, want)
		}
		oracle.RequireRepairClean(t, img)
	} else {
		oracle.Require(t, oracle.Tools) // skips, or fails under CI
	}

	// The target now holds XFS: no overwrite without -f.
	if _, e, code := run(bin, nil, img); code != 1 || !strings.Contains(e, "-f") {
		t.Errorf("overwrite without -f: exit %d, %q", code, e)
	}

	// Same options, UUID and SOURCE_DATE_EPOCH: byte-identical images.
	img2 := filepath.Join(dir, "b.img")
	if _, e, code := run(bin, env, "-q", "-d", "size=400m", "-m", "uuid=11111111-2222-3333-4444-555555555555", "-L", "cli", img2); code != 0 {
		t.Fatalf("mkfs: %s", e)
	}
	if oracle.FileHash(t, img) != oracle.FileHash(t, img2) {
		t.Error("two runs with the same options, UUID and SOURCE_DATE_EPOCH differ")
	}

	// --json reports the geometry for scripts.
	out, e, code = run(bin, nil, "--json", "-f", "-d", "size=64m", img)
	if code != 0 || !strings.Contains(out, `"ag_count": 4`) {
		t.Errorf("--json: exit %d, %s %s", code, out, e)
	}

	// A mounted image is refused even with -f, and left as it is.
	oracle.Require(t, oracle.Root, oracle.Loop)
	mnt := oracle.Mount(t, img2, true) // read-only: the kernel writes nothing
	before := oracle.FileHash(t, img2)
	if _, e, code := run(bin, nil, "-q", "-f", img2); code != 1 || !strings.Contains(e, "mounted at "+mnt) {
		t.Errorf("mkfs -f of a mounted image: exit %d, %q", code, e)
	}
	if oracle.FileHash(t, img2) != before {
		t.Error("mkfs -f changed a mounted image")
	}
}
