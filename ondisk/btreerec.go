package ondisk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Record and key sizes of the short-form AG B-trees.
const (
	AllocRecSize    = 8
	InobtRecSize    = 16
	InobtKeySize    = 4
	RmapRecSize     = 24
	RmapKeySize     = 20 // one key; node entries hold a low and a high key
	RefcountRecSize = 12
	RefcountKeySize = 4
)

// Special rmap owners (negative numbers as uint64 two's complement).
const (
	RmapOwnNull    = ^uint64(0) // -1: no owner (growfs)
	RmapOwnUnknown = ^uint64(1) // -2: unknown (log recovery)
	RmapOwnFS      = ^uint64(2) // -3: static metadata (headers)
	RmapOwnLog     = ^uint64(3) // -4: internal log
	RmapOwnAG      = ^uint64(4) // -5: free space B-trees and AGFL
	RmapOwnInobt   = ^uint64(5) // -6: inode B-trees
	RmapOwnInodes  = ^uint64(6) // -7: inode chunks
	RmapOwnRefc    = ^uint64(7) // -8: refcount B-tree
	RmapOwnCOW     = ^uint64(8) // -9: copy-on-write staging extents
	RmapOwnMin     = ^uint64(9) // -10: every special owner is above this
)

// Flags in the rmap offset field.
const (
	RmapOffAttrFork  = uint64(1) << 63
	RmapOffBmbtBlock = uint64(1) << 62
	RmapOffUnwritten = uint64(1) << 61
	RmapOffMask      = uint64(1)<<54 - 1 // logical offset bits
	RmapOffUnused    = ^(RmapOffMask | RmapOffAttrFork | RmapOffBmbtBlock | RmapOffUnwritten)
)

// RefcountCOWFlag marks copy-on-write staging records in startblock.
const RefcountCOWFlag = uint32(1) << 31

// RmapOwnerName names special owners ("FS", "LOG", ...) and returns "" for
// inode owners.
func RmapOwnerName(owner uint64) string {
	switch owner {
	case RmapOwnNull:
		return "NULL"
	case RmapOwnUnknown:
		return "UNKNOWN"
	case RmapOwnFS:
		return "FS"
	case RmapOwnLog:
		return "LOG"
	case RmapOwnAG:
		return "AG"
	case RmapOwnInobt:
		return "INOBT"
	case RmapOwnInodes:
		return "INODES"
	case RmapOwnRefc:
		return "REFC"
	case RmapOwnCOW:
		return "COW"
	}
	if owner > RmapOwnMin {
		return fmt.Sprintf("special(%d)", int64(owner))
	}
	return ""
}

// RmapNonInodeOwner reports an owner that is not an inode number.
func RmapNonInodeOwner(owner uint64) bool { return owner&(1<<63) != 0 }

// --- free space records (bnobt and cntbt; keys have the same layout) ---

// AllocRec is a free extent: a bnobt or cntbt record or key.
type AllocRec struct {
	StartBlock uint32
	BlockCount uint32
}

// AllocKey has the same layout as AllocRec.
type AllocKey = AllocRec

// DecodeAllocRec decodes an 8-byte free space record or key.
func DecodeAllocRec(b []byte) (AllocRec, error) {
	if len(b) < AllocRecSize {
		return AllocRec{}, shortErr("alloc record", len(b), AllocRecSize)
	}
	be := binary.BigEndian
	return AllocRec{be.Uint32(b), be.Uint32(b[4:])}, nil
}

// Encode writes the record into b (at least AllocRecSize bytes).
func (r AllocRec) Encode(b []byte) {
	binary.BigEndian.PutUint32(b, r.StartBlock)
	binary.BigEndian.PutUint32(b[4:], r.BlockCount)
}

// --- inode B-tree records (inobt and finobt) ---

// InobtRec describes one 64-inode chunk. On filesystems with sparse inodes
// every record uses the sparse form (holemask, count, 8-bit freecount);
// otherwise HoleMask is 0, Count is 64 and FreeCount is a 32-bit field.
type InobtRec struct {
	StartIno  uint32 // AG inode number of the first inode of the chunk
	HoleMask  uint16 // bit i set: inodes 4i..4i+3 are not allocated on disk
	Count     uint8  // inodes physically present (64 - 4*holes)
	FreeCount uint32 // free inodes among those present
	Free      uint64 // bit i set: inode i is free (holes are marked free)
	Sparse    bool   // decoded from / encodes to the sparse form
}

// InodesPerHolemaskBit is the number of inodes one holemask bit covers.
const InodesPerHolemaskBit = InodesPerChunk / 16

// DecodeInobtRec decodes a 16-byte inobt/finobt record; sparse selects the
// form (true when the superblock has the sparse inodes feature).
func DecodeInobtRec(b []byte, sparse bool) (InobtRec, error) {
	if len(b) < InobtRecSize {
		return InobtRec{}, shortErr("inobt record", len(b), InobtRecSize)
	}
	be := binary.BigEndian
	r := InobtRec{StartIno: be.Uint32(b), Free: be.Uint64(b[8:]), Sparse: sparse}
	if sparse {
		r.HoleMask = be.Uint16(b[4:])
		r.Count = b[6]
		r.FreeCount = uint32(b[7])
	} else {
		r.Count = InodesPerChunk
		r.FreeCount = be.Uint32(b[4:])
	}
	return r, nil
}

// Encode writes the record into b (at least InobtRecSize bytes) in the form
// given by r.Sparse.
func (r InobtRec) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b, r.StartIno)
	if r.Sparse {
		be.PutUint16(b[4:], r.HoleMask)
		b[6] = r.Count
		b[7] = uint8(r.FreeCount)
	} else {
		be.PutUint32(b[4:], r.FreeCount)
	}
	be.PutUint64(b[8:], r.Free)
}

// HoleInodes returns a 64-bit mask with a bit set for every inode of the
// chunk that lies in a sparse hole.
func (r InobtRec) HoleInodes() uint64 {
	var m uint64
	for i := 0; i < 16; i++ {
		if r.HoleMask&(1<<i) != 0 {
			m |= uint64(0xf) << (i * InodesPerHolemaskBit)
		}
	}
	return m
}

// AllocatedInodes returns a mask of the inodes in use: present and not free.
func (r InobtRec) AllocatedInodes() uint64 { return ^r.Free &^ r.HoleInodes() }

// IsHole reports whether inode i (0..63) of the chunk is in a sparse hole.
func (r InobtRec) IsHole(i int) bool {
	return i >= 0 && i < InodesPerChunk && r.HoleMask&(1<<(i/InodesPerHolemaskBit)) != 0
}

// IsFree reports whether inode i (0..63) is marked free.
func (r InobtRec) IsFree(i int) bool { return i >= 0 && i < InodesPerChunk && r.Free&(1<<i) != 0 }

// IsAllocated reports whether inode i (0..63) is in use.
func (r InobtRec) IsAllocated(i int) bool {
	return i >= 0 && i < InodesPerChunk && r.AllocatedInodes()&(1<<i) != 0
}

// PresentRuns returns the [start, end) inode index ranges of the chunk that
// exist on disk (not sparse holes), in increasing order.
func (r InobtRec) PresentRuns() [][2]int {
	var runs [][2]int
	start := -1
	for bit := 0; bit <= 16; bit++ {
		hole := bit == 16 || r.HoleMask&(1<<bit) != 0
		switch {
		case !hole && start < 0:
			start = bit * InodesPerHolemaskBit
		case hole && start >= 0:
			runs = append(runs, [2]int{start, bit * InodesPerHolemaskBit})
			start = -1
		}
	}
	return runs
}

// Verify checks the record's internal consistency and that the whole chunk
// lies in the inode range of AG agno, as the kernel does for every record.
func (r InobtRec) Verify(sb *Superblock, agno uint32, where string) error {
	c := func(field, f string, a ...any) error { return Corrupt("inobt record", where, field, f, a...) }
	first, last := AGInoRange(sb, agno)
	// Chunks start on an inode-cluster-aligned block, at a 64-inode
	// boundary inside it when a block holds more than 64 inodes.
	if step := min(uint32(InodesPerChunk), uint32(sb.InoPBlock)); step == 0 || r.StartIno%step != 0 ||
		(r.StartIno>>sb.InoPBLog)%ClusterAlign(sb) != 0 {
		return c("startino", "AG inode %d does not start an aligned inode chunk (alignment %d blocks)", r.StartIno, ClusterAlign(sb))
	}
	if r.StartIno < first || r.StartIno > last || uint64(r.StartIno)+InodesPerChunk-1 > uint64(last) {
		return c("startino", "chunk %d..%d outside AG inodes %d..%d", r.StartIno, uint64(r.StartIno)+InodesPerChunk-1, first, last)
	}
	if !r.Sparse && r.HoleMask != 0 {
		return c("holemask", "0x%04x on a filesystem without sparse inodes", r.HoleMask)
	}
	holes := bits.OnesCount16(r.HoleMask)
	if want := InodesPerChunk - holes*InodesPerHolemaskBit; int(r.Count) != want {
		return c("count", "%d inodes, holemask 0x%04x leaves %d", r.Count, r.HoleMask, want)
	}
	if r.Count < InodesPerHolemaskBit {
		return c("count", "%d inodes, minimum %d", r.Count, InodesPerHolemaskBit)
	}
	if r.FreeCount > InodesPerChunk {
		return c("freecount", "%d exceeds %d", r.FreeCount, InodesPerChunk)
	}
	if hm := r.HoleInodes(); r.Free&hm != hm {
		return c("free", "mask 0x%016x does not mark sparse holes 0x%016x free", r.Free, hm)
	}
	if n := bits.OnesCount64(r.Free &^ r.HoleInodes()); n != int(r.FreeCount) {
		return c("freecount", "%d, but the free mask 0x%016x marks %d present inodes free", r.FreeCount, r.Free, n)
	}
	return nil
}

// InobtKey is an inobt/finobt node key.
type InobtKey struct{ StartIno uint32 }

// DecodeInobtKey decodes a 4-byte inode B-tree key.
func DecodeInobtKey(b []byte) (InobtKey, error) {
	if len(b) < InobtKeySize {
		return InobtKey{}, shortErr("inobt key", len(b), InobtKeySize)
	}
	return InobtKey{binary.BigEndian.Uint32(b)}, nil
}

// Encode writes the key into b.
func (k InobtKey) Encode(b []byte) { binary.BigEndian.PutUint32(b, k.StartIno) }

// --- reverse mapping records ---

// RmapRec maps an AG extent to its owner.
type RmapRec struct {
	StartBlock uint32
	BlockCount uint32
	Owner      uint64 // inode number or one of RmapOwn*
	Offset     uint64 // logical offset in the owner's fork (54 bits)
	AttrFork   bool
	BmbtBlock  bool
	Unwritten  bool
	Unused     uint64 // offset bits 54..60 as found; must be zero
}

// DecodeRmapRec decodes a 24-byte rmap record.
func DecodeRmapRec(b []byte) (RmapRec, error) {
	if len(b) < RmapRecSize {
		return RmapRec{}, shortErr("rmap record", len(b), RmapRecSize)
	}
	be := binary.BigEndian
	r := RmapRec{StartBlock: be.Uint32(b), BlockCount: be.Uint32(b[4:]), Owner: be.Uint64(b[8:])}
	r.setOffset(be.Uint64(b[16:]))
	return r, nil
}

func (r *RmapRec) setOffset(off uint64) {
	r.Offset = off & RmapOffMask
	r.AttrFork = off&RmapOffAttrFork != 0
	r.BmbtBlock = off&RmapOffBmbtBlock != 0
	r.Unwritten = off&RmapOffUnwritten != 0
	r.Unused = off & RmapOffUnused
}

// RawOffset is the on-disk offset field with its flags.
func (r RmapRec) RawOffset() uint64 {
	off := r.Offset&RmapOffMask | r.Unused&RmapOffUnused
	if r.AttrFork {
		off |= RmapOffAttrFork
	}
	if r.BmbtBlock {
		off |= RmapOffBmbtBlock
	}
	if r.Unwritten {
		off |= RmapOffUnwritten
	}
	return off
}

// Encode writes the record into b (at least RmapRecSize bytes).
func (r RmapRec) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b, r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
	be.PutUint64(b[8:], r.Owner)
	be.PutUint64(b[16:], r.RawOffset())
}

// LowKey is the key under which the record is filed.
func (r RmapRec) LowKey() RmapKey {
	return RmapKey{StartBlock: r.StartBlock, Owner: r.Owner, Offset: r.Offset, AttrFork: r.AttrFork, BmbtBlock: r.BmbtBlock, Unused: r.Unused}
}

// HighKey is the highest key the record covers: the last block and, for
// file data mappings, the last logical offset.
func (r RmapRec) HighKey() RmapKey {
	k := r.LowKey()
	if r.BlockCount == 0 {
		return k
	}
	adj := r.BlockCount - 1
	k.StartBlock += adj
	if !RmapNonInodeOwner(r.Owner) && !r.BmbtBlock {
		k.Offset = (k.Offset + uint64(adj)) & RmapOffMask
	}
	return k
}

// Verify checks flag combinations and extent bounds against an AG of
// length blocks.
func (r RmapRec) Verify(length uint32, where string) error {
	c := func(field, f string, a ...any) error { return Corrupt("rmap record", where, field, f, a...) }
	if r.BlockCount == 0 {
		return c("blockcount", "zero-length extent at block %d", r.StartBlock)
	}
	if uint64(r.StartBlock)+uint64(r.BlockCount) > uint64(length) {
		return c("startblock", "extent %d+%d runs past AG end %d", r.StartBlock, r.BlockCount, length)
	}
	if r.Unused != 0 {
		return c("offset", "reserved offset bits set (0x%x)", r.Unused)
	}
	if RmapNonInodeOwner(r.Owner) {
		if r.Owner <= RmapOwnMin {
			return c("owner", "invalid special owner %d", int64(r.Owner))
		}
		if r.Offset != 0 || r.AttrFork || r.BmbtBlock || r.Unwritten {
			return c("offset", "special owner %s with offset %d or flags set", RmapOwnerName(r.Owner), r.Offset)
		}
	}
	if r.BmbtBlock && (r.Offset != 0 || r.Unwritten) {
		return c("offset", "bmbt block mapping with offset %d or unwritten flag", r.Offset)
	}
	if r.AttrFork && r.Unwritten {
		return c("offset", "unwritten attribute fork extent")
	}
	if uint64(r.Offset)+uint64(r.BlockCount) > RmapOffMask+1 {
		return c("offset", "offset %d+%d overflows 54 bits", r.Offset, r.BlockCount)
	}
	return nil
}

// String gives a short form for messages.
func (r RmapRec) String() string {
	owner := RmapOwnerName(r.Owner)
	if owner == "" {
		owner = fmt.Sprintf("ino %d", r.Owner)
	}
	s := fmt.Sprintf("[%d+%d %s off %d", r.StartBlock, r.BlockCount, owner, r.Offset)
	if r.AttrFork {
		s += " attr"
	}
	if r.BmbtBlock {
		s += " bmbt"
	}
	if r.Unwritten {
		s += " unwritten"
	}
	return s + "]"
}

// RmapKey is one rmap B-tree key (node entries carry a low and a high key).
// The unwritten flag is not part of a key.
type RmapKey struct {
	StartBlock uint32
	Owner      uint64
	Offset     uint64
	AttrFork   bool
	BmbtBlock  bool
	Unused     uint64 // offset bits 54..60 and the unwritten bit as found
}

// DecodeRmapKey decodes a 20-byte rmap key.
func DecodeRmapKey(b []byte) (RmapKey, error) {
	if len(b) < RmapKeySize {
		return RmapKey{}, shortErr("rmap key", len(b), RmapKeySize)
	}
	be := binary.BigEndian
	off := be.Uint64(b[12:])
	return RmapKey{
		StartBlock: be.Uint32(b),
		Owner:      be.Uint64(b[4:]),
		Offset:     off & RmapOffMask,
		AttrFork:   off&RmapOffAttrFork != 0,
		BmbtBlock:  off&RmapOffBmbtBlock != 0,
		Unused:     off & (RmapOffUnused | RmapOffUnwritten),
	}, nil
}

// RawOffset is the on-disk offset field of the key.
func (k RmapKey) RawOffset() uint64 {
	off := k.Offset&RmapOffMask | k.Unused&(RmapOffUnused|RmapOffUnwritten)
	if k.AttrFork {
		off |= RmapOffAttrFork
	}
	if k.BmbtBlock {
		off |= RmapOffBmbtBlock
	}
	return off
}

// Encode writes the key into b (at least RmapKeySize bytes).
func (k RmapKey) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b, k.StartBlock)
	be.PutUint64(b[4:], k.Owner)
	be.PutUint64(b[12:], k.RawOffset())
}

// Compare orders keys as the kernel does: by start block, owner, then the
// offset field including the fork and bmbt flags (but not unwritten).
func (k RmapKey) Compare(o RmapKey) int {
	switch {
	case k.StartBlock != o.StartBlock:
		return cmp32(k.StartBlock, o.StartBlock)
	case k.Owner != o.Owner:
		return cmp64(k.Owner, o.Owner)
	}
	return cmp64(k.RawOffset()&^RmapOffUnwritten, o.RawOffset()&^RmapOffUnwritten)
}

// DecodeRmapKeyPair decodes a node entry's low and high keys (40 bytes).
func DecodeRmapKeyPair(b []byte) (lo, hi RmapKey, err error) {
	if len(b) < 2*RmapKeySize {
		return lo, hi, shortErr("rmap key pair", len(b), 2*RmapKeySize)
	}
	lo, _ = DecodeRmapKey(b)
	hi, _ = DecodeRmapKey(b[RmapKeySize:])
	return lo, hi, nil
}

// --- reference count records ---

// RefcountRec counts the owners of a shared extent, or marks a COW staging
// extent (COW set, RefCount 1).
type RefcountRec struct {
	StartBlock uint32 // without the COW flag
	COW        bool
	BlockCount uint32
	RefCount   uint32
}

// DecodeRefcountRec decodes a 12-byte refcount record.
func DecodeRefcountRec(b []byte) (RefcountRec, error) {
	if len(b) < RefcountRecSize {
		return RefcountRec{}, shortErr("refcount record", len(b), RefcountRecSize)
	}
	be := binary.BigEndian
	sb := be.Uint32(b)
	return RefcountRec{StartBlock: sb &^ RefcountCOWFlag, COW: sb&RefcountCOWFlag != 0,
		BlockCount: be.Uint32(b[4:]), RefCount: be.Uint32(b[8:])}, nil
}

// Encode writes the record into b (at least RefcountRecSize bytes).
func (r RefcountRec) Encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b, RefcountKey{r.StartBlock, r.COW}.raw())
	be.PutUint32(b[4:], r.BlockCount)
	be.PutUint32(b[8:], r.RefCount)
}

// Verify checks the record against an AG of length blocks.
func (r RefcountRec) Verify(length uint32, where string) error {
	c := func(field, f string, a ...any) error { return Corrupt("refcount record", where, field, f, a...) }
	if r.BlockCount == 0 {
		return c("blockcount", "zero-length extent at block %d", r.StartBlock)
	}
	if uint64(r.StartBlock)+uint64(r.BlockCount) > uint64(length) {
		return c("startblock", "extent %d+%d runs past AG end %d", r.StartBlock, r.BlockCount, length)
	}
	if r.COW && r.RefCount != 1 {
		return c("refcount", "COW staging extent with refcount %d (must be 1)", r.RefCount)
	}
	if !r.COW && r.RefCount < 2 {
		return c("refcount", "shared extent with refcount %d (must be at least 2)", r.RefCount)
	}
	return nil
}

// RefcountKey is a refcount B-tree key: start block and COW domain.
type RefcountKey struct {
	StartBlock uint32
	COW        bool
}

func (k RefcountKey) raw() uint32 {
	if k.COW {
		return k.StartBlock | RefcountCOWFlag
	}
	return k.StartBlock
}

// DecodeRefcountKey decodes a 4-byte refcount key.
func DecodeRefcountKey(b []byte) (RefcountKey, error) {
	if len(b) < RefcountKeySize {
		return RefcountKey{}, shortErr("refcount key", len(b), RefcountKeySize)
	}
	v := binary.BigEndian.Uint32(b)
	return RefcountKey{v &^ RefcountCOWFlag, v&RefcountCOWFlag != 0}, nil
}

// Encode writes the key into b.
func (k RefcountKey) Encode(b []byte) { binary.BigEndian.PutUint32(b, k.raw()) }

// --- generic ordering, for B-tree walkers and checkers ---

func cmp32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmp64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// BtreeLowKeySize is the size of one (low) key of the short-form AG B-tree
// with this magic: the key a record is filed under. 0 for unknown magics.
func BtreeLowKeySize(magic uint32) int {
	switch magic {
	case BnobtMagic, CntbtMagic:
		return AllocRecSize
	case InobtMagic, FinobtMagic:
		return InobtKeySize
	case RmapbtMagic:
		return RmapKeySize
	case RefcbtMagic:
		return RefcountKeySize
	}
	return 0
}

// BtreeOverlapping reports trees whose node entries carry high keys too.
func BtreeOverlapping(magic uint32) bool { return magic == RmapbtMagic }

// BtreeRecKey writes into key the low key (high=false) or high key of the
// record rec of the tree with this magic. key must hold BtreeLowKeySize
// bytes; rec must hold the record. Only rmap records have distinct high keys.
func BtreeRecKey(magic uint32, rec, key []byte, high bool) error {
	ks := BtreeLowKeySize(magic)
	if ks == 0 {
		return fmt.Errorf("no record layout for %s", BtreeName(magic))
	}
	if len(key) < ks {
		return shortErr(BtreeName(magic)+" key", len(key), ks)
	}
	switch magic {
	case RmapbtMagic:
		r, err := DecodeRmapRec(rec)
		if err != nil {
			return err
		}
		k := r.LowKey()
		if high {
			k = r.HighKey()
		}
		k.Encode(key)
		return nil
	}
	if len(rec) < ks {
		return shortErr(BtreeName(magic)+" record", len(rec), ks)
	}
	copy(key, rec[:ks])
	return nil
}

// CompareBtreeKeys orders two (low) keys of the tree with this magic the way
// the kernel does. Both must hold BtreeLowKeySize(magic) bytes.
func CompareBtreeKeys(magic uint32, a, b []byte) int {
	be := binary.BigEndian
	ks := BtreeLowKeySize(magic)
	if ks == 0 || len(a) < ks || len(b) < ks {
		return 0
	}
	switch magic {
	case BnobtMagic, InobtMagic, FinobtMagic, RefcbtMagic:
		return cmp32(be.Uint32(a), be.Uint32(b))
	case CntbtMagic:
		if c := cmp32(be.Uint32(a[4:]), be.Uint32(b[4:])); c != 0 {
			return c
		}
		return cmp32(be.Uint32(a), be.Uint32(b))
	case RmapbtMagic:
		ka, _ := DecodeRmapKey(a)
		kb, _ := DecodeRmapKey(b)
		return ka.Compare(kb)
	}
	return 0
}

// BtreeKeysInOrder reports whether node key a may precede key b at the same
// level: strictly increasing, except that the rmapbt allows equal keys.
func BtreeKeysInOrder(magic uint32, a, b []byte) bool {
	c := CompareBtreeKeys(magic, a, b)
	if magic == RmapbtMagic {
		return c <= 0
	}
	return c < 0
}

// BtreeRecsInOrder reports whether record a may precede record b, with the
// kernel's rules: free extents, inode chunks and refcount extents must not
// overlap; cntbt sorts by (length, start); rmaps by their keys.
func BtreeRecsInOrder(magic uint32, a, b []byte) bool {
	be := binary.BigEndian
	rs := 0
	switch magic {
	case BnobtMagic, CntbtMagic:
		rs = AllocRecSize
	case InobtMagic, FinobtMagic:
		rs = InobtRecSize
	case RmapbtMagic:
		rs = RmapRecSize
	case RefcbtMagic:
		rs = RefcountRecSize
	}
	if rs == 0 || len(a) < rs || len(b) < rs {
		return false
	}
	switch magic {
	case BnobtMagic:
		return uint64(be.Uint32(a))+uint64(be.Uint32(a[4:])) <= uint64(be.Uint32(b))
	case RefcbtMagic:
		// The COW flag is the top bit of startblock, so COW staging extents
		// sort after all shared extents.
		return uint64(be.Uint32(a))+uint64(be.Uint32(a[4:])) <= uint64(be.Uint32(b))
	case InobtMagic, FinobtMagic:
		return uint64(be.Uint32(a))+InodesPerChunk <= uint64(be.Uint32(b))
	case CntbtMagic:
		return CompareBtreeKeys(magic, a, b) < 0
	case RmapbtMagic:
		ra, _ := DecodeRmapRec(a)
		rb, _ := DecodeRmapRec(b)
		return ra.LowKey().Compare(rb.LowKey()) <= 0
	}
	return false
}
