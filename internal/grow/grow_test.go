package grow

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// growCase is a filesystem geometry and the ways it is grown.
type growCase struct {
	name  string
	size  int64 // bytes
	opts  []string
	frag  int   // one-block files per directory, half removed
	modes []int // growth modes below
	// multiLevel requires the last AG's free space trees to be taller
	// than a root leaf before growing (the rebuild path).
	multiLevel bool
}

const (
	withinLastAG = iota // the old last AG grows, no AG is added
	newAGsOnly          // the old last AG is full: only new AGs
	both                // the last AG fills up and new AGs follow
)

var modeNames = []string{"within-last-AG", "new-AGs", "both"}

// target is the new size in blocks for a mode.
func target(sb *ondisk.Superblock, mode int) uint64 {
	last := uint64(sb.AGLength(sb.AGCount - 1))
	ag := uint64(sb.AGBlocks)
	switch mode {
	case withinLastAG:
		return sb.DBlocks + (ag-last)/2
	case newAGsOnly:
		return sb.DBlocks + 2*ag + ag/3
	}
	return sb.DBlocks + (ag - last) + ag + ag/2
}

// TestGrow grows kernel-filled mkfs.xfs images of several geometries within
// the last AG, across new AGs, and both; every result must pass xfs_repair
// and check, mount with the new size, keep its contents and take new files
// in the added space. Each growth is repeated by the kernel (xfs_growfs on
// a loop mount) on a copy and the results compared field by field.
func TestGrow(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	cases := []growCase{
		{name: "4k-defaults", size: 64 << 20, opts: []string{"-d", "agsize=24m"}, frag: 40, modes: []int{withinLastAG, both}},
		{name: "1k-rmapbt-reflink", size: 40 << 20, opts: []string{"-b", "size=1024", "-m", "rmapbt=1,reflink=1", "-d", "agsize=24m"}, frag: 40, modes: []int{both}},
		{name: "nofinobt-nosparse-noreflink", size: 64 << 20, opts: []string{"-m", "finobt=0,reflink=0", "-i", "sparse=0", "-d", "agsize=16m"}, frag: 20, modes: []int{newAGsOnly}},
		{name: "rmapbt-fragmented", size: 64 << 20, opts: []string{"-b", "size=1024", "-m", "rmapbt=1,reflink=0", "-d", "agsize=24m"}, frag: 600, modes: []int{withinLastAG, both}, multiLevel: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := mkfs(t, c.size, c.opts...)
			tree := fill(t, base, c.frag)
			clean(t, base, "before growing")
			sb := superblock(t, base)
			if c.multiLevel {
				if agf := agfOf(t, base, sb.AGCount-1); agf.BnoLevel < 2 || agf.CntLevel < 2 {
					t.Fatalf("last AG free space trees have %d/%d levels: the test does not reach the rebuild of taller trees", agf.BnoLevel, agf.CntLevel)
				}
			}
			for _, mode := range c.modes {
				t.Run(modeNames[mode], func(t *testing.T) {
					if mode == newAGsOnly && sb.AGLength(sb.AGCount-1) != sb.AGBlocks {
						t.Fatal("newAGsOnly needs a full last AG")
					}
					dir := t.TempDir()
					ours, theirs := filepath.Join(dir, "ours.img"), filepath.Join(dir, "kernel.img")
					copyImage(t, base, ours)
					copyImage(t, base, theirs)
					blocks := target(sb, mode)
					size := int64(blocks)*int64(sb.BlockSize) + int64(sb.BlockSize)/2 // a ragged tail is ignored
					res, err := Run(ours, Options{Data: true, ExtendTo: size, IMaxPct: -1})
					if err != nil {
						t.Fatal(err)
					}
					wantAGs := uint32((blocks + uint64(sb.AGBlocks) - 1) / uint64(sb.AGBlocks))
					if !res.Changed || res.NewBlocks != blocks || res.NewAGCount != wantAGs || !res.Extended {
						t.Fatalf("result %+v: want %d blocks in %d AGs", res, blocks, wantAGs)
					}
					if (mode == newAGsOnly) != (res.LastAGAdded == 0) || (mode == withinLastAG) != (res.NewAGCount == sb.AGCount) {
						t.Fatalf("mode %s: result %+v", modeNames[mode], res)
					}
					kernelGrow(t, theirs, size, blocks)
					compareWithKernel(t, ours, theirs, sb)
					verifyGrown(t, ours, tree, sb)
				})
			}
		})
	}
}

// compareWithKernel compares our grown image with the kernel's, field by
// field as xfs_db prints them. Intended differences:
//   - LSNs and CRCs: the kernel logs its changes, stamping LSNs.
//   - Secondary superblock counters (icount, ifree, fdblocks): the kernel
//     writes its in-core superblock, whose lazy counters are a snapshot of
//     the moment; ours carry the primary's exact values.
//   - The old last AG's free space trees: the kernel inserts the new
//     extent record by record and may refill the AGFL from free space; we
//     rebuild both trees and move blocks between them and the AGFL. Their
//     roots, heights, free list and btreeblks may differ where the trees
//     are taller than one block; length, the free extents (longest) and
//     freeblks + flcount + btreeblks must not.
func compareWithKernel(t *testing.T, ours, theirs string, old *ondisk.Superblock) {
	t.Helper()
	skip := map[string]bool{"lsn": true, "crc": true}
	diff := func(what string, a, b map[string]string, ignore map[string]bool) {
		t.Helper()
		if len(a) == 0 || len(a) != len(b) {
			t.Errorf("%s: %d fields ours, %d the kernel's", what, len(a), len(b))
		}
		for k, v := range b {
			if !ignore[k] && !skip[k] && a[k] != v {
				t.Errorf("%s: %s = %s, the kernel wrote %s", what, k, a[k], v)
			}
		}
	}
	sbFields := func(img string, agno uint32) map[string]string {
		return dbFields(t, img, fmt.Sprintf("sb %d", agno))
	}
	diff("primary superblock", sbFields(ours, 0), sbFields(theirs, 0), nil)
	nsb := superblock(t, ours)
	counters := map[string]bool{"icount": true, "ifree": true, "fdblocks": true}
	for agno := uint32(1); agno < nsb.AGCount; agno++ {
		diff(fmt.Sprintf("AG %d superblock", agno), sbFields(ours, agno), sbFields(theirs, agno), counters)
	}
	lastOld := old.AGCount - 1
	treeFields := map[string]bool{"bnoroot": true, "cntroot": true, "bnolevel": true, "cntlevel": true,
		"flfirst": true, "fllast": true, "flcount": true, "btreeblks": true, "freeblks": true}
	for agno := lastOld; agno < nsb.AGCount; agno++ {
		a := dbFields(t, ours, fmt.Sprintf("agf %d", agno))
		b := dbFields(t, theirs, fmt.Sprintf("agf %d", agno))
		var ignore map[string]bool
		if agno == lastOld {
			ignore = treeFields
			sum := func(m map[string]string) uint64 {
				var s uint64
				for _, k := range []string{"freeblks", "flcount", "btreeblks"} {
					v, err := strconv.ParseUint(m[k], 10, 64)
					if err != nil {
						t.Fatalf("AG %d AGF %s = %q", agno, k, m[k])
					}
					s += v
				}
				return s
			}
			if sum(a) != sum(b) {
				t.Errorf("AG %d: freeblks+flcount+btreeblks %d, the kernel's %d", agno, sum(a), sum(b))
			}
		}
		diff(fmt.Sprintf("AG %d AGF", agno), a, b, ignore)
		diff(fmt.Sprintf("AG %d AGI", agno), dbFields(t, ours, fmt.Sprintf("agi %d", agno)), dbFields(t, theirs, fmt.Sprintf("agi %d", agno)), nil)
	}
}
