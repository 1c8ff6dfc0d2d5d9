package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/clitest"
	"xfskit/internal/oracle"
)

// tree makes a small source tree.
func tree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	for i := 0; i < 200; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%d", i%7))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", i)), bytes.Repeat([]byte{byte(i)}, i*301), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d0/f000", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCommandLine(t *testing.T) {
	bin := clitest.Build(t, ".", "estimate")
	mkfs := clitest.Build(t, "../mkfs", "mkfs")
	src := tree(t)

	// xfs_estimate's line.
	out, e, code := clitest.Run(bin, src)
	if code != 0 || !regexp.MustCompile(`^`+regexp.QuoteMeta(src)+` will take about [0-9]+\.[0-9] megabytes\n$`).MatchString(out) {
		t.Fatalf("estimate DIR: exit %d, %q, %q", code, out, e)
	}

	// --bytes is a size mkfs -p takes, and fits.
	out, e, code = clitest.Run(bin, "--bytes", src)
	size, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if code != 0 || err != nil || size%4096 != 0 {
		t.Fatalf("--bytes: exit %d, %q, %q", code, out, e)
	}
	img := filepath.Join(t.TempDir(), "a.img")
	if _, e, code := clitest.Run(mkfs, "-q", "-p", src, "-d", "size="+strings.TrimSpace(out), img); code != 0 {
		t.Fatalf("mkfs -p -d size=$(estimate --bytes): exit %d: %s", code, e)
	}
	if _, err := exec.LookPath("xfs_repair"); err == nil {
		oracle.RequireRepairClean(t, img)
	}

	// -H rounds up to whole megabytes, and fits too.
	out, _, code = clitest.Run(bin, "-H", src)
	human := strings.TrimSpace(out)
	if code != 0 || !regexp.MustCompile(`^[0-9]+[mg]$`).MatchString(human) {
		t.Fatalf("-H: exit %d, %q", code, out)
	}
	os.Remove(img)
	if _, e, code := clitest.Run(mkfs, "-q", "-p", src, "-d", "size="+human, img); code != 0 {
		t.Fatalf("mkfs -p -d size=%s: exit %d: %s", human, code, e)
	}

	// -v: xfs_estimate's header and columns first.
	out, _, code = clitest.Run(bin, "-v", src)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "directory                               bsize   blocks    megabytes    logsize") {
		t.Fatalf("-v: exit %d, %q", code, out)
	}
	f := strings.Fields(lines[1])
	if len(f) != 12 || f[0] != src || f[1] != "4096" || f[11] != strconv.FormatInt(size, 10) && !strings.HasSuffix(f[11], "m") {
		t.Errorf("-v row: %q", lines[1])
	}

	// --json for scripts.
	out, _, code = clitest.Run(bin, "--json", src)
	var js []map[string]any
	if err := json.Unmarshal([]byte(out), &js); code != 0 || err != nil || len(js) != 1 {
		t.Fatalf("--json: exit %d, %v, %q", code, err, out)
	}
	if js[0]["bytes"].(float64) != float64(size) || js[0]["files"].(float64) != 200 || js[0]["symlinks"].(float64) != 1 || js[0]["directory"] != src {
		t.Errorf("--json: %v", js[0])
	}

	// xfs_estimate's -b BLOCKSIZE and -i LOGSIZE are mkfs's -b size= and -l size=.
	for _, pair := range [][2][]string{
		{{"-b", "1024"}, {"-b", "size=1024"}},
		{{"-b", "1k", "-i", "10m"}, {"-b", "size=1k", "-l", "size=10m"}},
	} {
		a, _, c1 := clitest.Run(bin, append(append([]string{"--bytes"}, pair[0]...), src)...)
		b, _, c2 := clitest.Run(bin, append(append([]string{"--bytes"}, pair[1]...), src)...)
		if c1 != 0 || c2 != 0 || a != b {
			t.Errorf("%v gives %q (exit %d), %v gives %q (exit %d)", pair[0], a, c1, pair[1], b, c2)
		}
	}
	out, _, _ = clitest.Run(bin, "--json", "-i", "10m", src)
	if !strings.Contains(out, fmt.Sprintf(`"log_blocks": %d`, 10<<20/4096)) {
		t.Errorf("-i 10m: log size not 10 MiB: %s", out)
	}

	// A missing directory is reported by name; the others are still
	// estimated; the exit status says something failed.
	missing := filepath.Join(t.TempDir(), "nope")
	out, e, code = clitest.Run(bin, missing, src)
	if code != 1 || !strings.Contains(e, missing) || !strings.Contains(out, src+" will take about") {
		t.Errorf("missing directory: exit %d, stdout %q, stderr %q", code, out, e)
	}

	// Usage errors exit 1, as xfs_estimate's.
	for _, args := range [][]string{
		{},
		{"-e", "10m", src},
		{"-d", "size=1g", src},
		{"-b", "3000", src},
		{"--bytes", "-H", src},
		{"-x", src},
	} {
		if _, e, code := clitest.Run(bin, args...); code != 1 || e == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, e)
		}
	}
}

// TestUnreadable runs estimate as another user on a tree with an
// unreadable directory and an unreadable file: each is an error naming
// it (root reads everything, so only another user can see this).
func TestUnreadable(t *testing.T) {
	oracle.Require(t, oracle.Root)
	bin := clitest.Build(t, ".", "estimate")
	src := tree(t)
	for _, p := range []string{bin, src} {
		// Let the other user reach the binary and the tree.
		for d := filepath.Dir(p); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
	}
	locked := filepath.Join(src, "d3", "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(src, "d5", "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() (string, int) {
		cmd := exec.Command(bin, src)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stderr.String(), code
	}
	if e, code := run(); code != 1 || !strings.Contains(e, locked) || !strings.Contains(e, "permission denied") {
		t.Errorf("unreadable directory: exit %d, %q", code, e)
	}
	os.Chmod(locked, 0o755)
	if e, code := run(); code != 1 || !strings.Contains(e, secret) || !strings.Contains(e, "permission denied") {
		t.Errorf("unreadable file: exit %d, %q", code, e)
	}
	os.Chmod(secret, 0o644)
	if e, code := run(); code != 0 {
		t.Errorf("readable again: exit %d, %q", code, e)
	}
}
