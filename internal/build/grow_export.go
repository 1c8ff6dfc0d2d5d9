package build

import (
	"fmt"

	"xfskit/internal/image"
	"xfskit/ondisk"
)

// This file lets growfs reuse what mkfs writes per AG: the geometry of an
// existing filesystem read back from its superblock, and the headers and
// empty B-tree roots of a new AG as xfs_ag_init_headers writes them.

// FromSuperblock returns the geometry of the existing filesystem sb
// describes (a verified v5 superblock): enough to write new AGs exactly as
// mkfs.xfs and the kernel lay them out and to print the geometry report.
func FromSuperblock(sb *ondisk.Superblock) (*Geometry, error) {
	if !sb.IsV5() {
		return nil, fmt.Errorf("XFS version %d superblock: only v5 filesystems are supported", sb.Version())
	}
	bs, ss, isz := int(sb.BlockSize), int(sb.SectSize), int(sb.InodeSize)
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 || ss < 512 || ss > bs || isz < 256 || isz > bs {
		return nil, fmt.Errorf("superblock geometry out of range (block %d, sector %d, inode %d bytes)", bs, ss, isz)
	}
	logSect := 512
	if sb.VersionNum&ondisk.SBVersionSector != 0 {
		logSect = int(sb.LogSectSize)
	}
	g := &Geometry{
		BlockSize: bs, SectorSize: ss, LogSectorSize: logSect,
		DirBlockSize: sb.DirBlockSize(), InodeSize: isz,
		DBlocks: sb.DBlocks, AGBlocks: sb.AGBlocks, AGCount: sb.AGCount,
		LogBlocks: sb.LogBlocks, LogStart: sb.LogStart,
		DSunit: sb.Unit, DSwidth: sb.Width, IMaxPct: int(sb.IMaxPct), RTExtBlocks: sb.RExtSize,
		Finobt: sb.HasFinobt(), Sparse: sb.HasSpinodes(), Rmapbt: sb.HasRmapbt(), Reflink: sb.HasReflink(),
		InobtCount: sb.HasInobtCnt(), Bigtime: sb.HasBigtime(), Nrext64: sb.HasNrext64(),
		ASCIICI: sb.VersionNum&ondisk.SBVersionBorg != 0,
		// AG headers and B-tree blocks carry the metadata UUID.
		UUID:  sb.MetaUUIDOrUUID(),
		Label: sb.Label(),
		SB:    *sb,
	}
	if sb.LogStart != 0 {
		g.LogAGNo, _ = sb.FSBToAG(sb.LogStart)
	}
	if sb.LogSUnit > 1 {
		g.LSunit = sb.LogSUnit / sb.BlockSize
	}
	g.mp = newMountGeom(mountParams{
		blockSize: bs, sectSize: ss, inodeSize: isz, agBlocks: sb.AGBlocks, agCount: sb.AGCount,
		dBlocks: sb.DBlocks, dirBlockLog: int(sb.DirBlkLog), logSunit: int(sb.LogSUnit),
		inoAlignMt: sb.InoAlignMt, spinoAlign: sb.SpinoAlign, dalign: sb.Unit,
		finobt: g.Finobt, rmapbt: g.Rmapbt, reflink: g.Reflink, nrext64: g.Nrext64,
		sparse: g.Sparse, inodeAlign: sb.VersionNum&ondisk.SBVersionAlignBit != 0,
	})
	return g, nil
}

// AGPreallocBlocks is the number of blocks at the start of every AG taken
// by its header sectors and B-tree root blocks (m_ag_prealloc_blocks).
func (g *Geometry) AGPreallocBlocks() uint32 { return g.mp.preallocBlocks }

// WriteNewAG writes the header sectors and empty B-tree roots of AG agno,
// length blocks long, as xfs_ag_init_headers writes them when growfs adds
// an AG: the superblock sector holds g.SB, the rmapbt (if any) maps the
// headers and roots, and the free list is empty (the kernel fills it on the
// AG's first allocation). It returns the AG's free blocks.
func (g *Geometry) WriteNewAG(dev image.Device, agno, length uint32) (uint32, error) {
	if length <= g.mp.preallocBlocks {
		return 0, fmt.Errorf("AG %d: %d blocks cannot hold the %d blocks of AG headers", agno, length, g.mp.preallocBlocks)
	}
	bs := g.BlockSize
	a := &agLayout{agno: agno, length: length, newino: ondisk.NullAGIno,
		bno: newLeaf(bs, ondisk.AllocRecSize), cnt: newLeaf(bs, ondisk.AllocRecSize),
		inobt: newLeaf(bs, ondisk.InobtRecSize), finobt: newLeaf(bs, ondisk.InobtRecSize),
		rmap: newLeaf(bs, ondisk.RmapRecSize)}
	if err := g.initFreeSpace(a); err != nil {
		return 0, err
	}
	if g.Rmapbt {
		if err := g.initRmaps(a); err != nil {
			return 0, err
		}
	}
	fl := &fsLayout{rootIno: g.SB.RootIno, rbmIno: g.SB.RBMIno, rsumIno: g.SB.RSumIno}
	return a.freeblks, g.writeAG(dev, fl, a)
}

// ParseSize converts a size as mkfs.xfs options take it: a plain number, or
// one with a unit suffix s (sectors), b (filesystem blocks) or k, m, g, t,
// p, e (powers of 1024).
func ParseSize(s string, blockSize, sectorSize int) (int64, bool) {
	return cvtnum(blockSize, sectorSize, s)
}
