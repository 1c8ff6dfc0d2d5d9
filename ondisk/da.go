package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Magic numbers of blocks that start with a da3 block info header (16-bit,
// stored at byte 8).
const (
	DA3NodeMagic   = 0x3ebe // directory/attribute da-btree interior node
	Attr3LeafMagic = 0x3bee // attribute leaf
	Dir3Leaf1Magic = 0x3df1 // single leaf block of a leaf-form directory
	Dir3LeafNMagic = 0x3dff // leaf of a node-form directory
)

// da3 header layout.
const (
	DA3BlkInfoSize  = 56 // forw, back, magic, pad, crc, blkno, lsn, uuid, owner
	DA3CRCOff       = 12
	DA3NodeHdrSize  = 64 // blkinfo + count + level + pad
	DANodeEntrySize = 8
	DANodeMaxDepth  = 5 // XFS_DA_NODE_MAXDEPTH: levels of a da-btree, leaves included
)

// DAName names a da-block magic for messages.
func DAName(magic uint16) string {
	switch magic {
	case DA3NodeMagic:
		return "da3 node block"
	case Attr3LeafMagic:
		return "attr3 leaf block"
	case Dir3Leaf1Magic:
		return "dir3 leaf1 block"
	case Dir3LeafNMagic:
		return "dir3 leafn block"
	}
	return fmt.Sprintf("da block (magic 0x%04x)", magic)
}

// DA3BlkInfo is the header shared by da-btree nodes, directory leaves and
// attribute leaves. Forw and Back are sibling links as logical block numbers
// (filesystem blocks) in the owning fork; 0 means none.
type DA3BlkInfo struct {
	Forw  uint32
	Back  uint32
	Magic uint16
	Pad   uint16
	CRC   uint32
	Blkno uint64 // daddr of the first block of the buffer
	LSN   uint64
	UUID  UUID
	Owner uint64 // inode number
}

// DAMagic returns the 16-bit magic of a da block (0 if buf is too short).
func DAMagic(buf []byte) uint16 {
	if len(buf) < 10 {
		return 0
	}
	return binary.BigEndian.Uint16(buf[8:])
}

// DecodeDA3BlkInfo decodes the 56-byte header.
func DecodeDA3BlkInfo(buf []byte) (DA3BlkInfo, error) {
	var h DA3BlkInfo
	if len(buf) < DA3BlkInfoSize {
		return h, shortErr("da3 block header", len(buf), DA3BlkInfoSize)
	}
	be := binary.BigEndian
	h.Forw = be.Uint32(buf[0:])
	h.Back = be.Uint32(buf[4:])
	h.Magic = be.Uint16(buf[8:])
	h.Pad = be.Uint16(buf[10:])
	h.CRC = binary.LittleEndian.Uint32(buf[12:])
	h.Blkno = be.Uint64(buf[16:])
	h.LSN = be.Uint64(buf[24:])
	copy(h.UUID[:], buf[32:48])
	h.Owner = be.Uint64(buf[48:])
	return h, nil
}

// Encode writes the header except the CRC, which is computed over the whole
// block once its contents are final (SealDA3Block).
func (h *DA3BlkInfo) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Forw)
	be.PutUint32(buf[4:], h.Back)
	be.PutUint16(buf[8:], h.Magic)
	be.PutUint16(buf[10:], h.Pad)
	be.PutUint64(buf[16:], h.Blkno)
	be.PutUint64(buf[24:], h.LSN)
	copy(buf[32:48], h.UUID[:])
	be.PutUint64(buf[48:], h.Owner)
}

// SealDA3Block computes and stores the CRC of a whole da block.
func SealDA3Block(buf []byte) { SetCRC(buf, DA3CRCOff) }

// VerifyDA3BlkInfo checks magic, CRC over the whole buffer, UUID, self
// address and owner of a da block; structure and where name it in errors.
// Pass owner = ^uint64(0) to skip the owner check.
func VerifyDA3BlkInfo(buf []byte, magic uint16, uuid UUID, daddr, owner uint64, where string) (DA3BlkInfo, error) {
	structure := DAName(magic)
	if len(buf) < DA3BlkInfoSize {
		return DA3BlkInfo{}, Corrupt(structure, where, "", "block of %d bytes is shorter than its header", len(buf))
	}
	h, _ := DecodeDA3BlkInfo(buf)
	c := func(field, f string, a ...any) error { return Corrupt(structure, where, field, f, a...) }
	if h.Magic != magic {
		return h, c("magic", "bad magic 0x%04x, expected 0x%04x", h.Magic, magic)
	}
	if !CRCOK(buf, DA3CRCOff) {
		return h, c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(buf, DA3CRCOff), CRC32c(buf, DA3CRCOff))
	}
	if h.UUID != uuid {
		return h, c("uuid", "UUID %s does not match filesystem %s", h.UUID, uuid)
	}
	if h.Blkno != daddr {
		return h, c("blkno", "block claims daddr %d but was read from daddr %d", h.Blkno, daddr)
	}
	if owner != ^uint64(0) && h.Owner != owner {
		return h, c("owner", "owner %d, expected inode %d", h.Owner, owner)
	}
	return h, nil
}

// DANodeEntry is one key of a da-btree node: the largest hash in the
// subtree and the logical block (in the fork) of that subtree.
type DANodeEntry struct {
	Hashval uint32
	Before  uint32
}

// DA3Node is a decoded da-btree interior node.
type DA3Node struct {
	Info    DA3BlkInfo
	Count   uint16
	Level   uint16 // 1 for nodes whose children are leaves
	Pad     uint32
	Entries []DANodeEntry
}

// DA3NodeMaxEntries is how many entries fit in a node of blkSize bytes.
func DA3NodeMaxEntries(blkSize int) int { return (blkSize - DA3NodeHdrSize) / DANodeEntrySize }

// DecodeDA3Node decodes a node block; the entry count is bounds-checked
// against the buffer.
func DecodeDA3Node(buf []byte) (*DA3Node, error) {
	if len(buf) < DA3NodeHdrSize {
		return nil, shortErr("da3 node block", len(buf), DA3NodeHdrSize)
	}
	info, _ := DecodeDA3BlkInfo(buf)
	be := binary.BigEndian
	n := &DA3Node{Info: info, Count: be.Uint16(buf[56:]), Level: be.Uint16(buf[58:]), Pad: be.Uint32(buf[60:])}
	if int(n.Count) > DA3NodeMaxEntries(len(buf)) {
		return n, Corrupt("da3 node block", "", "count", "%d entries exceed the %d that fit in %d bytes", n.Count, DA3NodeMaxEntries(len(buf)), len(buf))
	}
	n.Entries = make([]DANodeEntry, n.Count)
	for i := range n.Entries {
		off := DA3NodeHdrSize + i*DANodeEntrySize
		n.Entries[i] = DANodeEntry{Hashval: be.Uint32(buf[off:]), Before: be.Uint32(buf[off+4:])}
	}
	return n, nil
}

// Encode writes the node into buf (a whole da block, zeroed beyond the
// entries) with Count taken from len(Entries), and seals the CRC.
func (n *DA3Node) Encode(buf []byte) error {
	if len(n.Entries) > DA3NodeMaxEntries(len(buf)) {
		return fmt.Errorf("da3 node: %d entries do not fit in %d bytes", len(n.Entries), len(buf))
	}
	clear(buf)
	n.Info.Magic = DA3NodeMagic
	n.Count = uint16(len(n.Entries))
	n.Info.Encode(buf)
	be := binary.BigEndian
	be.PutUint16(buf[56:], n.Count)
	be.PutUint16(buf[58:], n.Level)
	be.PutUint32(buf[60:], n.Pad)
	for i, e := range n.Entries {
		off := DA3NodeHdrSize + i*DANodeEntrySize
		be.PutUint32(buf[off:], e.Hashval)
		be.PutUint32(buf[off+4:], e.Before)
	}
	SealDA3Block(buf)
	n.Info.CRC = StoredCRC(buf, DA3CRCOff)
	return nil
}

// VerifyDA3Node checks the header (VerifyDA3BlkInfo), a level in 1..4, a
// non-zero count that fits, and keys in non-decreasing hash order.
func VerifyDA3Node(buf []byte, uuid UUID, daddr, owner uint64, where string) (*DA3Node, error) {
	if _, err := VerifyDA3BlkInfo(buf, DA3NodeMagic, uuid, daddr, owner, where); err != nil {
		return nil, err
	}
	n, err := DecodeDA3Node(buf)
	if err != nil {
		return nil, withWhere(err, where)
	}
	c := func(field, f string, a ...any) error { return Corrupt("da3 node block", where, field, f, a...) }
	if n.Level == 0 || n.Level >= DANodeMaxDepth {
		return n, c("level", "level %d outside 1..%d", n.Level, DANodeMaxDepth-1)
	}
	if n.Count == 0 {
		return n, c("count", "node has no entries")
	}
	for i := 1; i < len(n.Entries); i++ {
		if n.Entries[i].Hashval < n.Entries[i-1].Hashval {
			return n, c("btree", "entry %d hash 0x%08x below entry %d hash 0x%08x", i, n.Entries[i].Hashval, i-1, n.Entries[i-1].Hashval)
		}
	}
	return n, nil
}

// Lookup returns the index of the child to descend into for hash: the
// first entry whose key is >= hash, or the last entry when hash exceeds
// every key. Equal keys can span siblings, so callers continue along the
// leaf chain while the hash matches.
func (n *DA3Node) Lookup(hash uint32) int {
	lo, hi := 0, len(n.Entries)
	for lo < hi {
		m := (lo + hi) / 2
		if n.Entries[m].Hashval < hash {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(n.Entries) && lo > 0 {
		lo--
	}
	return lo
}

// withWhere fills in the location of a CorruptError produced by a decoder
// that did not know it.
func withWhere(err error, where string) error {
	if ce, ok := err.(*CorruptError); ok && ce.Where == "" {
		ce.Where = where
	}
	return err
}
