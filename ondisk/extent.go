package ondisk

import (
	"encoding/binary"
	"fmt"
)

// bmbt record, key and pointer sizes and field limits.
const (
	BmbtRecSize     = 16
	BmbtKeySize     = 8
	BmbtPtrSize     = 8
	BmbtOffsetBits  = 54
	BmbtBlockBits   = 52
	BmbtLengthBits  = 21
	MaxExtLen       = 1<<BmbtLengthBits - 1 // XFS_MAX_BMBT_EXTLEN
	MaxFileOff      = 1<<BmbtOffsetBits - 1 // XFS_MAX_FILEOFF: no extent may end past it
	bmbtOffsetMask  = 1<<BmbtOffsetBits - 1
	bmbtLengthMask  = 1<<BmbtLengthBits - 1
	bmbtBlockHiMask = 1<<9 - 1 // startblock bits held in l0
	// BmbtMaxLevelsCap bounds any bmbt height (root included); real trees
	// stay well below it (see BmbtMaxLevels).
	BmbtMaxLevelsCap = 9
)

// Extent is one mapping of file blocks to filesystem blocks.
type Extent struct {
	Offset     uint64 // file offset in blocks
	StartBlock uint64 // filesystem block number (AG-encoded)
	Length     uint64 // blocks, at most MaxExtLen per on-disk record
	Unwritten  bool   // allocated but reads as zeros
}

// End is the file block just past the extent.
func (e Extent) End() uint64 { return e.Offset + e.Length }

func (e Extent) String() string {
	u := ""
	if e.Unwritten {
		u = " unwritten"
	}
	return fmt.Sprintf("[off %d, block %d, len %d%s]", e.Offset, e.StartBlock, e.Length, u)
}

// DecodeExtent unpacks a 16-byte bmbt record.
func DecodeExtent(b []byte) (Extent, error) {
	if len(b) < BmbtRecSize {
		return Extent{}, shortErr("bmbt record", len(b), BmbtRecSize)
	}
	l0 := binary.BigEndian.Uint64(b[0:])
	l1 := binary.BigEndian.Uint64(b[8:])
	return Extent{
		Unwritten:  l0>>63 != 0,
		Offset:     (l0 >> 9) & bmbtOffsetMask,
		StartBlock: (l0&bmbtBlockHiMask)<<43 | l1>>21,
		Length:     l1 & bmbtLengthMask,
	}, nil
}

// Encode packs the extent into a 16-byte record. Fields wider than the
// on-disk bit fields are truncated; callers split long extents first.
func (e Extent) Encode(b []byte) {
	var l0 uint64
	if e.Unwritten {
		l0 = 1 << 63
	}
	l0 |= (e.Offset & bmbtOffsetMask) << 9
	l0 |= (e.StartBlock >> 43) & bmbtBlockHiMask
	l1 := e.StartBlock<<21 | e.Length&bmbtLengthMask
	binary.BigEndian.PutUint64(b[0:], l0)
	binary.BigEndian.PutUint64(b[8:], l1)
}

// DecodeExtents unpacks n records from an extents-format fork or a bmbt
// leaf's record area.
func DecodeExtents(b []byte, n uint64) ([]Extent, error) {
	if n > uint64(len(b)/BmbtRecSize) {
		return nil, Corrupt("extent list", "", "nextents", "%d extents do not fit in %d bytes", n, len(b))
	}
	out := make([]Extent, n)
	for i := range out {
		out[i], _ = DecodeExtent(b[i*BmbtRecSize:])
	}
	return out, nil
}

// DecodeBmbtKey returns the file offset held in a bmbt key.
func DecodeBmbtKey(b []byte) (uint64, error) {
	if len(b) < BmbtKeySize {
		return 0, shortErr("bmbt key", len(b), BmbtKeySize)
	}
	return binary.BigEndian.Uint64(b), nil
}

// EncodeBmbtKey stores a file offset as a bmbt key.
func EncodeBmbtKey(b []byte, off uint64) { binary.BigEndian.PutUint64(b, off) }

// BmbtMaxRecs is the number of records (leaf) or key/pointer pairs (node)
// in a long-form bmbt block of blockSize bytes.
func BmbtMaxRecs(blockSize int, leaf bool) int { return BmbtGeom.MaxRecs(blockSize, leaf) }

// BmbtMaxLevels bounds the height of a fork's bmbt, root included, from
// half-full blocks: the most levels maxExtents records could need.
func BmbtMaxLevels(blockSize, forkSize int, maxExtents uint64) int {
	minLeaf := uint64(max(BmbtMaxRecs(blockSize, true)/2, 1))
	minNode := uint64(max(BmbtMaxRecs(blockSize, false)/2, 2))
	rootRecs := uint64(max(BmdrMaxRecs(forkSize, false), 1))
	levels := 1
	n := (maxExtents + minLeaf - 1) / minLeaf
	for n > rootRecs {
		n = (n + minNode - 1) / minNode
		levels++
	}
	return min(levels+1, BmbtMaxLevelsCap)
}

// ExtentProblem checks one decoded extent against the filesystem: nonzero
// length, the file range inside the maximum offset, and the blocks inside
// one AG of the data device. It returns a reason or "".
func (sb *Superblock) ExtentProblem(e Extent) string {
	if e.Length == 0 {
		return "zero length"
	}
	if max := sb.MaxFileOffset(); e.Offset+e.Length > max || e.Offset+e.Length < e.Offset {
		return fmt.Sprintf("file range ends at block %d past the maximum %d", e.Offset+e.Length, max)
	}
	if e.StartBlock>>BmbtBlockBits != 0 {
		return "start block wider than 52 bits"
	}
	if e.StartBlock>>sb.AGBlkLog >= uint64(sb.AGCount) {
		return fmt.Sprintf("start block %d lies beyond the last AG", e.StartBlock)
	}
	agno, agbno := sb.FSBToAG(e.StartBlock)
	if uint64(agbno)+e.Length > uint64(sb.AGLength(agno)) {
		return fmt.Sprintf("blocks %d..%d lie outside AG %d", e.StartBlock, e.StartBlock+e.Length-1, agno)
	}
	return ""
}

// MaxFileOffset is the largest file block an extent may end at: the bmbt's
// 54-bit offset, capped by the largest file size Linux allows (2^63-1 bytes).
func (sb *Superblock) MaxFileOffset() uint64 {
	return min(uint64(MaxFileOff), uint64(1<<63-1)>>sb.BlockLog)
}
