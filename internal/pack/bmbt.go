package pack

import (
	"fmt"

	"xfskit/ondisk"
)

// buildBmbt builds a long-form bmbt over ext bottom-up with its root in
// fork, allocating its blocks near near. Blocks are filled evenly so that
// none below the root's children falls under half full, as xfs_repair
// requires.
func (p *Packer) buildBmbt(ino uint64, attr bool, ext []ondisk.Extent, fork []byte, near uint64) ([]Run, error) {
	forkName := "data"
	if attr {
		forkName = "attr"
	}
	rootMax := ondisk.BmdrMaxRecs(len(fork), false)
	if rootMax < 1 {
		return nil, fmt.Errorf("%s: %s fork of %d bytes cannot hold a bmbt root", where(ino), forkName, len(fork))
	}
	leafMax := ondisk.BmbtMaxRecs(p.bs, true)
	nodeMax := ondisk.BmbtMaxRecs(p.bs, false)
	// levels[0] groups records into leaves, levels[i] groups level i-1
	// blocks into nodes; the root holds the last level's blocks.
	levels := [][][2]int{splitEven(len(ext), leafMax)}
	for len(levels[len(levels)-1]) > rootMax {
		if len(levels) >= ondisk.BmbtMaxLevelsCap-1 {
			return nil, fmt.Errorf("%s: %d %s extents need too tall a bmbt", where(ino), len(ext), forkName)
		}
		levels = append(levels, splitEven(len(levels[len(levels)-1]), nodeMax))
	}
	var total uint64
	for _, l := range levels {
		total += uint64(len(l))
	}
	runs, err := p.allocate(ino, forkName+" fork bmbt", total, near)
	if err != nil {
		return nil, err
	}
	fsbs := make([]uint64, 0, total)
	for _, r := range runs {
		for b := uint64(0); b < r.Len; b++ {
			fsbs = append(fsbs, r.FSB+b)
		}
	}
	buf := make([]byte, p.bs)
	var keys []uint64 // first file offset under each block of the level below
	idx := 0
	for li, groups := range levels {
		blocks := fsbs[idx : idx+len(groups)]
		idx += len(groups)
		next := make([]uint64, len(groups))
		for i, g := range groups {
			clear(buf)
			h := ondisk.BtreeHeader{Magic: ondisk.BmbtMagic, Level: uint16(li), NumRecs: uint16(g[1] - g[0]),
				LeftSib: ondisk.NullLongPtr, RightSib: ondisk.NullLongPtr,
				Blkno: p.sb.FSBToDaddr(blocks[i]), UUID: p.uuid, Owner: ino, Long: true}
			if i > 0 {
				h.LeftSib = blocks[i-1]
			}
			if i+1 < len(groups) {
				h.RightSib = blocks[i+1]
			}
			h.Encode(buf)
			for j := g[0]; j < g[1]; j++ {
				k := j - g[0]
				if li == 0 {
					ext[j].Encode(ondisk.BmbtGeom.Rec(buf, ondisk.LongHdrSize, k))
				} else {
					ondisk.EncodeBmbtKey(ondisk.BmbtGeom.Key(buf, ondisk.LongHdrSize, k), keys[j])
					ondisk.BmbtGeom.SetPtr(buf, ondisk.LongHdrSize, k, prevBlocks(fsbs, levels, li)[j])
				}
			}
			if li == 0 {
				next[i] = ext[g[0]].Offset
			} else {
				next[i] = keys[g[0]]
			}
			ondisk.SealBtreeBlock(buf, true)
			if err := p.write(buf, blocks[i]); err != nil {
				return nil, fmt.Errorf("%s: %s fork bmbt: %w", where(ino), forkName, err)
			}
		}
		keys = next
	}
	top := levels[len(levels)-1]
	root := ondisk.BmdrRoot{Level: uint16(len(levels)), Keys: keys, Ptrs: make([]uint64, len(top))}
	copy(root.Ptrs, prevBlocks(fsbs, levels, len(levels)))
	root.Encode(fork)
	return runs, nil
}

// prevBlocks returns the blocks of level li-1 (in fsbs order: all leaves,
// then each level of nodes).
func prevBlocks(fsbs []uint64, levels [][][2]int, li int) []uint64 {
	start := 0
	for i := 0; i < li-1; i++ {
		start += len(levels[i])
	}
	return fsbs[start : start+len(levels[li-1])]
}
