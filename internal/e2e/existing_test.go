package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/treecmp"
)

// restoreOverExisting restores a dump into a directory that already holds
// files, some in the way of what the dump holds, as docs/restore.md
// describes: restore never writes into an existing inode (an entry in the
// way is replaced), never follows a planted symlink, keeps no ACL a new
// file would inherit from a default ACL already in DEST, and leaves
// unrelated files alone.
func restoreOverExisting(t *testing.T, tl tools, src string, want *treecmp.Tree) {
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	tl.run(t, "mkfs", "-q", "-p", src, img)
	s := filepath.Join(dir, "level0")
	tl.run(t, "dump", "-q", "--inventory", filepath.Join(dir, "inv.db"), "-f", s, img)

	scratch := scratchXFS(t, 4096)
	dest := filepath.Join(scratch, "dest")
	outside := filepath.Join(scratch, "outside")
	p := func(rel string) string { return filepath.Join(dest, filepath.FromSlash(rel)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{outside, p("files"), p("links"), p("names"), p("dirs")} {
		must(os.MkdirAll(d, 0o755))
	}
	must(os.WriteFile(filepath.Join(outside, "target"), []byte("outside: must not change"), 0o644))
	must(os.WriteFile(filepath.Join(outside, "victim"), []byte("outside: must not change either"), 0o644))
	must(os.WriteFile(p("unrelated.txt"), []byte("not in the dump"), 0o600))
	must(os.WriteFile(p("files/small"), []byte("an older version"), 0o666))
	must(os.Symlink("../../outside/target", p("files/blocks")))                        // a planted symlink
	must(os.Link(filepath.Join(outside, "victim"), p("files/big")))                    // a hard link out of DEST
	must(os.WriteFile(p("links/short"), []byte("a file where a symlink goes"), 0o644)) // another type
	must(os.WriteFile(p("names/extra"), []byte("an extra file in a dumped directory"), 0o644))
	// A default ACL on an existing directory: new entries would inherit it.
	acl := treecmp.ACLXattr([]treecmp.ACLEntry{{Tag: 1, Perm: 7}, {Tag: 2, Perm: 7, ID: 777}, {Tag: 4, Perm: 5}, {Tag: 0x10, Perm: 7}, {Tag: 0x20, Perm: 5}})
	must(unix.Setxattr(p("dirs"), "system.posix_acl_default", acl, 0))
	// A file where the dump has a directory is replaced; a directory
	// where the dump has a file is not removed: it is reported, and the
	// restore exits 1.
	must(os.WriteFile(p("dirs/d3"), []byte("a file where a directory goes"), 0o644))
	must(os.MkdirAll(p("files/empty/keep"), 0o755))

	_, stderr := tl.runCode(t, 1, "restore", "-q", "-f", s, dest)
	if !strings.Contains(stderr, "files/empty") || !strings.Contains(stderr, "directory is in the way") || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Errorf("restore over a directory in the way reported:\n%s", stderr)
	}
	if _, err := os.Stat(p("files/empty/keep")); err != nil {
		t.Errorf("the directory in the way lost its contents: %v", err)
	}

	for name, content := range map[string]string{"target": "outside: must not change", "victim": "outside: must not change either"} {
		b, err := os.ReadFile(filepath.Join(outside, name))
		if err != nil || string(b) != content {
			t.Errorf("outside/%s: %q, %v: restore wrote outside DEST", name, b, err)
		}
	}
	for rel, content := range map[string]string{"unrelated.txt": "not in the dump", "names/extra": "an extra file in a dumped directory"} {
		if b, err := os.ReadFile(p(rel)); err != nil || string(b) != content {
			t.Errorf("%s: %q, %v: an unrelated file in DEST was changed", rel, b, err)
		}
	}
	extra := map[string]bool{"unrelated.txt": true, "names/extra": true, "files/empty": true, "files/empty/keep": true}
	sameTree(t, "restore over existing files vs the source", want, snapshot(t, dest), treecmp.DiffOptions{
		Atime: true, Sparse: true, Nlink: true,
		// DEST and names hold one more entry each (not a directory, so
		// only the link count of big and its names tells the outside link).
		Skip: func(p string) bool { return extra[p] || p == "files" }, // files: one more subdirectory

	})
}
