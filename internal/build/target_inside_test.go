package build

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/imagetree"
	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
)

// TestPopulateTargetInsideSource: an image made inside its own -p
// directory is left out of it, whether it exists already (-f) or not, with
// a warning when it does (GNU tar skips its own archive the same way).
func TestPopulateTargetInsideSource(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "kept"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(src, "out.img")
	for _, force := range []bool{false, true} {
		o := NewOptions()
		o.Target, o.Proto, o.Quiet, o.Force = img, src, true, force
		var warn strings.Builder
		if _, err := Run(o, io.Discard, &warn); err != nil {
			t.Fatalf("force %v: %v", force, err)
		}
		if force != strings.Contains(warn.String(), "out.img is the target image: not copied into itself") {
			t.Errorf("force %v: warnings %q", force, warn.String())
		}
		fs, err := xfs.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := imagetree.FromFS(fs, treecmp.Options{})
		fs.Close()
		if err != nil {
			t.Fatal(err)
		}
		if tree.Lookup("kept") == nil || tree.Lookup("out.img") != nil || len(tree.Entries) != 2 {
			t.Fatalf("force %v: the image holds %d entries (out.img: %v)", force, len(tree.Entries), tree.Lookup("out.img") != nil)
		}
	}
}
