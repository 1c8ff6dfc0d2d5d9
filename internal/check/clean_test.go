package check_test

import (
	"fmt"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/oracle"
)

// Geometries the kernel-made corpus is built with; check must find every
// one of them clean, as xfs_repair -n does.
var geometries = []oracle.CorpusOptions{
	{},
	{BlockSize: 1024},
	{BlockSize: 2048, InodeSize: 1024},
	{BlockSize: 65536, DirBlockSize: 65536, InodeSize: 2048},
	{BlockSize: 65536, Mkfs: []string{"-m", "rmapbt=1"}},
	{InodeSize: 1024, DirBlockSize: 16384},
	{Mkfs: []string{"-m", "rmapbt=1"}},
	{Mkfs: []string{"-m", "reflink=0,finobt=0", "-i", "sparse=0"}},
	{Mkfs: []string{"-m", "inobtcount=0,bigtime=0"}},
	{Mkfs: []string{"-d", "agcount=9"}, Size: "2G"},
}

func TestKernelImagesAreClean(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	for _, g := range geometries {
		t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) {
			img := oracle.Corpus(t, g)
			oracle.RequireRepairClean(t, img)
			r, err := check.Run(img, check.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Clean() {
				t.Fatalf("findings on a clean kernel-made image:\n%s", findings(r))
			}
			if r.Stats.Inodes < 100 || r.Stats.Directories < 10 {
				t.Errorf("walk saw too little: %+v", r.Stats)
			}
		})
	}
}
