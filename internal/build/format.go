package build

import (
	"encoding/binary"
	"fmt"
	"time"

	"xfskit/internal/image"
	"xfskit/ondisk"
)

// Format writes the empty filesystem described by g to dev. Regions that
// must read as zeros (the log, the unused parts of header blocks) are
// assumed to be zero already: a new sparse file, or a device the caller
// has cleared with ClearStale. now stamps the root and realtime inodes.
func (g *Geometry) Format(dev image.Device, now time.Time) error {
	if need := int64(g.DBlocks) * int64(g.BlockSize); dev.Size() < need {
		return fmt.Errorf("%s: holds %d bytes, the filesystem needs %d", dev.Name(), dev.Size(), need)
	}
	fl, err := g.layout()
	if err != nil {
		return err
	}
	// Secondary AGs first and the primary superblock last, so that an
	// interrupted format never looks like a complete filesystem.
	for agno := g.AGCount - 1; agno >= 1; agno-- {
		if err := g.writeAG(dev, fl, fl.ags[agno]); err != nil {
			return err
		}
	}
	if err := g.writeLog(dev); err != nil {
		return err
	}
	if err := g.writeRootChunk(dev, fl, now); err != nil {
		return err
	}
	if err := g.writeAG(dev, fl, fl.ags[0]); err != nil {
		return err
	}
	return dev.Sync()
}

func (g *Geometry) agbOffset(agno, agbno uint32) int64 {
	return (int64(agno)*int64(g.AGBlocks) + int64(agbno)) * int64(g.BlockSize)
}

func (g *Geometry) daddr(agno, agbno uint32) uint64 {
	return uint64(g.agbOffset(agno, agbno)) >> ondisk.BBShift
}

// superblockFor returns the superblock written at the start of AG agno.
// Secondaries keep mkfs.xfs's in-progress snapshot; the last one and one
// in the middle also get the root inode number, as mkfs.xfs leaves them.
func (g *Geometry) superblockFor(agno uint32, fl *fsLayout) ondisk.Superblock {
	sb := g.SB
	if agno == 0 {
		sb.RootIno, sb.RBMIno, sb.RSumIno = fl.rootIno, fl.rbmIno, fl.rsumIno
		sb.ICount, sb.IFree, sb.FDBlocks = fl.icount, fl.ifree, fl.fdblocks
		sb.InProgress = 0
		return sb
	}
	if agno == g.AGCount-1 || (g.AGCount > 2 && agno == (g.AGCount-1)/2) {
		sb.RootIno = fl.rootIno
	}
	return sb
}

// writeAG writes the four header sectors and the B-tree root blocks of
// one AG in a single write.
func (g *Geometry) writeAG(dev image.Device, fl *fsLayout, a *agLayout) error {
	mp := g.mp
	bs, ss := g.BlockSize, g.SectorSize
	buf := make([]byte, int(mp.preallocBlocks)*bs)
	uuid := g.UUID

	sb := g.superblockFor(a.agno, fl)
	sb.Encode(buf[0:ss])

	agf := ondisk.AGF{
		Magic: ondisk.AGFMagic, Version: ondisk.AGFVersion, SeqNo: a.agno, Length: a.length,
		BnoRoot: mp.bnoBlock, CntRoot: mp.cntBlock, BnoLevel: 1, CntLevel: 1,
		FLFirst: 1, FLLast: uint32(len(a.agfl)) % uint32(mp.agflSize), FLCount: uint32(len(a.agfl)),
		FreeBlks: a.freeblks, Longest: a.longest, UUID: uuid,
	}
	if g.Rmapbt {
		agf.RmapRoot, agf.RmapLevel, agf.RmapBlocks = mp.rmapBlock, 1, 1
	}
	if g.Reflink {
		agf.RefcountRoot, agf.RefcountLevel, agf.RefcountBlocks = mp.refcBlock, 1, 1
	}
	agf.Encode(buf[ss : 2*ss])

	agi := ondisk.AGI{
		Magic: ondisk.AGIMagic, Version: ondisk.AGIVersion, SeqNo: a.agno, Length: a.length,
		Count: a.count, Root: mp.ibtBlock, Level: 1, FreeCount: a.ifree,
		NewIno: a.newino, DirIno: ondisk.NullAGIno, UUID: uuid,
	}
	for i := range agi.Unlinked {
		agi.Unlinked[i] = ondisk.NullAGIno
	}
	if g.Finobt {
		agi.FreeRoot, agi.FreeLevel = mp.fibtBlock, 1
	}
	if g.InobtCount {
		agi.IBlocks = 1
		if g.Finobt {
			agi.FBlocks = 1
		}
	}
	agi.Encode(buf[2*ss : 3*ss])

	agfl := ondisk.AGFL{Magic: ondisk.AGFLMagic, SeqNo: a.agno, UUID: uuid, Bno: make([]uint32, mp.agflSize)}
	for i := range agfl.Bno {
		agfl.Bno[i] = ondisk.NullAGBno
	}
	for i, b := range a.agfl {
		agfl.Bno[(1+i)%mp.agflSize] = b
	}
	agfl.Encode(buf[3*ss : 4*ss])

	block := func(agbno uint32) []byte { return buf[int(agbno)*bs : int(agbno+1)*bs] }
	roots := []struct {
		on    bool
		magic uint32
		agbno uint32
		recs  *leaf
	}{
		{true, ondisk.BnobtMagic, mp.bnoBlock, a.bno},
		{true, ondisk.CntbtMagic, mp.cntBlock, a.cnt},
		{true, ondisk.InobtMagic, mp.ibtBlock, a.inobt},
		{g.Finobt, ondisk.FinobtMagic, mp.fibtBlock, a.finobt},
		{g.Rmapbt, ondisk.RmapbtMagic, mp.rmapBlock, a.rmap},
		{g.Reflink, ondisk.RefcbtMagic, mp.refcBlock, newLeaf(bs, ondisk.RefcountRecSize)},
	}
	for _, r := range roots {
		if r.on {
			g.btreeRoot(block(r.agbno), r.magic, a.agno, r.agbno, r.recs)
		}
	}
	if _, err := dev.WriteAt(buf, g.agbOffset(a.agno, 0)); err != nil {
		return fmt.Errorf("AG %d: writing headers: %w", a.agno, err)
	}
	return nil
}

// btreeRoot formats a single-level short-form B-tree root holding the
// record area of l (including what deleted records left behind).
func (g *Geometry) btreeRoot(buf []byte, magic, agno, agbno uint32, l *leaf) {
	h := ondisk.BtreeHeader{
		Magic: magic, NumRecs: uint16(l.n), LeftSib: ondisk.NullLongPtr, RightSib: ondisk.NullLongPtr,
		Blkno: g.daddr(agno, agbno), UUID: g.UUID, Owner: uint64(agno),
	}
	h.Encode(buf)
	copy(buf[ondisk.ShortHdrSize:], l.data)
	ondisk.SealBtreeBlock(buf, false)
}

// writeRootChunk writes the first inode chunk of AG 0 with the root
// directory and the realtime bitmap and summary inodes.
func (g *Geometry) writeRootChunk(dev image.Device, fl *fsLayout, now time.Time) error {
	isz := g.InodeSize
	buf := make([]byte, int(fl.chunkLen)*g.BlockSize)
	first := uint64(fl.chunkBno) << g.SB.InoPBLog
	var flags2 uint64
	if g.Bigtime {
		flags2 |= ondisk.Diflag2Bigtime
	}
	if g.Nrext64 {
		flags2 |= ondisk.Diflag2Nrext64
	}
	ts := ondisk.TimestampOf(now)
	for i := 0; i < len(buf)/isz; i++ {
		ino := first + uint64(i)
		d := ondisk.Dinode{
			Magic: ondisk.DinodeMagic, Version: 3, NextUnlinked: ondisk.NullAGIno,
			Ino: ino, UUID: g.UUID,
		}
		ib := buf[i*isz : (i+1)*isz]
		switch ino {
		case fl.rootIno:
			d.Mode = ondisk.ModeDir | 0o755
			d.Format = ondisk.FmtLocal
			d.NLink = 2
			d.ProjIDLo, d.ProjIDHi = uint16(g.RootProjID), uint16(g.RootProjID>>16)
			d.ExtSize = g.RootExtSize
			d.Flags = g.RootFlags
			d.Flags2 = flags2 | g.RootFlags2
			d.CowExtSize = g.RootCowExtSize
			sf := ondisk.DirSF{Parent: fl.rootIno}
			n, err := sf.Encode(ib[g.inodeCoreSize():], true)
			if err != nil {
				return fmt.Errorf("root directory: %w", err)
			}
			d.Size = uint64(n)
		case fl.rbmIno, fl.rsumIno:
			d.Mode = ondisk.ModeReg
			d.Format = ondisk.FmtExtents
			d.NLink = 1
			d.Flags2 = flags2
			if ino == fl.rbmIno {
				d.Flags = ondisk.DiflagNewRTBM
			}
		default:
			d.Encode(ib)
			continue
		}
		d.AFormat = ondisk.FmtExtents
		d.Mtime, d.Ctime, d.Crtime = ts, ts, ts
		d.ChangeCount = 2 // created, then logged once more by mkfs
		d.Encode(ib)
	}
	if _, err := dev.WriteAt(buf, g.agbOffset(0, fl.chunkBno)); err != nil {
		return fmt.Errorf("writing the root inode chunk: %w", err)
	}
	return nil
}

func (g *Geometry) inodeCoreSize() int { return ondisk.DinodeV3CoreSize }

// writeLog stamps the (already zeroed) internal log with a clean unmount
// record at block 0 of cycle 1, as libxfs_log_clear does for mkfs.
func (g *Geometry) writeLog(dev image.Device) error {
	rec := logClearRecord(g.UUID, int(g.SB.LogSUnit), int(g.SB.LogSectSize))
	off := int64(g.SB.FSBToDaddr(g.LogStart)) << ondisk.BBShift
	if _, err := dev.WriteAt(rec, off); err != nil {
		return fmt.Errorf("writing the log: %w", err)
	}
	return nil
}

// logClearRecord builds the first log record of a new log: a v2 header,
// extended headers when the log stripe unit needs them, one unmount
// record, and zeroed blocks up to the stripe unit, every block stamped
// with cycle 1. The header CRC stays zero, as mkfs.xfs leaves it.
func logClearRecord(uuid ondisk.UUID, logsunit, logsectsize int) []byte {
	const bb = ondisk.BBSize
	sunit := logsunit
	if sunit == 1 {
		sunit = logsectsize
	}
	hdrs := 1
	if sunit > ondisk.LogHeaderCycleSize {
		hdrs = (sunit + ondisk.LogHeaderCycleSize - 1) / ondisk.LogHeaderCycleSize
	}
	blocks := max((sunit+bb-1)/bb, 2, hdrs+1)
	buf := make([]byte, blocks*bb)
	lsn := ondisk.MakeLSN(1, 0)

	unmount := buf[hdrs*bb : (hdrs+1)*bb]
	ondisk.LogOpHeader{TID: 0xb0c0d0d0, Len: ondisk.UnmountFormatSize,
		ClientID: ondisk.LogClientLog, Flags: ondisk.LogUnmountTrans}.Encode(unmount)
	// xfs_unmount_log_format's magic is written in host (little-endian) order.
	binary.LittleEndian.PutUint16(unmount[ondisk.LogOpHeaderSize:], ondisk.LogUnmountType)

	h := ondisk.LogRecHeader{
		Magic: ondisk.LogHeaderMagic, Cycle: 1, Version: ondisk.LogVersion2,
		Len: uint32(max(2*bb, sunit) - hdrs*bb), LSN: lsn, TailLSN: lsn,
		PrevBlock: ^uint32(0), NumLogOps: 1, Fmt: ondisk.LogFmtLinuxLE, FSUUID: uuid,
		Size: uint32(max(sunit, ondisk.LogBigRecordSize)),
	}
	h.CycleData[0] = binary.BigEndian.Uint32(unmount)
	h.Encode(buf)
	for i := 1; i < blocks; i++ {
		// Every non-header block starts with the cycle number (for
		// extended headers, that is xh_cycle).
		binary.BigEndian.PutUint32(buf[i*bb:], 1)
	}
	return buf
}
