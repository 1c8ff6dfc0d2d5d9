package pack

import (
	"math/bits"

	"xfskit/ondisk"
)

// FreeInode encodes an unallocated inode of a chunk the way mkfs.xfs and
// the kernel leave them: magic, version, number, UUID and an empty
// unlinked pointer under a valid CRC, everything else zero.
func (p *Packer) FreeInode(buf []byte, ino uint64) {
	clear(buf)
	d := ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 3, NextUnlinked: ondisk.NullAGIno, Ino: ino, UUID: p.uuid}
	d.Encode(buf)
}

// ChunkBlocks is the number of filesystem blocks of one 64-inode chunk.
func (p *Packer) ChunkBlocks() uint32 { return p.sb.BlocksPerChunk() }

// ChunkAlign is the alignment in AG blocks of a full inode chunk's first
// block: the superblock's inode alignment when set, as the inode
// allocator uses for full chunks.
func (p *Packer) ChunkAlign() uint32 {
	if p.sb.VersionNum&ondisk.SBVersionAlignBit != 0 && p.sb.InoAlignMt > 1 {
		return p.sb.InoAlignMt
	}
	return ondisk.ClusterAlign(p.sb)
}

// ChunkRecord is the inobt record of a full chunk starting at AG inode
// startAgino whose allocated inodes have their bit set in used.
func (p *Packer) ChunkRecord(startAgino uint32, used uint64) ondisk.InobtRec {
	free := ^used
	return ondisk.InobtRec{StartIno: startAgino, Count: ondisk.InodesPerChunk,
		FreeCount: uint32(bits.OnesCount64(free)), Free: free, Sparse: p.sb.HasSpinodes()}
}
