package restore

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/dump"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// The kernel lists XFS's raw ACL attributes (trusted.SGI_ACL_*) to root;
// the stream carries ACLs once, as system.posix_acl_*, and a restore into
// XFS turns them back into the same raw attributes.
var ignoreRawACL = []string{"trusted.SGI_ACL_"}

func dumpImage(t *testing.T, o dump.Options) []string {
	t.Helper()
	if o.Dests == nil {
		o.Dests = []string{filepath.Join(t.TempDir(), "s0")}
	}
	r, err := dump.Dump(context.Background(), o)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("dump problems: %v", r.Problems)
	}
	var media []string
	for _, s := range r.Streams {
		media = append(media, s.Media...)
	}
	return media
}

func kernelView(t *testing.T, img string) *treecmp.Tree {
	t.Helper()
	mnt := oracle.MountCorpus(t, img, true)
	tr, err := treecmp.FromDir(mnt, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oracle.Unmount(t, mnt)
	return tr
}

// scratchXFS is an empty XFS filesystem mounted read-write.
func scratchXFS(t *testing.T) (img, mnt string) {
	img = oracle.Mkfs(t, "2g")
	mnt = oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	return img, mnt
}

func diffTrees(t *testing.T, want, got *treecmp.Tree, opts treecmp.DiffOptions) {
	t.Helper()
	opts.Max = 40
	opts.IgnoreXattrPrefixes = append(opts.IgnoreXattrPrefixes, ignoreRawACL...)
	if diff := treecmp.Diff(want, got, opts); len(diff) > 0 {
		t.Fatalf("restored tree differs from the kernel's view of the image:\n%s", strings.Join(diff, "\n"))
	}
}

// TestEndToEndKernelCorpus: kernel-made images with every file type and
// on-disk form, dumped by xfskit dump, restored, and compared with the
// kernel's view of the image: type, mode, owner, size, content, data
// ranges (holes), atime and mtime with nanoseconds (symlinks too), symlink
// targets, device numbers, xattrs of every namespace, ACLs, link counts
// and hard-link groups.
func TestEndToEndKernelCorpus(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	for _, g := range []struct {
		name    string
		opts    oracle.CorpusOptions
		streams int
		media   int64
		comp    string
	}{
		{"default", oracle.CorpusOptions{}, 1, 0, ""},
		{"1k-blocks-4streams-media-none", oracle.CorpusOptions{BlockSize: 1024}, 4, 3 << 20, "none"},
	} {
		t.Run(g.name, func(t *testing.T) {
			img, m := oracle.CorpusWithManifest(t, g.opts)
			want := kernelView(t, img)
			var dests []string
			for i := 0; i < g.streams; i++ {
				dests = append(dests, filepath.Join(t.TempDir(), "s"))
			}
			media := dumpImage(t, dump.Options{Image: img, Dests: dests, MediaSize: g.media, Compression: g.comp,
				Inventory: filepath.Join(t.TempDir(), "inv.db")})
			if g.media > 0 && len(media) <= g.streams {
				t.Fatalf("media splitting made %d media files", len(media))
			}
			sort.Sort(sort.Reverse(sort.StringSlice(media)))

			// Into XFS (same block size, so data ranges compare), checked
			// through a read-only mount so that reading changes no atime.
			simg := oracle.Mkfs(t, "2g", "-b", "size="+blockSize(g.opts))
			mnt := oracle.Mount(t, simg, false)
			oracle.MustBeMounted(t, mnt)
			dest := filepath.Join(mnt, "dest")
			requireOK(t, runRestore(t, Options{Sources: media, Dest: dest}))
			oracle.Unmount(t, mnt)
			ro := oracle.Mount(t, simg, true)
			got, err := treecmp.FromDir(filepath.Join(ro, "dest"), treecmp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			diffTrees(t, want, got, treecmp.DiffOptions{Atime: true, Sparse: true, Nlink: true})
			oracle.Unmount(t, ro)

			if g.name != "default" {
				return
			}
			// Into ext4 (the test's temporary directory): everything but
			// the attribute values ext4 cannot hold (over a block), which
			// must be reported, never silently dropped.
			if fs := fsType(t, os.TempDir()); fs != "ext4" {
				t.Skipf("temporary directory is on %s, not ext4", fs)
			}
			edest := filepath.Join(t.TempDir(), "dest")
			res := runRestore(t, Options{Sources: media, Dest: edest})
			rejected := map[string]bool{}
			for _, p := range res.Problems {
				if !strings.Contains(p.Reason, "attribute") {
					t.Errorf("unexpected problem: %s", p)
				}
				rejected[p.Path] = true
			}
			remote := m.Paths(oracle.FormAttrRemote)
			for _, p := range remote {
				if !rejected[p] {
					t.Errorf("%s: its remote attribute value was not reported as rejected by ext4", p)
				}
			}
			if len(res.Damage) > 0 || len(remote) == 0 {
				t.Fatalf("damage %v, remote-attribute items %v", res.Damage, remote)
			}
			egot, err := treecmp.FromDir(edest, treecmp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			diffTrees(t, want, egot, treecmp.DiffOptions{Sparse: true, Nlink: true, Skip: func(p string) bool { return rejected[p] }})
		})
	}
}

func blockSize(o oracle.CorpusOptions) string {
	if o.BlockSize == 0 {
		return "4096"
	}
	return strconv.Itoa(o.BlockSize)
}

func fsType(t *testing.T, dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	}
	return "other"
}

// TestEndToEndCumulative changes a kernel-made image through the kernel
// (create, delete, rename files and directories, truncate, chmod, xattrs,
// hard links), dumps levels 0, 1, 2 and 1 again with xfskit dump, and
// restores them cumulatively: after each the restored tree equals the
// kernel's view of the image.
func TestEndToEndCumulative(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.CorpusCopy(t, oracle.CorpusOptions{})
	inv := filepath.Join(t.TempDir(), "inv.db")
	_, mnt := scratchXFS(t)
	dest := filepath.Join(mnt, "dest")
	state := filepath.Join(t.TempDir(), "state") // outside: the root's link count stays comparable
	apply := func(level int, streams int) {
		t.Helper()
		var dests []string
		for i := 0; i < streams; i++ {
			dests = append(dests, filepath.Join(t.TempDir(), "s"))
		}
		media := dumpImage(t, dump.Options{Image: img, Level: level, Dests: dests, Inventory: inv})
		oracle.MustBeMounted(t, mnt)
		requireOK(t, runRestore(t, Options{Sources: media, Dest: dest, Cumulative: true, StateDir: state}))
		got, err := treecmp.FromDir(dest, treecmp.Options{Skip: skipHousekeeping})
		if err != nil {
			t.Fatal(err)
		}
		diffTrees(t, kernelView(t, img), got, treecmp.DiffOptions{Sparse: true, Nlink: true})
	}
	change := func(fn func(p func(string) string, must func(error))) {
		t.Helper()
		m := oracle.MountCorpus(t, img, false)
		oracle.MustBeMounted(t, m)
		fn(func(rel string) string { return filepath.Join(m, rel) }, func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		})
		oracle.Unmount(t, m)
	}
	apply(0, 2)
	change(func(p func(string) string, must func(error)) {
		must(os.MkdirAll(p("inc/sub"), 0o750))
		must(os.WriteFile(p("inc/new"), []byte("created after level 0\n"), 0o640))
		must(os.Remove(p("forms/files/tiny")))
		must(os.Rename(p("forms/files/one-block"), p("inc/sub/renamed")))
		must(os.Rename(p("forms/dirs/short"), p("inc/moved-dir")))
		must(os.Truncate(p("forms/files/block-plus-one"), 100))
		must(os.Chmod(p("forms/modes/no-bits"), 0o604))
		must(unix.Lsetxattr(p("forms/files/empty"), "user.added", []byte("v"), 0))
		must(unix.Lremovexattr(p("forms/xattrs/short"), "user.a"))
		must(os.Link(p("forms/files/frag-a"), p("inc/frag-a-link")))
	})
	apply(1, 1)
	change(func(p func(string) string, must func(error)) {
		must(os.RemoveAll(p("inc/sub")))
		must(os.Rename(p("forms/dirs"), p("inc/dirs-moved")))
		must(os.WriteFile(p("forms/files/hole-middle"), []byte("rewritten at level 2"), 0o600))
		must(os.Remove(p("forms/files/frag-a")))
	})
	apply(2, 2)
	change(func(p func(string) string, must func(error)) {
		must(os.Rename(p("inc"), p("inc-renamed")))
		must(os.Mkdir(p("forms/files/tiny"), 0o700)) // a directory where a file was
		must(os.WriteFile(p("inc-renamed/new"), []byte("changed again"), 0o640))
	})
	apply(1, 1)
}
