package dump

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// TestCorruptImage damages inodes with xfs_db: a file whose inode no
// longer verifies and a file whose extent points outside the filesystem
// are reported and left out (their names stay in the directory section),
// the rest is dumped; a damaged directory stops the dump with a located
// corruption error, since leaving it out would make a restore delete its
// contents.
func TestCorruptImage(t *testing.T) {
	img, m := oracle.CorpusWithManifest(t, oracle.CorpusOptions{})
	badInode := m.Item("forms/files/frag-a").Ino
	badExtent := m.Item("forms/files/frag-b").Ino
	good := m.Item("forms/files/large").Ino
	img = oracle.CorpusCopy(t, oracle.CorpusOptions{})
	oracle.DB(t, img, []string{"-x"}, fmt.Sprintf("inode %d", badInode), "write -d core.magic 0")
	oracle.DB(t, img, []string{"-x"}, fmt.Sprintf("inode %d", badExtent), "write -d u3.bmx[0].startblock 4000000000")
	inv := filepath.Join(t.TempDir(), "inv.db")
	r, err := Dump(context.Background(), Options{Image: img, Dests: dests(t, 1), Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 2 || !strings.Contains(strings.Join(r.Problems, "\n"), fmt.Sprint(badInode)) ||
		!strings.Contains(strings.Join(r.Problems, "\n"), fmt.Sprint(badExtent)) {
		t.Fatalf("problems %q, want inodes %d and %d", r.Problems, badInode, badExtent)
	}
	c := readStreams(t, mediaOf(r))
	paths := c.paths(t)
	if c.files[badInode] != nil || c.files[badExtent] != nil || c.files[good] == nil {
		t.Fatal("damaged inodes dumped or an intact one missing")
	}
	if paths["forms/files/frag-a"] != badInode || paths["forms/files/frag-b"] != badExtent {
		t.Fatal("names of damaged inodes left out of the directory section")
	}
	if r.Files != r.Named-2 {
		t.Fatalf("%d files dumped of %d named", r.Files, r.Named)
	}
	t.Logf("problems: %q", r.Problems)

	dir := m.Item("forms/dirs/block").Ino
	oracle.DB(t, img, []string{"-x"}, fmt.Sprintf("inode %d", dir), "write -d core.magic 0")
	_, err = Dump(context.Background(), Options{Image: img, Dests: dests(t, 1), Inventory: inv})
	var ce *ondisk.CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), fmt.Sprint(dir)) {
		t.Fatalf("damaged directory: %v", err)
	}
	t.Logf("damaged directory: %v", err)
}
