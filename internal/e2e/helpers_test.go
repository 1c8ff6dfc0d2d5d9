package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/clitest"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// tools are the built binaries, by name.
type tools map[string]string

// buildTools compiles every tool once for all workflows of a test.
func buildTools(t *testing.T) tools {
	t.Helper()
	tl := tools{}
	for _, name := range []string{"mkfs", "check", "growfs", "dump", "restore", "estimate"} {
		tl[name] = clitest.Build(t, "xfskit/cmd/"+name, name)
	}
	return tl
}

// run runs a tool and fails the test unless it exits with want.
func (tl tools) runCode(t *testing.T, want int, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	start := time.Now()
	stdout, stderr, code := clitest.Run(tl[name], args...)
	t.Logf("%s %s: exit %d in %v", name, strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	if code != want {
		t.Fatalf("%s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), code, want, clip(stdout), clip(stderr))
	}
	return stdout, stderr
}

// run runs a tool that must succeed.
func (tl tools) run(t *testing.T, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	return tl.runCode(t, 0, name, args...)
}

// runJSON runs a tool that must succeed and decodes its stdout into v.
func (tl tools) runJSON(t *testing.T, v any, name string, args ...string) {
	t.Helper()
	out, _ := tl.run(t, name, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s %s: output is not JSON: %v\n%s", name, strings.Join(args, " "), err, clip(out))
	}
}

func clip(s string) string {
	const max = 6000
	if len(s) > max {
		return s[:max] + fmt.Sprintf("\n...(%d bytes)", len(s))
	}
	return s
}

// checkClean requires both checkers to find img clean: our check (exit 0)
// and xfs_repair -n.
func (tl tools) checkClean(t *testing.T, img string) {
	t.Helper()
	tl.run(t, "check", "--no-progress", img)
	oracle.RequireRepairClean(t, img)
}

// growResult is what growfs --json prints.
type growResult struct {
	BlockSize   uint32   `json:"block_size"`
	AGBlocks    uint32   `json:"ag_blocks"`
	OldBlocks   uint64   `json:"old_blocks"`
	NewBlocks   uint64   `json:"new_blocks"`
	OldAGCount  uint32   `json:"old_agcount"`
	NewAGCount  uint32   `json:"new_agcount"`
	LastAGAdded uint32   `json:"last_ag_blocks_added"`
	FreeAdded   uint64   `json:"free_blocks_added"`
	FreeBlocks  uint64   `json:"free_blocks"`
	ImageSize   int64    `json:"image_size"`
	Notes       []string `json:"notes"`
}

func (tl tools) grow(t *testing.T, args ...string) growResult {
	t.Helper()
	var r growResult
	tl.runJSON(t, &r, "growfs", append([]string{"--json"}, args...)...)
	return r
}

// sbFields reads superblock fields with xfs_db.
func sbFields(t *testing.T, img string, names ...string) map[string]uint64 {
	t.Helper()
	out := oracle.DB(t, img, []string{"-r"}, "sb 0", "print "+strings.Join(names, " "))
	m := map[string]uint64{}
	for _, n := range names {
		v, err := oracle.Field(out, n)
		if err != nil {
			t.Fatal(err)
		}
		if m[n], err = strconv.ParseUint(v, 0, 64); err != nil {
			t.Fatalf("sb %s = %q: %v", n, v, err)
		}
	}
	return m
}

// agFreeBlocks reads every AG's agf_freeblks with xfs_db.
func agFreeBlocks(t *testing.T, img string, agcount int) []uint64 {
	t.Helper()
	var cmds []string
	for i := 0; i < agcount; i++ {
		cmds = append(cmds, fmt.Sprintf("agf %d", i), "print freeblks")
	}
	out := oracle.DB(t, img, []string{"-r"}, cmds...)
	var free []uint64
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "freeblks = "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("agf freeblks %q: %v", v, err)
			}
			free = append(free, n)
		}
	}
	if len(free) != agcount {
		t.Fatalf("xfs_db printed %d freeblks for %d AGs:\n%s", len(free), agcount, out)
	}
	return free
}

// snapshot takes a treecmp snapshot of dir, leaving out restore's
// housekeeping at its top.
func snapshot(t *testing.T, dir string) *treecmp.Tree {
	t.Helper()
	tr, err := treecmp.FromDir(dir, treecmp.Options{Skip: func(p string, isDir bool) bool {
		return p == ".xfskit-restore" || p == ".xfskit-orphanage"
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// kernelView is the tree of img as the kernel shows it, through a
// read-only mount (so that taking it changes no atime).
func kernelView(t *testing.T, img string) *treecmp.Tree {
	t.Helper()
	mnt := oracle.Mount(t, img, true)
	tr := snapshot(t, mnt)
	oracle.Unmount(t, mnt)
	return tr
}

// sameTree fails the test when got differs from want. The kernel lists
// XFS's stored form of ACLs (trusted.SGI_ACL_*) to root besides the
// system.posix_acl_* view; only the latter is compared.
func sameTree(t *testing.T, what string, want, got *treecmp.Tree, opts treecmp.DiffOptions) {
	t.Helper()
	opts.Max = 40
	opts.IgnoreXattrPrefixes = append(opts.IgnoreXattrPrefixes, "trusted.SGI_ACL_")
	if d := treecmp.Diff(want, got, opts); len(d) > 0 {
		t.Fatalf("%s: trees differ (a = want, b = got):\n%s", what, strings.Join(d, "\n"))
	}
}

// subTree keeps the entries of tr at or below prefix, with paths relative
// to it.
func subTree(tr *treecmp.Tree, prefix string) *treecmp.Tree {
	var es []treecmp.Entry
	for _, e := range tr.Entries {
		switch {
		case e.Path == prefix:
			e.Path = "."
		case strings.HasPrefix(e.Path, prefix+"/"):
			e.Path = strings.TrimPrefix(e.Path, prefix+"/")
		default:
			continue
		}
		es = append(es, e)
	}
	return treecmp.NewTree(es)
}

// scratchXFS makes and mounts an empty XFS filesystem (mkfs.xfs, the given
// block size) to restore into; it is unmounted when the test ends.
func scratchXFS(t *testing.T, blockSize int) string {
	t.Helper()
	img := oracle.Mkfs(t, "2g", "-b", fmt.Sprintf("size=%d", blockSize))
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	return mnt
}

// inoOf is the inode number of a stat result.
func inoOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// syncFS writes out everything of the filesystem mounted at mnt.
func syncFS(t *testing.T, mnt string) {
	t.Helper()
	f, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
}

// agOf returns the AG of an inode number.
func agOf(ino uint64, sb map[string]uint64) uint64 {
	return ino >> (sb["agblklog"] + sb["inopblog"])
}

// fillWithFallocate preallocates files in dir until the filesystem is
// full, halving the request on ENOSPC, and returns the files' inode
// numbers. Preallocation takes the space without writing it.
func fillWithFallocate(t *testing.T, dir string) []uint64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var inos []uint64
	chunk := int64(64 << 20)
	for i := 0; chunk >= 1<<20; i++ {
		if i > 100000 {
			t.Fatal("filesystem never filled up")
		}
		// A directory per file: the kernel spreads new directories over
		// the AGs, and a file's data goes near its directory's inode.
		sub := filepath.Join(dir, fmt.Sprintf("fill%04d", i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(sub, "f"))
		if errors.Is(err, unix.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Fallocate(int(f.Fd()), 0, 0, chunk)
		var st unix.Stat_t
		unix.Fstat(int(f.Fd()), &st)
		f.Close()
		inos = append(inos, st.Ino)
		if errors.Is(err, unix.ENOSPC) {
			chunk /= 2
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return inos
}

// pattern is deterministic, non-repeating-looking file content.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
