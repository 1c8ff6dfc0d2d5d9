package e2e

import (
	"path/filepath"
	"strconv"
	"testing"

	"xfskit/internal/oracle"
)

// kernelCorpus runs the tools over kernel-made images holding every
// on-disk form (internal/oracle's corpus: every directory, attribute,
// extent-map and symlink form, fragmented and sparse files, hard links,
// devices): growfs, both checkers, the kernel's view unchanged; a backup
// restored equal to it; and mkfs -p copying the mounted image (the kernel
// as the source: it also lists XFS's raw ACL attributes) into an image
// whose kernel view equals it again.
func kernelCorpus(t *testing.T, tl tools) {
	for _, c := range []struct {
		name string
		opts oracle.CorpusOptions
		bs   int
	}{
		{"4k", oracle.CorpusOptions{}, 4096},
		{"1k", oracle.CorpusOptions{BlockSize: 1024}, 1024},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := oracle.CorpusCopy(t, c.opts)
			want := kernelView(t, img)
			g := tl.grow(t, "--size", "1300m", img)
			if g.NewAGCount <= g.OldAGCount {
				t.Fatalf("growfs of the corpus added no AG: %+v", g)
			}
			tl.checkClean(t, img)
			sameTree(t, "kernel view of the grown corpus", want, kernelView(t, img), exact)

			dir := t.TempDir()
			s := filepath.Join(dir, "l0")
			tl.run(t, "dump", "-q", "--inventory", filepath.Join(dir, "inv.db"), "-f", s, img)
			dest := filepath.Join(scratchXFS(t, c.bs), "dest")
			tl.run(t, "restore", "-q", "-f", s, dest)
			sameTree(t, "restore of the grown corpus", want, snapshot(t, dest), exact)

			mnt := oracle.Mount(t, img, true)
			copyImg := filepath.Join(dir, "copy.img")
			tl.run(t, "mkfs", "-q", "-b", "size="+strconv.Itoa(c.bs), "-p", mnt, copyImg)
			oracle.Unmount(t, mnt)
			tl.checkClean(t, copyImg)
			sameTree(t, "mkfs -p of the mounted corpus", want, kernelView(t, copyImg), exact)
		})
	}
}
