package xfs_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
)

// TestOpenRefusesPendingEdit: an image with an undo journal next to it (a
// growfs killed half-way) is refused by Open, naming the journal, so that
// check and dump never report or back up a half-grown filesystem; the
// device itself still opens for the writer that rolls it back.
func TestOpenRefusesPendingEdit(t *testing.T) {
	img := oracle.Mkfs(t, "512m")
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	fs.Close()
	journal := img + image.UndoSuffix
	if err := os.WriteFile(journal, make([]byte, 512), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = xfs.Open(img)
	if !errors.Is(err, xfs.ErrPendingEdit) || !strings.Contains(err.Error(), journal) {
		t.Fatalf("Open with %s present: %v", journal, err)
	}
	dev, err := image.Open(img, false)
	if err != nil {
		t.Fatal(err)
	}
	fs, err = xfs.OpenDevice(dev)
	if err != nil {
		t.Fatalf("OpenDevice with a journal present: %v", err)
	}
	fs.Close()
	if err := os.Remove(journal); err != nil {
		t.Fatal(err)
	}
	fs, err = xfs.Open(img)
	if err != nil {
		t.Fatalf("Open after the journal is gone: %v", err)
	}
	fs.Close()
}
