package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Allocation group header magics, versions and layout (v5).
const (
	AGFMagic    = 0x58414746 // "XAGF"
	AGIMagic    = 0x58414749 // "XAGI"
	AGFLMagic   = 0x5841464c // "XAFL"
	AGFVersion  = 1
	AGIVersion  = 1
	AGFSize     = 224 // struct xfs_agf
	AGISize     = 344 // struct xfs_agi
	AGFLHdrSize = 36  // struct xfs_agfl (v5 header before the block array)
	AGFCRCOff   = 216
	AGICRCOff   = 312
	AGFLCRCOff  = 32

	// AGIUnlinkedBuckets is the size of the AGI unlinked-inode hash table.
	AGIUnlinkedBuckets = 64
)

// AGF is the free space header of an allocation group (sector 1 of the AG).
type AGF struct {
	Magic          uint32
	Version        uint32
	SeqNo          uint32
	Length         uint32
	BnoRoot        uint32
	CntRoot        uint32
	RmapRoot       uint32
	BnoLevel       uint32
	CntLevel       uint32
	RmapLevel      uint32
	FLFirst        uint32
	FLLast         uint32
	FLCount        uint32
	FreeBlks       uint32
	Longest        uint32
	BtreeBlks      uint32
	UUID           UUID
	RmapBlocks     uint32
	RefcountBlocks uint32
	RefcountRoot   uint32
	RefcountLevel  uint32
	Spare64        [14]uint64 // kept so that re-encoding is byte-identical
	LSN            uint64
	CRC            uint32
	Spare2         uint32
}

// AGI is the inode header of an allocation group (sector 2 of the AG).
type AGI struct {
	Magic     uint32
	Version   uint32
	SeqNo     uint32
	Length    uint32
	Count     uint32
	Root      uint32
	Level     uint32
	FreeCount uint32
	NewIno    uint32
	DirIno    uint32
	Unlinked  [AGIUnlinkedBuckets]uint32
	UUID      UUID
	CRC       uint32
	Pad32     uint32
	LSN       uint64
	FreeRoot  uint32
	FreeLevel uint32
	IBlocks   uint32 // inobt blocks (inobtcount feature)
	FBlocks   uint32 // finobt blocks (inobtcount feature)
}

// AGFL is the v5 AG free list sector: a header and an array of AG block
// numbers, used as a ring buffer between the AGF's flfirst and fllast.
type AGFL struct {
	Magic uint32
	SeqNo uint32
	UUID  UUID
	LSN   uint64
	CRC   uint32
	Bno   []uint32 // (sector size - AGFLHdrSize) / 4 slots
}

// AGFLSize is the number of block slots in the AGFL of this filesystem.
func AGFLSize(sb *Superblock) int { return (int(sb.SectSize) - AGFLHdrSize) / 4 }

// AGFLBlock is the AG block holding the AGFL sector, the last of the AG
// header sectors; AG metadata must lie after it.
func AGFLBlock(sb *Superblock) uint32 {
	return uint32((3 * uint64(sb.SectSize)) >> sb.BlockLog)
}

// agWhere names an AG for messages.
func agWhere(agno uint32) string { return fmt.Sprintf("AG %d", agno) }

// DecodeAGF decodes an AGF from the start of buf (normally the whole sector).
func DecodeAGF(buf []byte) (*AGF, error) {
	if len(buf) < AGFSize {
		return nil, shortErr("AGF", len(buf), AGFSize)
	}
	be := binary.BigEndian
	a := &AGF{}
	u32 := []*uint32{&a.Magic, &a.Version, &a.SeqNo, &a.Length, &a.BnoRoot, &a.CntRoot, &a.RmapRoot,
		&a.BnoLevel, &a.CntLevel, &a.RmapLevel, &a.FLFirst, &a.FLLast, &a.FLCount, &a.FreeBlks,
		&a.Longest, &a.BtreeBlks}
	for i, p := range u32 {
		*p = be.Uint32(buf[4*i:])
	}
	copy(a.UUID[:], buf[64:80])
	a.RmapBlocks = be.Uint32(buf[80:])
	a.RefcountBlocks = be.Uint32(buf[84:])
	a.RefcountRoot = be.Uint32(buf[88:])
	a.RefcountLevel = be.Uint32(buf[92:])
	for i := range a.Spare64 {
		a.Spare64[i] = be.Uint64(buf[96+8*i:])
	}
	a.LSN = be.Uint64(buf[208:])
	a.CRC = binary.LittleEndian.Uint32(buf[AGFCRCOff:])
	a.Spare2 = be.Uint32(buf[220:])
	return a, nil
}

// Encode writes the AGF into buf, which must be the whole sector (at least
// AGFSize bytes; bytes past AGFSize are kept), and sets the CRC over buf.
func (a *AGF) Encode(buf []byte) {
	be := binary.BigEndian
	u32 := []uint32{a.Magic, a.Version, a.SeqNo, a.Length, a.BnoRoot, a.CntRoot, a.RmapRoot,
		a.BnoLevel, a.CntLevel, a.RmapLevel, a.FLFirst, a.FLLast, a.FLCount, a.FreeBlks,
		a.Longest, a.BtreeBlks}
	for i, v := range u32 {
		be.PutUint32(buf[4*i:], v)
	}
	copy(buf[64:80], a.UUID[:])
	be.PutUint32(buf[80:], a.RmapBlocks)
	be.PutUint32(buf[84:], a.RefcountBlocks)
	be.PutUint32(buf[88:], a.RefcountRoot)
	be.PutUint32(buf[92:], a.RefcountLevel)
	for i, v := range a.Spare64 {
		be.PutUint64(buf[96+8*i:], v)
	}
	be.PutUint64(buf[208:], a.LSN)
	be.PutUint32(buf[220:], a.Spare2)
	SetCRC(buf, AGFCRCOff)
	a.CRC = StoredCRC(buf, AGFCRCOff)
}

// verifyAGCommon checks what AGF, AGI and AGFL share: magic, version,
// sequence number, length, CRC and UUID.
func verifyAGCommon(c func(field, f string, a ...any) error, sb *Superblock, agno uint32,
	magic, wantMagic, version uint32, hasVersion bool, seqno, length uint32, hasLength bool,
	buf []byte, crcOff int, uuid UUID) error {
	if magic != wantMagic {
		return c("magicnum", "bad magic 0x%08x, expected 0x%08x", magic, wantMagic)
	}
	if hasVersion && version != 1 {
		return c("versionnum", "version %d, expected 1", version)
	}
	if seqno != agno {
		return c("seqno", "sequence number %d, expected %d", seqno, agno)
	}
	if hasLength {
		if agno >= sb.AGCount {
			return c("seqno", "AG %d beyond the %d AGs of the filesystem", agno, sb.AGCount)
		}
		if want := sb.AGLength(agno); length != want {
			return c("length", "%d blocks, superblock geometry gives %d", length, want)
		}
	}
	if buf != nil {
		if len(buf) < int(sb.SectSize) {
			return c("crc", "sector buffer holds %d bytes, need %d", len(buf), sb.SectSize)
		}
		sect := buf[:sb.SectSize]
		if !CRCOK(sect, crcOff) {
			return c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(sect, crcOff), CRC32c(sect, crcOff))
		}
	}
	if want := sb.MetaUUIDOrUUID(); uuid != want {
		return c("uuid", "UUID %s does not match filesystem %s", uuid, want)
	}
	return nil
}

// checkAGRoot checks that a B-tree root lies inside the AG after the headers.
func checkAGRoot(c func(field, f string, a ...any) error, sb *Superblock, field string, root, length uint32) error {
	if root <= AGFLBlock(sb) || root >= length {
		return c(field, "root block %d outside AG blocks %d..%d", root, AGFLBlock(sb)+1, length-1)
	}
	return nil
}

func checkLevel(c func(field, f string, a ...any) error, field string, level uint32, max int) error {
	if level < 1 || level > uint32(max) {
		return c(field, "%d levels, valid range 1..%d", level, max)
	}
	return nil
}

// Verify checks the AGF of AG agno against the superblock: magic, version,
// sequence number, length, CRC (over the sector in buf; nil skips it), UUID,
// B-tree roots and levels, free list indexes and block counters.
func (a *AGF) Verify(buf []byte, agno uint32, sb *Superblock) error {
	c := func(field, f string, args ...any) error { return Corrupt("AGF", agWhere(agno), field, f, args...) }
	if err := verifyAGCommon(c, sb, agno, a.Magic, AGFMagic, a.Version, true, a.SeqNo, a.Length, true, buf, AGFCRCOff, a.UUID); err != nil {
		return err
	}
	length := a.Length
	if err := checkAGRoot(c, sb, "bnoroot", a.BnoRoot, length); err != nil {
		return err
	}
	if err := checkAGRoot(c, sb, "cntroot", a.CntRoot, length); err != nil {
		return err
	}
	if err := checkLevel(c, "bnolevel", a.BnoLevel, BtreeMaxLevels(sb, BnobtMagic)); err != nil {
		return err
	}
	if err := checkLevel(c, "cntlevel", a.CntLevel, BtreeMaxLevels(sb, CntbtMagic)); err != nil {
		return err
	}
	if sb.HasRmapbt() {
		if err := checkAGRoot(c, sb, "rmaproot", a.RmapRoot, length); err != nil {
			return err
		}
		if err := checkLevel(c, "rmaplevel", a.RmapLevel, BtreeMaxLevels(sb, RmapbtMagic)); err != nil {
			return err
		}
		if a.RmapBlocks > length {
			return c("rmapblocks", "%d rmapbt blocks exceed AG length %d", a.RmapBlocks, length)
		}
	}
	if sb.HasReflink() {
		if err := checkAGRoot(c, sb, "refcntroot", a.RefcountRoot, length); err != nil {
			return err
		}
		if err := checkLevel(c, "refcntlevel", a.RefcountLevel, BtreeMaxLevels(sb, RefcbtMagic)); err != nil {
			return err
		}
		if a.RefcountBlocks > length {
			return c("refcntblocks", "%d refcountbt blocks exceed AG length %d", a.RefcountBlocks, length)
		}
	}
	if err := a.checkFreeList(c, AGFLSize(sb)); err != nil {
		return err
	}
	if a.FreeBlks > length {
		return c("freeblks", "%d free blocks exceed AG length %d", a.FreeBlks, length)
	}
	if a.Longest > a.FreeBlks {
		return c("longest", "longest free extent %d exceeds free blocks %d", a.Longest, a.FreeBlks)
	}
	if a.BtreeBlks > length {
		return c("btreeblks", "%d B-tree blocks exceed AG length %d", a.BtreeBlks, length)
	}
	return nil
}

func (a *AGF) checkFreeList(c func(field, f string, args ...any) error, size int) error {
	n := uint32(size)
	if a.FLFirst >= n {
		return c("flfirst", "index %d outside the %d-slot AGFL", a.FLFirst, n)
	}
	if a.FLLast >= n {
		return c("fllast", "index %d outside the %d-slot AGFL", a.FLLast, n)
	}
	if a.FLCount > n {
		return c("flcount", "%d blocks exceed the %d-slot AGFL", a.FLCount, n)
	}
	if want := a.FreeListSpan(size); want != a.FLCount {
		return c("flcount", "%d, but flfirst %d..fllast %d span %d slots", a.FLCount, a.FLFirst, a.FLLast, want)
	}
	return nil
}

// FreeListSpan is the number of AGFL slots between flfirst and fllast
// (inclusive, wrapping), or 0 when flcount is 0, as the kernel counts them.
func (a *AGF) FreeListSpan(size int) uint32 {
	switch {
	case a.FLCount == 0:
		return 0
	case a.FLLast >= a.FLFirst:
		return a.FLLast - a.FLFirst + 1
	default:
		return uint32(size) - a.FLFirst + a.FLLast + 1
	}
}

// DecodeAGI decodes an AGI from the start of buf (normally the whole sector).
func DecodeAGI(buf []byte) (*AGI, error) {
	if len(buf) < AGISize {
		return nil, shortErr("AGI", len(buf), AGISize)
	}
	be := binary.BigEndian
	a := &AGI{}
	u32 := []*uint32{&a.Magic, &a.Version, &a.SeqNo, &a.Length, &a.Count, &a.Root, &a.Level,
		&a.FreeCount, &a.NewIno, &a.DirIno}
	for i, p := range u32 {
		*p = be.Uint32(buf[4*i:])
	}
	for i := range a.Unlinked {
		a.Unlinked[i] = be.Uint32(buf[40+4*i:])
	}
	copy(a.UUID[:], buf[296:312])
	a.CRC = binary.LittleEndian.Uint32(buf[AGICRCOff:])
	a.Pad32 = be.Uint32(buf[316:])
	a.LSN = be.Uint64(buf[320:])
	a.FreeRoot = be.Uint32(buf[328:])
	a.FreeLevel = be.Uint32(buf[332:])
	a.IBlocks = be.Uint32(buf[336:])
	a.FBlocks = be.Uint32(buf[340:])
	return a, nil
}

// Encode writes the AGI into buf, which must be the whole sector (at least
// AGISize bytes; bytes past AGISize are kept), and sets the CRC over buf.
func (a *AGI) Encode(buf []byte) {
	be := binary.BigEndian
	u32 := []uint32{a.Magic, a.Version, a.SeqNo, a.Length, a.Count, a.Root, a.Level,
		a.FreeCount, a.NewIno, a.DirIno}
	for i, v := range u32 {
		be.PutUint32(buf[4*i:], v)
	}
	for i, v := range a.Unlinked {
		be.PutUint32(buf[40+4*i:], v)
	}
	copy(buf[296:312], a.UUID[:])
	be.PutUint32(buf[316:], a.Pad32)
	be.PutUint64(buf[320:], a.LSN)
	be.PutUint32(buf[328:], a.FreeRoot)
	be.PutUint32(buf[332:], a.FreeLevel)
	be.PutUint32(buf[336:], a.IBlocks)
	be.PutUint32(buf[340:], a.FBlocks)
	SetCRC(buf, AGICRCOff)
	a.CRC = StoredCRC(buf, AGICRCOff)
}

// Verify checks the AGI of AG agno against the superblock: magic, version,
// sequence number, length, CRC (over the sector in buf; nil skips it), UUID,
// inode B-tree roots and levels, inode counts, and that newino, dirino and
// every unlinked bucket hold NULL or an AG inode number that can exist.
func (a *AGI) Verify(buf []byte, agno uint32, sb *Superblock) error {
	c := func(field, f string, args ...any) error { return Corrupt("AGI", agWhere(agno), field, f, args...) }
	if err := verifyAGCommon(c, sb, agno, a.Magic, AGIMagic, a.Version, true, a.SeqNo, a.Length, true, buf, AGICRCOff, a.UUID); err != nil {
		return err
	}
	length := a.Length
	maxLevels := BtreeMaxLevels(sb, InobtMagic)
	if err := checkAGRoot(c, sb, "root", a.Root, length); err != nil {
		return err
	}
	if err := checkLevel(c, "level", a.Level, maxLevels); err != nil {
		return err
	}
	if sb.HasFinobt() {
		if err := checkAGRoot(c, sb, "free_root", a.FreeRoot, length); err != nil {
			return err
		}
		if err := checkLevel(c, "free_level", a.FreeLevel, maxLevels); err != nil {
			return err
		}
	}
	if maxIno := uint64(length) << sb.InoPBLog; uint64(a.Count) > maxIno {
		return c("count", "%d inodes cannot fit in %d blocks", a.Count, length)
	}
	if a.Count%InodesPerChunk != 0 && !sb.HasSpinodes() {
		return c("count", "%d inodes is not a whole number of %d-inode chunks", a.Count, InodesPerChunk)
	}
	if a.FreeCount > a.Count {
		return c("freecount", "%d free inodes exceed %d allocated", a.FreeCount, a.Count)
	}
	first, last := AGInoRange(sb, agno)
	okIno := func(v uint32) bool { return v == NullAGIno || v >= first && v <= last }
	// newino and dirino are hints the kernel and xfs_repair ignore.
	for i, v := range a.Unlinked {
		if !okIno(v) {
			return c(fmt.Sprintf("unlinked[%d]", i), "AG inode %d outside %d..%d", v, first, last)
		}
	}
	if sb.HasInobtCnt() {
		if a.IBlocks == 0 || a.IBlocks > length {
			return c("ino_blocks", "%d inobt blocks, AG has %d", a.IBlocks, length)
		}
		if sb.HasFinobt() && (a.FBlocks == 0 || a.FBlocks > length) {
			return c("fino_blocks", "%d finobt blocks, AG has %d", a.FBlocks, length)
		}
	}
	return nil
}

// DecodeAGFL decodes the AGFL sector in buf; every whole 4-byte slot after
// the header becomes an entry of Bno.
func DecodeAGFL(buf []byte) (*AGFL, error) {
	if len(buf) < AGFLHdrSize {
		return nil, shortErr("AGFL", len(buf), AGFLHdrSize)
	}
	be := binary.BigEndian
	a := &AGFL{
		Magic: be.Uint32(buf[0:]),
		SeqNo: be.Uint32(buf[4:]),
		LSN:   be.Uint64(buf[24:]),
		CRC:   binary.LittleEndian.Uint32(buf[AGFLCRCOff:]),
	}
	copy(a.UUID[:], buf[8:24])
	n := (len(buf) - AGFLHdrSize) / 4
	a.Bno = make([]uint32, n)
	for i := range a.Bno {
		a.Bno[i] = be.Uint32(buf[AGFLHdrSize+4*i:])
	}
	return a, nil
}

// Encode writes the AGFL into buf (the whole sector, at least AGFLHdrSize +
// 4*len(Bno) bytes) and sets the CRC over buf.
func (a *AGFL) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], a.Magic)
	be.PutUint32(buf[4:], a.SeqNo)
	copy(buf[8:24], a.UUID[:])
	be.PutUint64(buf[24:], a.LSN)
	for i, v := range a.Bno {
		be.PutUint32(buf[AGFLHdrSize+4*i:], v)
	}
	SetCRC(buf, AGFLCRCOff)
	a.CRC = StoredCRC(buf, AGFLCRCOff)
}

// Verify checks the AGFL of AG agno: magic, sequence number, CRC (over the
// sector in buf; nil skips it), UUID, slot count, and that every slot holds
// NULL or a block of the AG after the headers.
func (a *AGFL) Verify(buf []byte, agno uint32, sb *Superblock) error {
	c := func(field, f string, args ...any) error { return Corrupt("AGFL", agWhere(agno), field, f, args...) }
	if err := verifyAGCommon(c, sb, agno, a.Magic, AGFLMagic, 0, false, a.SeqNo, 0, false, buf, AGFLCRCOff, a.UUID); err != nil {
		return err
	}
	if agno >= sb.AGCount {
		return c("seqno", "AG %d beyond the %d AGs of the filesystem", agno, sb.AGCount)
	}
	if want := AGFLSize(sb); len(a.Bno) != want {
		return c("bno", "%d slots, sector size %d gives %d", len(a.Bno), sb.SectSize, want)
	}
	length := sb.AGLength(agno)
	for i, b := range a.Bno {
		// The kernel only rejects slots past the AG; stale slots outside
		// flfirst..fllast may hold anything below that (FreeList checks the
		// active ones strictly).
		if b != NullAGBno && b >= length {
			return c(fmt.Sprintf("bno[%d]", i), "block %d outside AG blocks %d..%d", b, AGFLBlock(sb)+1, length-1)
		}
	}
	return nil
}

// FreeList returns the blocks on the free list described by agf, in list
// order (flfirst to fllast, wrapping), checking that each is a real block.
func (a *AGFL) FreeList(agf *AGF, agno uint32, sb *Superblock) ([]uint32, error) {
	c := func(field, f string, args ...any) error { return Corrupt("AGFL", agWhere(agno), field, f, args...) }
	size := len(a.Bno)
	if size == 0 || agf.FLFirst >= uint32(size) || agf.FLCount > uint32(size) {
		return nil, Corrupt("AGF", agWhere(agno), "flfirst", "free list %d+%d does not fit the %d-slot AGFL", agf.FLFirst, agf.FLCount, size)
	}
	length := sb.AGLength(agno)
	out := make([]uint32, 0, agf.FLCount)
	for k := uint32(0); k < agf.FLCount; k++ {
		i := (agf.FLFirst + k) % uint32(size)
		b := a.Bno[i]
		if b == NullAGBno {
			return nil, c(fmt.Sprintf("bno[%d]", i), "active free list slot (flfirst %d, flcount %d) is NULL", agf.FLFirst, agf.FLCount)
		}
		if b <= AGFLBlock(sb) || b >= length {
			return nil, c(fmt.Sprintf("bno[%d]", i), "active free list slot holds block %d, outside AG blocks %d..%d", b, AGFLBlock(sb)+1, length-1)
		}
		out = append(out, b)
	}
	return out, nil
}

// AGInoRange gives the first and last AG inode numbers that an inode chunk
// can occupy in AG agno: from the first inode-cluster-aligned block after
// the AG headers to the last aligned cluster that fits in the AG.
func AGInoRange(sb *Superblock, agno uint32) (first, last uint32) {
	align := uint64(ClusterAlign(sb))
	bno := (uint64(AGFLBlock(sb)) + 1 + align - 1) / align * align
	first = uint32(bno << sb.InoPBLog)
	eoag := uint64(sb.AGLength(agno)) / align * align
	if eoag<<sb.InoPBLog == 0 {
		return first, 0
	}
	return first, uint32(eoag<<sb.InoPBLog - 1)
}

// BlocksPerCluster is the number of blocks in one inode cluster buffer, the
// unit the kernel reads inodes in.
func BlocksPerCluster(sb *Superblock) uint32 {
	size := uint64(8192) // XFS_INODE_BIG_CLUSTER_SIZE
	if sb.IsV5() {
		if scaled := size * uint64(sb.InodeSize) / 256; uint64(sb.InoAlignMt) >= scaled>>sb.BlockLog {
			size = scaled
		}
	}
	if size > uint64(sb.BlockSize) {
		return uint32(size >> sb.BlockLog)
	}
	return 1
}

// ClusterAlign is the alignment, in blocks, of inode chunks.
func ClusterAlign(sb *Superblock) uint32 {
	if sb.VersionNum&SBVersionAlignBit != 0 && sb.InoAlignMt >= BlocksPerCluster(sb) && sb.InoAlignMt > 0 {
		return sb.InoAlignMt
	}
	return 1
}

// BtreeMaxLevels is the greatest height an AG B-tree of the given magic can
// have on this filesystem, computed as the kernel does from the minimum
// fanout and the most records the AG can hold.
func BtreeMaxLevels(sb *Superblock, magic uint32) int {
	var g BtreeGeometry
	switch magic {
	case BnobtMagic:
		g = BnobtGeom
	case CntbtMagic:
		g = CntbtGeom
	case InobtMagic:
		g = InobtGeom
	case FinobtMagic:
		g = FinobtGeom
	case RmapbtMagic:
		g = RmapbtGeom
	case RefcbtMagic:
		g = RefcbtGeom
	default:
		return maxBtreeLevel
	}
	bs := int(sb.BlockSize)
	limits := [2]uint64{uint64(g.MaxRecs(bs, true) / 2), uint64(g.MaxRecs(bs, false) / 2)}
	if limits[0] == 0 || limits[1] < 2 {
		return 1
	}
	var h int
	switch magic {
	case BnobtMagic, CntbtMagic:
		h = computeMaxLevels(limits, (uint64(sb.AGBlocks)+1)/2)
	case InobtMagic, FinobtMagic:
		h = computeMaxLevels(limits, (uint64(1)<<(sb.InoPBLog+sb.AGBlkLog))/InodesPerChunk)
	case RmapbtMagic:
		if sb.HasReflink() {
			h = spaceToHeight(limits, uint64(sb.AGBlocks))
		} else {
			h = computeMaxLevels(limits, uint64(sb.AGBlocks))
		}
	case RefcbtMagic:
		h = computeMaxLevels(limits, uint64(sb.AGBlocks))
	}
	if h > maxBtreeLevel {
		h = maxBtreeLevel
	}
	return h
}

func computeMaxLevels(limits [2]uint64, records uint64) int {
	blocks := (records + limits[0] - 1) / limits[0]
	h := 1
	for blocks > 1 {
		blocks = (blocks + limits[1] - 1) / limits[1]
		h++
	}
	return h
}

// spaceToHeight is the height of the tallest tree that fits in leafBlocks
// blocks; the root needs only two pointers.
func spaceToHeight(limits [2]uint64, leafBlocks uint64) int {
	if leafBlocks < 1 {
		return 0
	}
	node, left, h := uint64(2), leafBlocks-1, 1
	for node < left {
		left -= node
		node *= limits[1]
		h++
	}
	return h
}
