package replay

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/oracle"
)

// TestReplayCorpus changes a kernel-made image holding every on-disk form
// (directories short-form to B-tree, attribute forks local to B-tree,
// extent and B-tree data forks, inline and remote symlinks): an entry is
// added to and one removed from every directory, an attribute set on every
// file and directory, every other file truncated; then it crashes, and our
// replay must match the kernel's recovery.
func TestReplayCorpus(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.CorpusCopy(t, oracle.CorpusOptions{})
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	var dirs, files []string
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	removed := map[string]bool{}
	for i, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("replay-new-%d", i)), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(d, "user.replay", []byte("dir"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range files {
		if err := unix.Setxattr(f, "user.replay", []byte(fmt.Sprint(i)), 0); err != nil {
			t.Fatal(err)
		}
		switch i % 7 {
		case 1:
			if err := os.Truncate(f, 1000); err != nil {
				t.Fatal(err)
			}
		case 3:
			if !removed[filepath.Dir(f)] {
				removed[filepath.Dir(f)] = true
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Logf("%d directories, %d files changed", len(dirs), len(files))
	crash(t, mnt)
	replayAndCompare(t, img)
}
