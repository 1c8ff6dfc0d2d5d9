package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/treecmp"
)

// geometriesWorkflow: for several geometries, estimate sizes the image,
// mkfs -p makes it at exactly that size, both checkers pass, the kernel
// shows the source tree, growfs adds AGs to the nearly full image, the
// kernel writes into it, and a dump restores to what the kernel shows.
func geometriesWorkflow(t *testing.T, tl tools, src string, want *treecmp.Tree) {
	for _, g := range []struct {
		name      string
		opts      []string
		blockSize int
	}{
		{"4k-defaults", nil, 4096},
		{"1k-rmapbt-reflink", []string{"-b", "size=1024", "-m", "rmapbt=1,reflink=1"}, 1024},
		{"2k-inodes-16k-dirs-nrext64", []string{"-i", "size=2048,nrext64=1", "-n", "size=16k"}, 4096},
		{"64k-blocks", []string{"-b", "size=65536"}, 65536},
	} {
		t.Run(g.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "fs.img")
			out, _ := tl.run(t, "estimate", append(append([]string{}, g.opts...), "--bytes", src)...)
			size, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
			if err != nil || size <= 0 {
				t.Fatalf("estimate --bytes printed %q", out)
			}
			tl.run(t, "mkfs", append(append([]string{"-q"}, g.opts...), "-p", src, "-d", fmt.Sprintf("size=%d", size), img)...)
			if fi, err := os.Stat(img); err != nil || fi.Size() != size {
				t.Fatalf("image: %v, size %d; want %d bytes", err, fi.Size(), size)
			}
			tl.checkClean(t, img)
			// Holes are kept to the block size: with blocks larger than the
			// source's 4 KiB pieces, data ranges differ.
			opts := exact
			opts.Sparse = g.blockSize <= 4096
			mnt := oracle.Mount(t, img, true)
			sameTree(t, "kernel mount of the estimated image vs the source", want, snapshot(t, mnt), opts)
			oracle.Unmount(t, mnt)

			gr := tl.grow(t, "--size", fmt.Sprint(3*size), img)
			if gr.NewAGCount <= gr.OldAGCount {
				t.Fatalf("growing to 3 times the size added no AG: %+v", gr)
			}
			tl.checkClean(t, img)
			mnt = oracle.Mount(t, img, false)
			oracle.MustBeMounted(t, mnt)
			for i := 0; i < 16; i++ {
				d := filepath.Join(mnt, "booted", fmt.Sprintf("d%02d", i))
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "data"), pattern(i, 200000+i), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			oracle.Unmount(t, mnt)
			tl.checkClean(t, img)

			s := filepath.Join(dir, "level0")
			tl.run(t, "dump", "-q", "--inventory", filepath.Join(dir, "inv.db"), "-f", s, img)
			kernel := kernelView(t, img)
			dest := filepath.Join(scratchXFS(t, g.blockSize), "dest")
			tl.run(t, "restore", "-q", "-f", s, dest)
			sameTree(t, "restore vs the kernel's view of the image", kernel, snapshot(t, dest), opts)
		})
	}
}
