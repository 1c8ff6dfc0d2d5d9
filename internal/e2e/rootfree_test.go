package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/clitest"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// user is the unprivileged account the root-free workflow runs as.
const user = 65534

// asUser runs a tool as uid/gid user with env (HOME and nothing from the
// XDG variables unless given) and fails the test unless it exits with want.
func (tl tools) asUser(t *testing.T, env []string, want int, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(tl[name], args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("as uid %d: %s %s: exit %d in %v", user, name, strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	if code != want {
		t.Fatalf("as uid %d: %s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", user, name, strings.Join(args, " "), code, want, clip(out.String()), clip(errb.String()))
	}
	return out.String(), errb.String()
}

// userHome makes a directory the user owns and can reach, and lets the
// user reach the built tools.
func userHome(t *testing.T, tl tools) string {
	t.Helper()
	reach := func(p string) {
		for d := filepath.Dir(p); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, bin := range tl {
		reach(bin)
	}
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	reach(home)
	if err := os.Chown(home, user, user); err != nil {
		t.Fatal(err)
	}
	return home
}

// userTree is a tree as a user has it: read-only directories, a
// set-user-ID program of the user's own, hard links across directories,
// a fifo, a symlink, user xattrs and names that are not UTF-8 or hold a
// newline; everything owned by the user.
func userTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	for _, d := range []string{"ro/sub", "gone/sub", "mover", "target", "names"} {
		must(os.MkdirAll(p(d), 0o755))
	}
	for rel, data := range map[string]string{
		"ro/a": "a", "ro/sub/b": "b", "gone/sub/f": "f", "mover/f": "m", "top": "top",
		"names/\xff\xfe": "not UTF-8", "names/new\nline": "newline", "target/keep": "keep",
	} {
		must(os.WriteFile(p(rel), []byte(data), 0o644))
	}
	must(os.WriteFile(p("prog"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Link(p("ro/a"), p("target/link-to-a")))
	must(unix.Mkfifo(p("fifo"), 0o640))
	must(os.Symlink("ro/a", p("sym")))
	must(unix.Setxattr(p("top"), "user.note", []byte("kept"), 0))
	must(filepath.Walk(root, func(q string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(q, user, user)
	}))
	must(os.Chmod(p("prog"), 0o755|os.ModeSetuid))
	for _, d := range []string{"ro/sub", "ro", "gone/sub", "gone", "mover"} {
		must(os.Chmod(p(d), 0o555))
	}
}

// TestRootFree is the promise of the README: a user builds an image of
// their own tree, checks it, sizes it, backs it up and restores it
// (cumulatively, across changes that rename, delete and move read-only
// directories' contents) without root; the inventory lives under $HOME.
// Root only mounts the image to change it and to see what the kernel sees.
func TestRootFree(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	tl := tools{}
	for _, name := range []string{"mkfs", "check", "dump", "restore", "estimate"} {
		tl[name] = clitest.Build(t, "xfskit/cmd/"+name, name)
	}
	home := userHome(t, tl)
	env := []string{"HOME=" + home}
	src, img, dest := filepath.Join(home, "src"), filepath.Join(home, "img"), filepath.Join(home, "dest")
	userTree(t, src)
	want := snapshot(t, src)
	noAtime := treecmp.DiffOptions{Nlink: true}
	// DEST's root also holds the state directory: link counts of "." differ.
	restored := treecmp.DiffOptions{Nlink: true, Skip: func(p string) bool { return p == "." }}

	size, _ := tl.asUser(t, env, 0, "estimate", "--bytes", src)
	tl.asUser(t, env, 0, "mkfs", "-q", "-p", src, "-d", "size="+strings.TrimSpace(size), img)
	tl.asUser(t, env, 0, "check", "--no-progress", img)
	oracle.RequireRepairClean(t, img)
	sameTree(t, "kernel view of the user's image vs the source", want, kernelView(t, img), noAtime)

	tl.asUser(t, env, 0, "dump", "-q", "--no-progress", "-f", filepath.Join(home, "l0"), img)
	inv := filepath.Join(home, ".local", "share", "xfskit", "inventory.db")
	if _, err := os.Stat(inv); err != nil {
		t.Fatalf("default inventory of a user: %v", err)
	}
	tl.asUser(t, env, 0, "restore", "-q", "--no-progress", "-r", "-f", filepath.Join(home, "l0"), dest)
	sameTree(t, "user's cumulative restore of level 0 vs the source", want, snapshot(t, dest), restored)

	// The user's changes, made through the kernel (root mounts).
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	m := func(rel string) string { return filepath.Join(mnt, filepath.FromSlash(rel)) }
	for _, err := range []error{
		os.Rename(m("ro/a"), m("ro/a2")),
		os.Remove(m("ro/sub/b")),
		os.WriteFile(m("ro/sub/c"), []byte("c"), 0o644),
		os.RemoveAll(m("gone")),
		os.Rename(m("mover"), m("target/mover")),
		os.Remove(m("top")),
		os.WriteFile(m("newtop"), []byte("new"), 0o644),
		os.Lchown(m("ro/sub/c"), user, user),
		os.Lchown(m("newtop"), user, user),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	oracle.Unmount(t, mnt)
	tl.asUser(t, env, 0, "dump", "-q", "--no-progress", "-l", "1", "-f", filepath.Join(home, "l1"), img)
	tl.asUser(t, env, 0, "restore", "-q", "--no-progress", "-r", "-f", filepath.Join(home, "l1"), dest)
	sameTree(t, "user's cumulative restore of levels 0 and 1 vs the kernel", kernelView(t, img), snapshot(t, dest), restored)
	var st unix.Stat_t
	if err := unix.Stat(dest, &st); err != nil || st.Mode&0o7777 != 0o755 || st.Uid != user {
		t.Errorf("DEST's own mode and owner: %o %d, %v", st.Mode, st.Uid, err)
	}

	// No writable home and no --inventory: a clear refusal naming the path.
	_, stderr := tl.asUser(t, []string{"HOME=/nonexistent"}, 1, "dump", "-q", "--no-progress", "-f", filepath.Join(home, "x"), img)
	if !strings.Contains(stderr, "/nonexistent/.local/share/xfskit/inventory.db") {
		t.Errorf("dump without a usable inventory path: %q", stderr)
	}
}
