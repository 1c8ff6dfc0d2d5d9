package imagetree_test

import (
	"fmt"
	"strings"
	"testing"

	"xfskit/internal/imagetree"
	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
)

// The engine reads every file, directory, symlink, device node and xattr of
// kernel-made images exactly as the kernel shows them through a mount:
// type, mode, owner, link count, size, content, mtime and atime with ns,
// symlink target, rdev, xattrs, hard-link groups and holes.
func TestEngineReadsWhatKernelShows(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	geometries := []oracle.CorpusOptions{
		{},
		{BlockSize: 1024},
		{BlockSize: 2048, InodeSize: 1024},
		{BlockSize: 65536, DirBlockSize: 65536, InodeSize: 2048},
		{BlockSize: 65536, Mkfs: []string{"-m", "rmapbt=1"}},
		{InodeSize: 1024, DirBlockSize: 16384},
		{Mkfs: []string{"-m", "rmapbt=1"}},
		{Mkfs: []string{"-m", "reflink=0,finobt=0", "-i", "sparse=0"}},
		{Mkfs: []string{"-m", "inobtcount=0,bigtime=0"}},
	}
	for _, g := range geometries {
		t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) {
			img := oracle.Corpus(t, g)
			fs, err := xfs.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			ours, err := imagetree.FromFS(fs, treecmp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			mnt := oracle.MountCorpus(t, img, true)
			kernel, err := treecmp.FromDir(mnt, treecmp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ours.Entries) < 100 || len(ours.Entries) != len(kernel.Entries) {
				t.Errorf("engine saw %d entries, kernel %d", len(ours.Entries), len(kernel.Entries))
			}
			// Atimes: the mount is read-only, so the kernel has not touched them.
			diffs := treecmp.Diff(kernel, ours, treecmp.DiffOptions{Atime: true, Sparse: true, Nlink: true, Max: 40})
			if len(diffs) > 0 {
				t.Fatalf("engine and kernel disagree:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}
