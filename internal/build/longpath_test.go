package build

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/imagetree"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
)

// TestPopulateDeeperThanPathMax: a source tree whose paths are longer than
// PATH_MAX (the kernel, cp -a and dump handle those) is copied whole:
// directories opened, symlinks read, attributes listed and read and file
// data read relative to open directories.
func TestPopulateDeeperThanPathMax(t *testing.T) {
	src := t.TempDir()
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const depth = 1500 // 7 bytes a level: about 10,500-byte paths
	var rel []string
	for i := range depth {
		name := "dir" + strings.Repeat("x", 3)
		rel = append(rel, name)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		fd = nfd
	}
	content := []byte(strings.Repeat("deep data ", 1000))
	ffd, err := unix.Openat(fd, "file", unix.O_WRONLY|unix.O_CREAT, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(ffd, content); err != nil {
		t.Fatal(err)
	}
	xattrOK := unix.Fsetxattr(ffd, "user.deep", []byte("value"), 0) == nil
	unix.Close(ffd)
	if err := unix.Symlinkat("file", fd, "link"); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if p := filepath.Join(append([]string{src}, rel...)...); len(p) < unix.PathMax {
		t.Fatalf("the tree is not deep enough: %d-byte paths", len(p))
	}

	img := filepath.Join(t.TempDir(), "deep.img")
	o := NewOptions()
	o.Target, o.Proto, o.Quiet = img, src, true
	if _, err := Run(o, io.Discard, io.Discard); err != nil {
		t.Fatalf("mkfs -p of a tree deeper than PATH_MAX: %v", err)
	}
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tree, err := imagetree.FromFS(fs, treecmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Join(rel, "/")
	sum := sha256.Sum256(content)
	f := tree.Lookup(deep + "/file")
	if f == nil || f.Size != int64(len(content)) || f.SHA256 != hex.EncodeToString(sum[:]) || f.Mode != 0o640 {
		t.Fatalf("the deepest file in the image: %+v", f)
	}
	if xattrOK && string(f.Xattrs["user.deep"]) != "value" {
		t.Errorf("its attribute: %q", f.Xattrs)
	}
	if l := tree.Lookup(deep + "/link"); l == nil || l.Target != "file" {
		t.Fatalf("the deepest symlink in the image: %+v", l)
	}
	if len(tree.Entries) != depth+3 { // the root, the directories, file and link
		t.Fatalf("%d entries in the image, want %d", len(tree.Entries), depth+3)
	}
}
