package pack

import (
	"fmt"
	"io"

	"xfskit/ondisk"
)

// agGeom returns the record layout of a short-form AG B-tree.
func agGeom(magic uint32) (ondisk.BtreeGeometry, error) {
	switch magic {
	case ondisk.BnobtMagic:
		return ondisk.BnobtGeom, nil
	case ondisk.CntbtMagic:
		return ondisk.CntbtGeom, nil
	case ondisk.InobtMagic:
		return ondisk.InobtGeom, nil
	case ondisk.FinobtMagic:
		return ondisk.FinobtGeom, nil
	case ondisk.RmapbtMagic:
		return ondisk.RmapbtGeom, nil
	case ondisk.RefcbtMagic:
		return ondisk.RefcbtGeom, nil
	}
	return ondisk.BtreeGeometry{}, fmt.Errorf("no short-form B-tree with magic 0x%08x", magic)
}

// AGBtreeShape gives the number of blocks of each level (leaves first, the
// root last) of a short-form AG B-tree holding n records, filled evenly
// so that every block below the root is at least half full. An empty tree
// is a single empty leaf.
func AGBtreeShape(blockSize int, magic uint32, n int) ([]int, error) {
	g, err := agGeom(magic)
	if err != nil {
		return nil, err
	}
	leafMax, nodeMax := g.MaxRecs(blockSize, true), g.MaxRecs(blockSize, false)
	if leafMax < 2 || nodeMax < 2 {
		return nil, fmt.Errorf("%s: block of %d bytes too small", ondisk.BtreeName(magic), blockSize)
	}
	shape := []int{max(1, (n+leafMax-1)/leafMax)}
	for shape[len(shape)-1] > 1 {
		k := shape[len(shape)-1]
		shape = append(shape, (k+nodeMax-1)/nodeMax)
	}
	return shape, nil
}

// AGBtreeBlocks is the total number of blocks of AGBtreeShape.
func AGBtreeBlocks(blockSize int, magic uint32, n int) (int, error) {
	shape, err := AGBtreeShape(blockSize, magic, n)
	if err != nil {
		return 0, err
	}
	t := 0
	for _, k := range shape {
		t += k
	}
	return t, nil
}

// WriteAGBtree writes a short-form B-tree of AG agno over recs (records of
// the tree's size, concatenated, in key order) into the AG blocks given:
// blocks[0] is the root, the rest are used for the leaves and then the
// interior levels bottom-up. len(blocks) must equal AGBtreeBlocks. It
// returns the tree height.
func WriteAGBtree(sb *ondisk.Superblock, w io.WriterAt, agno, magic uint32, recs []byte, blocks []uint32) (int, error) {
	g, err := agGeom(magic)
	if err != nil {
		return 0, err
	}
	bs := int(sb.BlockSize)
	if len(recs)%g.RecSize != 0 {
		return 0, fmt.Errorf("%s: %d record bytes are not a multiple of %d", ondisk.BtreeName(magic), len(recs), g.RecSize)
	}
	n := len(recs) / g.RecSize
	shape, err := AGBtreeShape(bs, magic, n)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, k := range shape {
		total += k
	}
	if len(blocks) != total {
		return 0, fmt.Errorf("%s: %d blocks given for a %d-block tree", ondisk.BtreeName(magic), len(blocks), total)
	}
	// Non-root blocks in level order, then the root.
	order := append(append([]uint32(nil), blocks[1:]...), blocks[0])
	ks := ondisk.BtreeLowKeySize(magic)
	overlap := ondisk.BtreeOverlapping(magic)
	buf := make([]byte, bs)
	uuid := sb.MetaUUIDOrUUID()
	var lowKeys, highKeys [][]byte // per block of the level below
	oi := 0
	for level, count := range shape {
		own := order[oi : oi+count]
		oi += count
		var groups [][2]int
		switch {
		case level == 0 && n == 0:
			groups = [][2]int{{0, 0}}
		case level == 0:
			groups = splitEven(n, g.MaxRecs(bs, true))
		default:
			groups = splitEven(len(lowKeys), g.MaxRecs(bs, false))
		}
		if len(groups) != count {
			return 0, fmt.Errorf("%s: level %d splits into %d blocks, expected %d", ondisk.BtreeName(magic), level, len(groups), count)
		}
		nextLow := make([][]byte, count)
		nextHigh := make([][]byte, count)
		for i, gr := range groups {
			clear(buf)
			h := ondisk.BtreeHeader{Magic: magic, Level: uint16(level), NumRecs: uint16(gr[1] - gr[0]),
				LeftSib: ondisk.NullLongPtr, RightSib: ondisk.NullLongPtr,
				Blkno: sb.AGBToDaddr(agno, own[i]), UUID: uuid, Owner: uint64(agno)}
			if i > 0 {
				h.LeftSib = uint64(own[i-1])
			}
			if i+1 < count {
				h.RightSib = uint64(own[i+1])
			}
			h.Encode(buf)
			var low, high []byte
			for j := gr[0]; j < gr[1]; j++ {
				k := j - gr[0]
				if level == 0 {
					rec := recs[j*g.RecSize : (j+1)*g.RecSize]
					copy(g.Rec(buf, ondisk.ShortHdrSize, k), rec)
					if j == gr[0] {
						low = make([]byte, ks)
						if err := ondisk.BtreeRecKey(magic, rec, low, false); err != nil {
							return 0, err
						}
					}
					if overlap {
						hk := make([]byte, ks)
						if err := ondisk.BtreeRecKey(magic, rec, hk, true); err != nil {
							return 0, err
						}
						if high == nil || ondisk.CompareBtreeKeys(magic, hk, high) > 0 {
							high = hk
						}
					}
					continue
				}
				key := g.Key(buf, ondisk.ShortHdrSize, k)
				copy(key, lowKeys[j])
				if overlap {
					copy(key[ks:], highKeys[j])
					if high == nil || ondisk.CompareBtreeKeys(magic, highKeys[j], high) > 0 {
						high = highKeys[j]
					}
				}
				g.SetPtr(buf, ondisk.ShortHdrSize, k, uint64(prevLevel(order, shape, level)[j]))
				if j == gr[0] {
					low = lowKeys[j]
				}
			}
			nextLow[i], nextHigh[i] = low, high
			ondisk.SealBtreeBlock(buf, false)
			off := int64(sb.AGBToDaddr(agno, own[i])) << ondisk.BBShift
			if _, err := w.WriteAt(buf, off); err != nil {
				return 0, fmt.Errorf("AG %d: writing %s block %d: %w", agno, ondisk.BtreeName(magic), own[i], err)
			}
		}
		lowKeys, highKeys = nextLow, nextHigh
	}
	return len(shape), nil
}

// prevLevel returns the blocks of the level below level in order.
func prevLevel(order []uint32, shape []int, level int) []uint32 {
	start := 0
	for i := 0; i < level-1; i++ {
		start += shape[i]
	}
	return order[start : start+shape[level-1]]
}
