package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/clitest"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
)

// TestCommandLine runs growfs as a user would: usage errors exit 3,
// refusals 1, a dirty log 2; -n prints what xfs_info prints and changes
// nothing; --size, -D with a suffix and -m grow the image; --json parses.
func TestCommandLine(t *testing.T) {
	bin := clitest.Build(t, ".", "growfs")
	for _, args := range [][]string{{}, {"a", "b"}, {"--bogus", "a"}, {"-D", "x1", "a"}, {"--atomic=maybe", "a"}, {"-m", "101", "a"}} {
		if _, e, code := clitest.Run(bin, args...); code != 3 || e == "" {
			t.Errorf("%v: exit %d (want 3), stderr %q", args, code, e)
		}
	}
	oracle.Require(t, oracle.Tools)
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	mk := exec.Command("mkfs.xfs", "-q", "-f", "-d", "agsize=24m", img)
	mk.Env = append(os.Environ(), "TEST_DIR=/nonexistent", "TEST_DEV=/nonexistent", "QA_CHECK_FS=xfs")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}

	for _, args := range [][]string{{"-l"}, {"-R", "100"}, {"-x"}} {
		if _, e, code := clitest.Run(bin, append(args, img)...); code != 1 || !strings.Contains(e, "not supported") {
			t.Errorf("%v: exit %d (want 1), stderr %q", args, code, e)
		}
	}
	info := oracle.Run(t, "xfs_info", img)
	if out, e, code := clitest.Run(bin, "-n", "--size", "1g", img); code != 0 || out != info+"image "+img+" would be extended to 1073741824 bytes\ndata blocks would change from 16384 to 262144\n" {
		t.Errorf("-n: exit %d, stderr %q, output\n%s\nwant xfs_info's\n%s", code, e, out, info)
	}
	if st, _ := os.Stat(img); st.Size() != 64<<20 {
		t.Fatalf("-n changed the image size to %d", st.Size())
	}
	if _, e, code := clitest.Run(bin, "-D", "20000", img); code != 1 || !strings.Contains(e, "too large") {
		t.Errorf("-D past the end: exit %d, stderr %q", code, e)
	}
	if _, e, code := clitest.Run(bin, "-D", "100", img); code != 1 || !strings.Contains(e, "smaller") {
		t.Errorf("-D shrink: exit %d, stderr %q", code, e)
	}

	// --size extends the file; -D with a suffix stops short of its end.
	out, e, code := clitest.Run(bin, "--json", "--size", "200m", "-D", "120m", "-m", "10", img)
	var r struct {
		NewBlocks  uint64 `json:"new_blocks"`
		NewAGCount uint32 `json:"new_agcount"`
		NewIMaxPct int    `json:"new_imaxpct"`
		Extended   bool
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("--json: exit %d, %v\n%s\n%s", code, err, out, e)
	}
	if r.NewBlocks != 120<<20/4096 || r.NewAGCount != 5 || r.NewIMaxPct != 10 || !r.Extended {
		t.Errorf("--json result %+v", r)
	}
	if st, _ := os.Stat(img); st.Size() != 200<<20 {
		t.Errorf("image is %d bytes after --size 200m", st.Size())
	}
	oracle.RequireRepairClean(t, img)
	if out, _, code := clitest.Run(bin, "-d", img); code != 0 || !strings.Contains(out, "data blocks changed from 30720 to 51200") {
		t.Errorf("-d: exit %d, output %q", code, out)
	}
	oracle.RequireRepairClean(t, img)

	oracle.Require(t, oracle.Root, oracle.Loop)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if _, e, code := clitest.Run(bin, "--size", "300m", img); code != 1 || !strings.Contains(e, "mounted") {
		t.Errorf("mounted: exit %d, stderr %q", code, e)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A dirty log is replayed first; one replay cannot finish (a file
	// deleted while open) is refused with exit 2.
	logtest.Crash(t, mnt, true)
	if _, e, code := clitest.Run(bin, "--size", "300m", img); code != 2 || !strings.Contains(e, "dirty") || !strings.Contains(e, "mount") {
		t.Errorf("dirty log replay cannot finish: exit %d (want 2), stderr %q", code, e)
	}
	oracle.Unmount(t, oracle.Mount(t, img, false)) // the kernel frees the file
	mnt = oracle.Mount(t, img, false)
	if err := os.WriteFile(filepath.Join(mnt, "g"), []byte("more"), 0o644); err != nil {
		t.Fatal(err)
	}
	logtest.Crash(t, mnt, false)
	if _, e, code := clitest.Run(bin, "--size", "300m", img); code != 0 || !strings.Contains(e, "replayed first") {
		t.Errorf("dirty log: exit %d (want 0), stderr %q", code, e)
	}
	oracle.RequireRepairClean(t, img)
}
