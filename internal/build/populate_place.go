package build

import (
	"fmt"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// popFileBlocks turns the byte ranges of a file holding data into the
// ranges of whole bs-byte blocks they touch (in file order, merged),
// appended to blks, and their total.
func popFileBlocks(blks, ranges [][2]int64, bs int64) (_ [][2]int64, total int64) {
	for _, r := range ranges {
		b0, b1 := r[0]/bs, (r[1]+bs-1)/bs
		if k := len(blks); k > 0 && b0 <= blks[k-1][1] {
			total += max(b1-blks[k-1][1], 0)
			blks[k-1][1] = max(blks[k-1][1], b1)
			continue
		}
		blks = append(blks, [2]int64{b0, b1})
		total += b1 - b0
	}
	return blks, total
}

// placeData allocates the blocks of n's data ranges in one request (so
// they are contiguous when the AG allows) and maps them in n.ext. copy,
// when set, is called for each piece (file offset, bytes, first block)
// to write the data there; sizing runs pass nil. mkfs -p and estimate
// share this so that both place every file the same way.
func (p *populator) placeData(n *popNode, ranges [][2]int64, copy func(off int64, length int, fsb uint64) error) error {
	bs := int64(p.sb.BlockSize)
	blks, total := popFileBlocks(p.blks[:0], ranges, bs)
	p.blks = blks
	if total == 0 {
		return nil
	}
	runs, err := p.space.Alloc(pack.Request{Len: uint64(total), Near: p.sb.AGToFSB(n.agno, 0)})
	if err != nil {
		return fmt.Errorf("%s: allocating %d blocks: %w", n.src, total, err)
	}
	ri, used := 0, uint64(0)
	for _, b := range blks {
		for fb := b[0]; fb < b[1]; {
			r := runs[ri]
			k := min(uint64(b[1]-fb), r.Len-used, uint64(popWriteBuf/bs))
			fsb := r.FSB + used
			if copy != nil {
				if err := copy(fb*bs, int(k)*int(bs), fsb); err != nil {
					return fmt.Errorf("%s: %w", n.src, err)
				}
			}
			if l := len(n.ext); l > 0 && n.ext[l-1].End() == uint64(fb) && n.ext[l-1].StartBlock+n.ext[l-1].Length == fsb &&
				n.ext[l-1].StartBlock>>p.sb.AGBlkLog == fsb>>p.sb.AGBlkLog {
				n.ext[l-1].Length += k
			} else {
				n.ext = append(n.ext, ondisk.Extent{Offset: uint64(fb), StartBlock: fsb, Length: k})
			}
			fb += int64(k)
			used += k
			if used == r.Len {
				ri++
				used = 0
			}
		}
	}
	p.stats.DataBlocks += uint64(total)
	p.stats.DataBytes += uint64(n.size)
	return nil
}
