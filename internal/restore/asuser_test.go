package restore

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
)

// userEnv carries the options of a restore run in a child process that
// runs as another user (uid/gid 65534): root needs no permissions, so
// only such a run shows what a user's restore meets.
const userEnv = "XFSKIT_RESTORE_TEST_USER"

// TestUserChild is the child process of asUser (it does nothing in a
// normal test run). It prints the problems and fails unless all is well.
func TestUserChild(t *testing.T) {
	spec := os.Getenv(userEnv)
	if spec == "" {
		t.Skip("only run as the child of a test running restore as another user")
	}
	var o Options
	if err := json.Unmarshal([]byte(spec), &o); err != nil {
		t.Fatal(err)
	}
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	requireOK(t, res)
}

const otherUID = 65534

// asUser runs the restore of o as uid/gid otherUID in a copy of the test
// binary that user can reach, and returns the child's error and output.
func asUser(t *testing.T, o Options) (string, error) {
	t.Helper()
	bin := filepath.Join(reachable(t), "restore.test")
	if _, err := os.Stat(bin); err != nil {
		src, err := os.Open(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(o)
	cmd := exec.Command(bin, "-test.run=^TestUserChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), userEnv+"="+string(b))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// reachable returns a temporary directory the other user can reach and
// write (the test binary's and TempDir's parents are private).
func reachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chownTree gives every path under root to the other user, so that the
// source and what that user restores compare equal.
func chownTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, otherUID, otherUID)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCumulativeReadOnlyDirsAsUser: a user's cumulative restore of
// read-only directories (the root too) applies later sessions' renames,
// deletions, moves between directories and new entries in them. Before,
// only creating worked (phase 2 made directories writable, phase 1 did
// not): renames and removals failed with "permission denied", a removed
// read-only directory stayed silently, and a read-only root stopped the
// session before anything was done.
func TestCumulativeReadOnlyDirsAsUser(t *testing.T) {
	oracle.Require(t, oracle.Root)
	c := newChain(t)
	b := c.b
	b.mkdir("ro/sub", 0o755)
	b.mkdir("gone/sub", 0o755)
	b.mkdir("mover", 0o755)
	b.mkdir("target", 0o755)
	b.write("ro/a", []byte("a"))
	b.write("ro/sub/b", []byte("b"))
	b.write("gone/sub/f", []byte("f"))
	b.write("mover/f", []byte("m"))
	b.write("top", []byte("top"))
	readOnly := func() {
		for _, d := range []string{"ro/sub", "ro", "gone/sub", "gone", "mover", "target/mover", "."} {
			if _, err := os.Stat(b.p(d)); err == nil {
				b.must(os.Chmod(b.p(d), 0o555))
			}
		}
	}
	writable := func() {
		for _, d := range []string{".", "ro", "ro/sub", "gone", "gone/sub", "mover", "target/mover"} {
			if _, err := os.Stat(b.p(d)); err == nil {
				b.must(os.Chmod(b.p(d), 0o755))
			}
		}
	}
	readOnly()
	chownTree(t, b.root)
	c.dump("l0", 0, "", 1)

	writable()
	b.write("ro/new", []byte("new"))
	c.mvKeep("ro/a", "ro/a2")
	c.rm("ro/sub/b")
	b.write("ro/sub/c", []byte("c"))
	c.rm("gone")
	c.mv("mover", "target/mover")
	c.rm("top")
	b.write("newtop", []byte("newtop"))
	readOnly()
	chownTree(t, b.root)
	c.dump("l1", 1, "l0", 1)

	dest := filepath.Join(reachable(t), "dest")
	for _, name := range []string{"l0", "l1"} {
		for _, f := range c.sessions[name].files {
			for d := filepath.Dir(f); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
				os.Chmod(d, 0o755)
			}
			os.Chmod(f, 0o644)
		}
		if out, err := asUser(t, Options{Sources: c.sessions[name].files, Dest: dest, Cumulative: true}); err != nil {
			t.Fatalf("restore -r %s as uid %d: %v\n%s", name, otherUID, err, out)
		}
	}
	sameTree(t, b.root, dest)
}

// TestSetIDBitsFollowOwners: a set-user-ID (set-group-ID) file that does
// not get its dumped owner (group) loses that bit — restored by a user, or
// by root with --no-owner — instead of becoming a program that runs as
// whoever restored it. Files that get their owner keep their bits, and so
// do directories (setgid there only passes the group on).
func TestSetIDBitsFollowOwners(t *testing.T) {
	oracle.Require(t, oracle.Root)
	src := filepath.Join(reachable(t), "src")
	b := &builder{t: t, root: src}
	b.mkdir("", 0o755)
	b.mkdir("sgid-dir", 0o755)
	for _, f := range []string{"suid-other", "suid-mine", "sgid-other", "both-mine"} {
		b.write(f, []byte("#!/bin/sh\n"))
	}
	chownTree(t, src)
	for _, c := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"suid-other", 0o755 | os.ModeSetuid, 1234, otherUID},
		{"suid-mine", 0o755 | os.ModeSetuid, otherUID, otherUID},
		{"sgid-other", 0o755 | os.ModeSetgid, otherUID, 1234},
		{"both-mine", 0o755 | os.ModeSetuid | os.ModeSetgid, otherUID, otherUID},
		{"sgid-dir", 0o755 | os.ModeDir | os.ModeSetgid, 1234, 1234},
	} {
		b.must(os.Lchown(b.p(c.path), c.uid, c.gid))
		b.must(os.Chmod(b.p(c.path), c.mode))
	}
	dumped := dumpDir(t, src, reachable(t), dumpOpts{})
	for _, f := range dumped.files {
		os.Chmod(filepath.Dir(f), 0o755)
		os.Chmod(f, 0o644)
	}
	modes := func(dest string) map[string]os.FileMode {
		got := map[string]os.FileMode{}
		for _, p := range []string{"suid-other", "suid-mine", "sgid-other", "both-mine", "sgid-dir"} {
			fi, err := os.Lstat(filepath.Join(dest, p))
			if err != nil {
				t.Fatal(err)
			}
			got[p] = fi.Mode() & (os.ModeSetuid | os.ModeSetgid)
		}
		return got
	}
	check := func(who string, got, want map[string]os.FileMode) {
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s: %s: set-ID bits %v, want %v", who, p, got[p], w)
			}
		}
	}
	asUserDest := filepath.Join(reachable(t), "dest")
	if out, err := asUser(t, Options{Sources: dumped.files, Dest: asUserDest}); err != nil {
		t.Fatalf("restore as uid %d: %v\n%s", otherUID, err, out)
	}
	check("as a user", modes(asUserDest), map[string]os.FileMode{
		"suid-other": 0, "suid-mine": os.ModeSetuid, "sgid-other": 0,
		"both-mine": os.ModeSetuid | os.ModeSetgid, "sgid-dir": os.ModeSetgid,
	})
	noOwner := filepath.Join(t.TempDir(), "dest")
	requireOK(t, runRestore(t, Options{Sources: dumped.files, Dest: noOwner, Owner: OwnerNone}))
	check("root, --no-owner", modes(noOwner), map[string]os.FileMode{
		"suid-other": 0, "suid-mine": 0, "sgid-other": 0, "both-mine": 0, "sgid-dir": os.ModeSetgid,
	})
	asRoot := filepath.Join(t.TempDir(), "dest")
	requireOK(t, runRestore(t, Options{Sources: dumped.files, Dest: asRoot}))
	sameTree(t, src, asRoot)
}
