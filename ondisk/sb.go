package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Superblock magic and layout facts.
const (
	SBMagic   = 0x58465342 // "XFSB"
	SBCRCOff  = 224        // offset of sb_crc
	SBSize    = 264        // bytes of the v5 superblock we decode (up to sb_meta_uuid)
	BBShift   = 9          // 512-byte basic blocks (daddr units)
	BBSize    = 1 << BBShift
	NullFSB   = ^uint64(0) // NULLFSBLOCK
	NullAGBno = ^uint32(0) // NULLAGBLOCK
	NullAGIno = ^uint32(0) // NULLAGINO
	NullIno   = ^uint64(0) // NULLFSINO
)

// sb_versionnum bits.
const (
	SBVersionNumBits  = 0x000f
	SBVersion5        = 5
	SBVersionAttrBit  = 0x0010
	SBVersionNlinkBit = 0x0020
	SBVersionQuotaBit = 0x0040
	SBVersionAlignBit = 0x0080
	SBVersionDAlign   = 0x0100
	SBVersionShared   = 0x0200
	SBVersionLogV2    = 0x0400
	SBVersionSector   = 0x0800
	SBVersionExtFlg   = 0x1000
	SBVersionDirV2    = 0x2000
	SBVersionBorg     = 0x4000
	SBVersionMoreBits = 0x8000
)

// sb_features2 bits.
const (
	SBF2LazySBCount = 0x00000002
	SBF2Attr2       = 0x00000008
	SBF2Parent      = 0x00000010
	SBF2ProjID32    = 0x00000080
	SBF2CRC         = 0x00000100
	SBF2FType       = 0x00000200
)

// sb_features_ro_compat bits.
const (
	ROCompatFinobt   = 1 << 0
	ROCompatRmapbt   = 1 << 1
	ROCompatReflink  = 1 << 2
	ROCompatInobtCnt = 1 << 3
	ROCompatAll      = ROCompatFinobt | ROCompatRmapbt | ROCompatReflink | ROCompatInobtCnt
)

// sb_features_incompat bits.
const (
	IncompatFType       = 1 << 0
	IncompatSpinodes    = 1 << 1
	IncompatMetaUUID    = 1 << 2
	IncompatBigtime     = 1 << 3
	IncompatNeedsRepair = 1 << 4
	IncompatNrext64     = 1 << 5
	IncompatExchRange   = 1 << 6
	IncompatParent      = 1 << 7
	IncompatMetadir     = 1 << 8
	// IncompatKnown are the incompat features this toolkit reads.
	IncompatKnown = IncompatFType | IncompatSpinodes | IncompatMetaUUID | IncompatBigtime |
		IncompatNeedsRepair | IncompatNrext64 | IncompatExchRange
)

// sb_features_log_incompat bits.
const (
	LogIncompatXattrs = 1 << 0
)

// Superblock is the decoded v5 (or older) superblock.
type Superblock struct {
	MagicNum            uint32
	BlockSize           uint32
	DBlocks             uint64
	RBlocks             uint64
	RExtents            uint64
	UUID                UUID
	LogStart            uint64
	RootIno             uint64
	RBMIno              uint64
	RSumIno             uint64
	RExtSize            uint32
	AGBlocks            uint32
	AGCount             uint32
	RBMBlocks           uint32
	LogBlocks           uint32
	VersionNum          uint16
	SectSize            uint16
	InodeSize           uint16
	InoPBlock           uint16
	FName               [12]byte
	BlockLog            uint8
	SectLog             uint8
	InodeLog            uint8
	InoPBLog            uint8
	AGBlkLog            uint8
	RExtSLog            uint8
	InProgress          uint8
	IMaxPct             uint8
	ICount              uint64
	IFree               uint64
	FDBlocks            uint64
	FRExtents           uint64
	UQuotIno            uint64
	GQuotIno            uint64
	QFlags              uint16
	Flags               uint8
	SharedVN            uint8
	InoAlignMt          uint32
	Unit                uint32
	Width               uint32
	DirBlkLog           uint8
	LogSectLog          uint8
	LogSectSize         uint16
	LogSUnit            uint32
	Features2           uint32
	BadFeatures2        uint32
	FeaturesCompat      uint32
	FeaturesROCompat    uint32
	FeaturesIncompat    uint32
	FeaturesLogIncompat uint32
	CRC                 uint32
	SpinoAlign          uint32
	PQuotIno            uint64
	LSN                 uint64
	MetaUUID            UUID
}

// DecodeSuperblock decodes the first SBSize bytes of buf.
func DecodeSuperblock(buf []byte) (*Superblock, error) {
	if len(buf) < SBSize {
		return nil, shortErr("superblock", len(buf), SBSize)
	}
	be := binary.BigEndian
	s := &Superblock{}
	s.MagicNum = be.Uint32(buf[0:])
	s.BlockSize = be.Uint32(buf[4:])
	s.DBlocks = be.Uint64(buf[8:])
	s.RBlocks = be.Uint64(buf[16:])
	s.RExtents = be.Uint64(buf[24:])
	copy(s.UUID[:], buf[32:48])
	s.LogStart = be.Uint64(buf[48:])
	s.RootIno = be.Uint64(buf[56:])
	s.RBMIno = be.Uint64(buf[64:])
	s.RSumIno = be.Uint64(buf[72:])
	s.RExtSize = be.Uint32(buf[80:])
	s.AGBlocks = be.Uint32(buf[84:])
	s.AGCount = be.Uint32(buf[88:])
	s.RBMBlocks = be.Uint32(buf[92:])
	s.LogBlocks = be.Uint32(buf[96:])
	s.VersionNum = be.Uint16(buf[100:])
	s.SectSize = be.Uint16(buf[102:])
	s.InodeSize = be.Uint16(buf[104:])
	s.InoPBlock = be.Uint16(buf[106:])
	copy(s.FName[:], buf[108:120])
	s.BlockLog = buf[120]
	s.SectLog = buf[121]
	s.InodeLog = buf[122]
	s.InoPBLog = buf[123]
	s.AGBlkLog = buf[124]
	s.RExtSLog = buf[125]
	s.InProgress = buf[126]
	s.IMaxPct = buf[127]
	s.ICount = be.Uint64(buf[128:])
	s.IFree = be.Uint64(buf[136:])
	s.FDBlocks = be.Uint64(buf[144:])
	s.FRExtents = be.Uint64(buf[152:])
	s.UQuotIno = be.Uint64(buf[160:])
	s.GQuotIno = be.Uint64(buf[168:])
	s.QFlags = be.Uint16(buf[176:])
	s.Flags = buf[178]
	s.SharedVN = buf[179]
	s.InoAlignMt = be.Uint32(buf[180:])
	s.Unit = be.Uint32(buf[184:])
	s.Width = be.Uint32(buf[188:])
	s.DirBlkLog = buf[192]
	s.LogSectLog = buf[193]
	s.LogSectSize = be.Uint16(buf[194:])
	s.LogSUnit = be.Uint32(buf[196:])
	s.Features2 = be.Uint32(buf[200:])
	s.BadFeatures2 = be.Uint32(buf[204:])
	s.FeaturesCompat = be.Uint32(buf[208:])
	s.FeaturesROCompat = be.Uint32(buf[212:])
	s.FeaturesIncompat = be.Uint32(buf[216:])
	s.FeaturesLogIncompat = be.Uint32(buf[220:])
	s.CRC = binary.LittleEndian.Uint32(buf[224:])
	s.SpinoAlign = be.Uint32(buf[228:])
	s.PQuotIno = be.Uint64(buf[232:])
	s.LSN = be.Uint64(buf[240:])
	copy(s.MetaUUID[:], buf[248:264])
	return s, nil
}

// Encode writes the superblock into buf (at least SBSize bytes; normally a
// whole sector, zero beyond SBSize) and, for v5, sets the CRC over len(buf).
func (s *Superblock) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], s.MagicNum)
	be.PutUint32(buf[4:], s.BlockSize)
	be.PutUint64(buf[8:], s.DBlocks)
	be.PutUint64(buf[16:], s.RBlocks)
	be.PutUint64(buf[24:], s.RExtents)
	copy(buf[32:48], s.UUID[:])
	be.PutUint64(buf[48:], s.LogStart)
	be.PutUint64(buf[56:], s.RootIno)
	be.PutUint64(buf[64:], s.RBMIno)
	be.PutUint64(buf[72:], s.RSumIno)
	be.PutUint32(buf[80:], s.RExtSize)
	be.PutUint32(buf[84:], s.AGBlocks)
	be.PutUint32(buf[88:], s.AGCount)
	be.PutUint32(buf[92:], s.RBMBlocks)
	be.PutUint32(buf[96:], s.LogBlocks)
	be.PutUint16(buf[100:], s.VersionNum)
	be.PutUint16(buf[102:], s.SectSize)
	be.PutUint16(buf[104:], s.InodeSize)
	be.PutUint16(buf[106:], s.InoPBlock)
	copy(buf[108:120], s.FName[:])
	buf[120] = s.BlockLog
	buf[121] = s.SectLog
	buf[122] = s.InodeLog
	buf[123] = s.InoPBLog
	buf[124] = s.AGBlkLog
	buf[125] = s.RExtSLog
	buf[126] = s.InProgress
	buf[127] = s.IMaxPct
	be.PutUint64(buf[128:], s.ICount)
	be.PutUint64(buf[136:], s.IFree)
	be.PutUint64(buf[144:], s.FDBlocks)
	be.PutUint64(buf[152:], s.FRExtents)
	be.PutUint64(buf[160:], s.UQuotIno)
	be.PutUint64(buf[168:], s.GQuotIno)
	be.PutUint16(buf[176:], s.QFlags)
	buf[178] = s.Flags
	buf[179] = s.SharedVN
	be.PutUint32(buf[180:], s.InoAlignMt)
	be.PutUint32(buf[184:], s.Unit)
	be.PutUint32(buf[188:], s.Width)
	buf[192] = s.DirBlkLog
	buf[193] = s.LogSectLog
	be.PutUint16(buf[194:], s.LogSectSize)
	be.PutUint32(buf[196:], s.LogSUnit)
	be.PutUint32(buf[200:], s.Features2)
	be.PutUint32(buf[204:], s.BadFeatures2)
	be.PutUint32(buf[208:], s.FeaturesCompat)
	be.PutUint32(buf[212:], s.FeaturesROCompat)
	be.PutUint32(buf[216:], s.FeaturesIncompat)
	be.PutUint32(buf[220:], s.FeaturesLogIncompat)
	be.PutUint32(buf[228:], s.SpinoAlign)
	be.PutUint64(buf[232:], s.PQuotIno)
	be.PutUint64(buf[240:], s.LSN)
	copy(buf[248:264], s.MetaUUID[:])
	if s.IsV5() {
		SetCRC(buf, SBCRCOff)
		s.CRC = StoredCRC(buf, SBCRCOff)
	}
}

// Version returns the superblock version (4 or 5).
func (s *Superblock) Version() int { return int(s.VersionNum & SBVersionNumBits) }

// IsV5 reports a CRC-enabled (version 5) filesystem.
func (s *Superblock) IsV5() bool { return s.Version() == SBVersion5 }

func (s *Superblock) HasFinobt() bool   { return s.FeaturesROCompat&ROCompatFinobt != 0 }
func (s *Superblock) HasRmapbt() bool   { return s.FeaturesROCompat&ROCompatRmapbt != 0 }
func (s *Superblock) HasReflink() bool  { return s.FeaturesROCompat&ROCompatReflink != 0 }
func (s *Superblock) HasInobtCnt() bool { return s.FeaturesROCompat&ROCompatInobtCnt != 0 }
func (s *Superblock) HasSpinodes() bool { return s.FeaturesIncompat&IncompatSpinodes != 0 }
func (s *Superblock) HasMetaUUID() bool { return s.FeaturesIncompat&IncompatMetaUUID != 0 }
func (s *Superblock) HasBigtime() bool  { return s.FeaturesIncompat&IncompatBigtime != 0 }
func (s *Superblock) HasNrext64() bool  { return s.FeaturesIncompat&IncompatNrext64 != 0 }

// HasFType reports whether directory entries carry a file type byte.
func (s *Superblock) HasFType() bool {
	return s.FeaturesIncompat&IncompatFType != 0 || s.Features2&SBF2FType != 0
}

// HasCRC reports v5 metadata with checksums and self-describing headers.
func (s *Superblock) HasCRC() bool { return s.IsV5() }

// MetaUUIDOrUUID is the UUID stamped in metadata headers.
func (s *Superblock) MetaUUIDOrUUID() UUID {
	if s.HasMetaUUID() {
		return s.MetaUUID
	}
	return s.UUID
}

// Label returns the filesystem label without trailing NULs.
func (s *Superblock) Label() string {
	n := 0
	for n < len(s.FName) && s.FName[n] != 0 {
		n++
	}
	return string(s.FName[:n])
}

func log2(v uint64) (uint8, bool) {
	if v == 0 || v&(v-1) != 0 {
		return 0, false
	}
	var l uint8
	for v > 1 {
		v >>= 1
		l++
	}
	return l, true
}

// Verify checks magic, version, CRC (when sectorBuf holds the whole sector)
// and the geometry fields that everything else depends on. where names the
// copy (e.g. "AG 0").
func (s *Superblock) Verify(sectorBuf []byte, where string) error {
	c := func(field, f string, a ...any) error { return Corrupt("superblock", where, field, f, a...) }
	if s.MagicNum != SBMagic {
		return c("magicnum", "bad magic 0x%08x", s.MagicNum)
	}
	v := s.Version()
	if v != 4 && v != 5 {
		return c("versionnum", "unsupported version %d", v)
	}
	if v == 5 && sectorBuf != nil && !CRCOK(sectorBuf, SBCRCOff) {
		return c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(sectorBuf, SBCRCOff), CRC32c(sectorBuf, SBCRCOff))
	}
	if l, ok := log2(uint64(s.SectSize)); !ok || l != s.SectLog || s.SectSize < 512 || s.SectSize > 32768 {
		return c("sectsize", "sector size %d with log %d is invalid", s.SectSize, s.SectLog)
	}
	if l, ok := log2(uint64(s.BlockSize)); !ok || l != s.BlockLog || s.BlockSize < 512 || s.BlockSize > 65536 {
		return c("blocksize", "block size %d with log %d is invalid", s.BlockSize, s.BlockLog)
	}
	if s.BlockSize < uint32(s.SectSize) {
		return c("blocksize", "block size %d smaller than sector size %d", s.BlockSize, s.SectSize)
	}
	if l, ok := log2(uint64(s.InodeSize)); !ok || l != s.InodeLog || s.InodeSize < 256 || s.InodeSize > 2048 {
		return c("inodesize", "inode size %d with log %d is invalid", s.InodeSize, s.InodeLog)
	}
	if v == 5 && s.InodeSize < 512 {
		return c("inodesize", "v5 filesystem with %d-byte inodes (minimum 512)", s.InodeSize)
	}
	if uint32(s.InodeSize) > s.BlockSize {
		return c("inodesize", "inode size %d exceeds block size %d", s.InodeSize, s.BlockSize)
	}
	if uint32(s.InoPBlock) != s.BlockSize/uint32(s.InodeSize) {
		return c("inopblock", "%d inodes per block, geometry gives %d", s.InoPBlock, s.BlockSize/uint32(s.InodeSize))
	}
	if l, _ := log2(uint64(s.InoPBlock)); l != s.InoPBLog {
		return c("inopblog", "%d, expected %d", s.InoPBLog, l)
	}
	if s.AGCount == 0 {
		return c("agcount", "zero allocation groups")
	}
	if s.AGBlocks < 64 || s.AGBlocks > 1<<31 {
		return c("agblocks", "%d blocks per AG out of range", s.AGBlocks)
	}
	if want := ceilLog2(uint64(s.AGBlocks)); s.AGBlkLog != want {
		return c("agblklog", "%d, expected %d for %d blocks per AG", s.AGBlkLog, want, s.AGBlocks)
	}
	if int(s.AGBlkLog)+int(s.InoPBLog) > 32 {
		return c("agblklog", "AG inode number space exceeds 32 bits")
	}
	maxBlocks := uint64(s.AGCount) * uint64(s.AGBlocks)
	minBlocks := uint64(s.AGCount-1)*uint64(s.AGBlocks) + 64
	if s.DBlocks > maxBlocks || s.DBlocks < minBlocks {
		return c("dblocks", "%d blocks inconsistent with %d AGs of %d blocks", s.DBlocks, s.AGCount, s.AGBlocks)
	}
	if int(s.BlockLog)+int(s.DirBlkLog) > 16 {
		return c("dirblklog", "directory block size 2^%d exceeds 64 KiB", int(s.BlockLog)+int(s.DirBlkLog))
	}
	if s.IMaxPct > 100 {
		return c("imax_pct", "%d%% exceeds 100%%", s.IMaxPct)
	}
	if s.LogBlocks == 0 {
		return c("logblocks", "zero-length log")
	}
	if s.LogStart != 0 {
		agno, agbno := s.FSBToAG(s.LogStart)
		if agno >= s.AGCount || uint64(agbno)+uint64(s.LogBlocks) > uint64(s.AGBlocks) {
			return c("logstart", "internal log at block %d (+%d) lies outside its AG", s.LogStart, s.LogBlocks)
		}
	}
	if v == 5 {
		// The kernel mounts no v5 filesystem without these bits of the
		// older feature words, nor with the never supported shared bit;
		// xfs_repair rejects such a superblock too. Accepting it would let
		// growfs copy it into every secondary, leaving nothing to recover.
		const v5Vers = SBVersionNlinkBit | SBVersionAlignBit | SBVersionLogV2 | SBVersionExtFlg | SBVersionDirV2 | SBVersionMoreBits
		if s.VersionNum&v5Vers != v5Vers || s.VersionNum&SBVersionShared != 0 {
			return c("versionnum", "0x%04x: a v5 filesystem has bits 0x%04x set and 0x%04x clear", s.VersionNum, v5Vers, SBVersionShared)
		}
		const v5F2 = SBF2LazySBCount | SBF2Attr2 | SBF2ProjID32 | SBF2CRC
		if s.Features2&v5F2 != v5F2 {
			return c("features2", "0x%08x: a v5 filesystem has bits 0x%08x set", s.Features2, v5F2)
		}
		if s.FeaturesIncompat&^uint32(IncompatKnown) != 0 {
			return c("features_incompat", "unknown incompatible features 0x%x", s.FeaturesIncompat&^uint32(IncompatKnown))
		}
		// Sparse inode chunks are aligned to the inode cluster: 8 KiB of
		// 256-byte inodes, scaled by the inode size, in blocks (0 when a
		// block holds a whole cluster, e.g. 64 KiB blocks). The kernel
		// mounts nothing else.
		if want := uint32(8192*uint64(s.InodeSize)/256) >> s.BlockLog; s.HasSpinodes() && s.SpinoAlign != want {
			return c("spino_align", "%d, the inode cluster size gives %d", s.SpinoAlign, want)
		}
	}
	return nil
}

func ceilLog2(v uint64) uint8 {
	var l uint8
	for (uint64(1) << l) < v {
		l++
	}
	return l
}

// --- geometry helpers ---

// FSBToAG splits a filesystem block number into AG number and AG block.
func (s *Superblock) FSBToAG(fsb uint64) (agno uint32, agbno uint32) {
	return uint32(fsb >> s.AGBlkLog), uint32(fsb & (1<<s.AGBlkLog - 1))
}

// AGToFSB joins AG number and AG block into a filesystem block number.
func (s *Superblock) AGToFSB(agno, agbno uint32) uint64 {
	return uint64(agno)<<s.AGBlkLog | uint64(agbno)
}

// FSBToDaddr converts a filesystem block number to a 512-byte disk address.
func (s *Superblock) FSBToDaddr(fsb uint64) uint64 {
	agno, agbno := s.FSBToAG(fsb)
	return s.AGBToDaddr(agno, agbno)
}

// AGBToDaddr converts (AG, AG block) to a 512-byte disk address.
func (s *Superblock) AGBToDaddr(agno, agbno uint32) uint64 {
	return (uint64(agno)*uint64(s.AGBlocks) + uint64(agbno)) << (s.BlockLog - BBShift)
}

// DaddrToAGB converts a disk address to (AG, AG block).
func (s *Superblock) DaddrToAGB(daddr uint64) (uint32, uint32) {
	b := daddr >> (s.BlockLog - BBShift)
	return uint32(b / uint64(s.AGBlocks)), uint32(b % uint64(s.AGBlocks))
}

// ValidFSB reports whether fsb names a block inside the data device.
func (s *Superblock) ValidFSB(fsb uint64) bool {
	if fsb>>s.AGBlkLog >= uint64(s.AGCount) {
		return false // also catches AG numbers that overflow 32 bits
	}
	agno, agbno := s.FSBToAG(fsb)
	return agno < s.AGCount && agbno < s.AGLength(agno)
}

// AGLength is the number of blocks in AG agno (the last may be short).
func (s *Superblock) AGLength(agno uint32) uint32 {
	if agno == s.AGCount-1 {
		return uint32(s.DBlocks - uint64(agno)*uint64(s.AGBlocks))
	}
	return s.AGBlocks
}

// InoToAG splits an inode number into AG number and AG-relative inode.
func (s *Superblock) InoToAG(ino uint64) (agno uint32, agino uint32) {
	shift := s.AGBlkLog + s.InoPBLog
	return uint32(ino >> shift), uint32(ino & (1<<shift - 1))
}

// AGInoToIno joins AG number and AG-relative inode number.
func (s *Superblock) AGInoToIno(agno, agino uint32) uint64 {
	return uint64(agno)<<(s.AGBlkLog+s.InoPBLog) | uint64(agino)
}

// AGInoToAGB gives the AG block holding an AG inode and its index in that block.
func (s *Superblock) AGInoToAGB(agino uint32) (agbno uint32, index uint32) {
	return agino >> s.InoPBLog, agino & (1<<s.InoPBLog - 1)
}

// AGBToAGIno gives the first AG inode number in an AG block.
func (s *Superblock) AGBToAGIno(agbno uint32) uint32 { return agbno << s.InoPBLog }

// InoToDaddr returns the disk address of the block holding ino and the byte
// offset of the inode within that block.
func (s *Superblock) InoToDaddr(ino uint64) (daddr uint64, off int) {
	agno, agino := s.InoToAG(ino)
	agbno, idx := s.AGInoToAGB(agino)
	return s.AGBToDaddr(agno, agbno), int(idx) * int(s.InodeSize)
}

// ValidIno reports whether ino could name an inode in this filesystem.
func (s *Superblock) ValidIno(ino uint64) bool {
	if ino>>(s.AGBlkLog+s.InoPBLog) >= uint64(s.AGCount) {
		return false
	}
	agno, agino := s.InoToAG(ino)
	if agno >= s.AGCount {
		return false
	}
	agbno, _ := s.AGInoToAGB(agino)
	return agbno < s.AGLength(agno) && agbno > 0
}

// DirBlockSize is the directory block size in bytes.
func (s *Superblock) DirBlockSize() int { return int(s.BlockSize) << s.DirBlkLog }

// InodesPerChunk is the number of inodes in one inode chunk (always 64).
const InodesPerChunk = 64

// BlocksPerChunk is the number of filesystem blocks in an inode chunk.
func (s *Superblock) BlocksPerChunk() uint32 {
	n := uint32(InodesPerChunk) / uint32(s.InoPBlock)
	if n == 0 {
		return 1
	}
	return n
}

// String gives a one-line summary for messages.
func (s *Superblock) String() string {
	return fmt.Sprintf("XFS v%d bsize=%d agcount=%d agblocks=%d dblocks=%d isize=%d", s.Version(), s.BlockSize, s.AGCount, s.AGBlocks, s.DBlocks, s.InodeSize)
}
