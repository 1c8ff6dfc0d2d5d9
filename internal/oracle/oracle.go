// Package oracle gives tests access to the real XFS tools and kernel: images
// made by mkfs.xfs, loop mounts, xfs_repair and xfs_db. Tests that need them
// call Require, which skips with a printed reason when the machine lacks
// them — or fails when XFSKIT_REQUIRE_ORACLE=1 (as CI sets it).
package oracle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EnvRequire is the variable that turns a missing-oracle skip into a failure.
const EnvRequire = "XFSKIT_REQUIRE_ORACLE"

// Need names something a test depends on.
type Need string

const (
	Root  Need = "root"
	Loop  Need = "loop"  // loop mounts of XFS
	Tools Need = "tools" // mkfs.xfs, xfs_db, xfs_repair
	Dump  Need = "dump"  // xfsdump, xfsrestore
	Attr  Need = "attr"  // setfattr/getfattr
)

// Require skips (or, under CI, fails) the test unless every need is met.
func Require(t testing.TB, needs ...Need) {
	t.Helper()
	for _, n := range needs {
		if reason := missing(n); reason != "" {
			if os.Getenv(EnvRequire) == "1" {
				t.Fatalf("oracle required (%s=1) but %s", EnvRequire, reason)
			}
			t.Skipf("skipping: %s (install with: apt-get install -y xfsprogs xfsdump attr; run as root)", reason)
		}
	}
}

func missing(n Need) string {
	switch n {
	case Root:
		if os.Geteuid() != 0 {
			return "not running as root"
		}
	case Loop:
		if os.Geteuid() != 0 {
			return "loop mounts need root"
		}
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			return "no /dev/loop-control"
		}
		if b, err := os.ReadFile("/proc/filesystems"); err == nil && !bytes.Contains(b, []byte("xfs")) {
			// The module may load on first mount; try modprobe quietly.
			exec.Command("modprobe", "xfs").Run()
			if b, _ = os.ReadFile("/proc/filesystems"); !bytes.Contains(b, []byte("xfs")) {
				return "kernel has no XFS support"
			}
		}
	case Tools:
		for _, c := range []string{"mkfs.xfs", "xfs_db", "xfs_repair"} {
			if _, err := exec.LookPath(c); err != nil {
				return c + " not installed"
			}
		}
	case Dump:
		for _, c := range []string{"xfsdump", "xfsrestore"} {
			if _, err := exec.LookPath(c); err != nil {
				return c + " not installed"
			}
		}
	case Attr:
		for _, c := range []string{"setfattr", "getfattr"} {
			if _, err := exec.LookPath(c); err != nil {
				return c + " not installed"
			}
		}
	}
	return ""
}

// Run runs a command and returns its combined output, failing the test on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RunStatus runs a command and returns its output and exit code (-1 if it
// could not start).
func RunStatus(name string, args ...string) (string, int) {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

// Mkfs creates a sparse image of the given size (mkfs.xfs suffixes) in a
// temporary directory and formats it with mkfs.xfs and opts.
func Mkfs(t testing.TB, size string, opts ...string) string {
	t.Helper()
	Require(t, Tools)
	img := filepath.Join(t.TempDir(), "fs.img")
	Run(t, "truncate", "-s", size, img)
	args := append([]string{"-q", "-f"}, opts...)
	Run(t, "mkfs.xfs", append(args, img)...)
	return img
}

// Mount loop-mounts img (read-write unless ro) on a fresh directory and
// unmounts it when the test ends, even on failure. It verifies with
// `mountpoint -q` that the mount really happened before returning, so that a
// failed mount never sends a test's writes to the host disk.
func Mount(t testing.TB, img string, ro bool) string {
	t.Helper()
	Require(t, Root, Loop)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "loop"
	if ro {
		opts += ",ro"
	}
	Run(t, "mount", "-t", "xfs", "-o", opts, img, mnt)
	t.Cleanup(func() { Unmount(t, mnt) })
	if _, code := RunStatus("mountpoint", "-q", mnt); code != 0 {
		t.Fatalf("%s is not a mount point after mounting %s", mnt, img)
	}
	return mnt
}

// Unmount unmounts mnt if it is mounted (idempotent). It consults the
// mount table as well as mountpoint(1), which fails on a shut-down XFS
// mount that still has to be unmounted.
func Unmount(t testing.TB, mnt string) {
	if _, code := RunStatus("mountpoint", "-q", mnt); code != 0 && !inMountTable(mnt) {
		return
	}
	if out, code := RunStatus("umount", mnt); code != 0 {
		// A lazy unmount frees the loop device once users go away.
		RunStatus("umount", "-l", mnt)
		t.Logf("umount %s: %s", mnt, out)
	}
}

// inMountTable reports whether mnt is a mount point in /proc/self/mounts.
func inMountTable(mnt string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == mnt {
			return true
		}
	}
	return false
}

// MustBeMounted fails the test unless mnt is a mount point. Call it before
// writing into a mount directory.
func MustBeMounted(t testing.TB, mnt string) {
	t.Helper()
	if _, code := RunStatus("mountpoint", "-q", mnt); code != 0 {
		t.Fatalf("refusing to write: %s is not a mount point", mnt)
	}
}

// Repair runs `xfs_repair -n` on img and returns its output and exit code.
func Repair(t testing.TB, img string) (string, int) {
	t.Helper()
	Require(t, Tools)
	return RunStatus("xfs_repair", "-n", img)
}

// RequireRepairClean fails the test unless `xfs_repair -n` exits 0.
func RequireRepairClean(t testing.TB, img string) {
	t.Helper()
	if out, code := Repair(t, img); code != 0 {
		t.Fatalf("xfs_repair -n %s exited %d:\n%s", img, code, out)
	}
}

// DB runs xfs_db with the given commands (each passed with -c) and returns
// its output. Extra flags such as "-x" go in flags.
func DB(t testing.TB, img string, flags []string, cmds ...string) string {
	t.Helper()
	Require(t, Tools)
	args := append([]string{}, flags...)
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return Run(t, "xfs_db", append(args, img)...)
}

// Field extracts "name = value" from xfs_db print output.
func Field(out, name string) (string, error) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, " = ")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("field %q not in xfs_db output", name)
}

// FileHash returns the SHA-256 and the size of the file at path, for tests
// that check a file was or was not changed.
func FileHash(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x/%d", h.Sum(nil), n)
}
