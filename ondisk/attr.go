package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Attribute entry flags (shortform entries and leaf entries).
const (
	AttrLocal      = 1 << 0 // leaf: value stored in the leaf block
	AttrRoot       = 1 << 1 // trusted namespace
	AttrSecure     = 1 << 2 // security namespace
	AttrParent     = 1 << 3 // parent pointer (private namespace)
	AttrIncomplete = 1 << 7 // leaf: being created or removed; not visible
	AttrNSMask     = AttrRoot | AttrSecure | AttrParent
	AttrOnDiskMask = AttrNSMask | AttrLocal | AttrIncomplete
)

// Attribute layout constants.
const (
	AttrSFHdrSize      = 4 // totsize, count, pad
	AttrSFEntHdrSize   = 3 // namelen, valuelen, flags
	Attr3LeafHdrSize   = 80
	Attr3LeafCRCOff    = DA3CRCOff
	AttrLeafEntrySize  = 8
	AttrLeafMapSize    = 3
	AttrLeafNameAlign  = 4
	Attr3LeafNullOff   = 0          // firstused on disk for an empty 64 KiB block
	Attr3RmtMagic      = 0x5841524d // "XARM"
	Attr3RmtHdrSize    = 56
	Attr3RmtCRCOff     = 12
	AttrMaxValueSize   = 65536 // XFS_XATTR_SIZE_MAX
	AttrMaxNameLen     = 255
	attrLocalFixedSize = 3 // valuelen(2) + namelen(1)
	attrRmtFixedSize   = 9 // valueblk(4) + valuelen(4) + namelen(1)
)

// Names under which XFS stores POSIX ACLs (trusted namespace). Linux shows
// them as system.posix_acl_access and system.posix_acl_default, converting
// the value to its own format (see PosixACLXattr).
const (
	SGIACLFile    = "SGI_ACL_FILE"
	SGIACLDefault = "SGI_ACL_DEFAULT"
)

// AttrNamespace is the namespace flag bits of an attribute.
type AttrNamespace uint8

const (
	NSUser     AttrNamespace = 0
	NSTrusted  AttrNamespace = AttrRoot
	NSSecurity AttrNamespace = AttrSecure
	NSParent   AttrNamespace = AttrParent
)

// AttrNamespaceOf extracts the namespace from entry flags.
func AttrNamespaceOf(flags uint8) AttrNamespace { return AttrNamespace(flags & AttrNSMask) }

// Valid reports at most one namespace bit.
func (ns AttrNamespace) Valid() bool { return ns&(ns-1) == 0 && ns&^AttrNSMask == 0 }

// String is the Linux prefix without the dot: user, trusted, security.
func (ns AttrNamespace) String() string {
	switch ns {
	case NSUser:
		return "user"
	case NSTrusted:
		return "trusted"
	case NSSecurity:
		return "security"
	case NSParent:
		return "parent"
	}
	return fmt.Sprintf("namespace(0x%x)", uint8(ns))
}

// LinuxXattrName is the name Linux uses for an attribute: "user.", "trusted."
// or "security." prefixed. ACLs keep their raw trusted name here; use
// LinuxACLName for the system.posix_acl_* form.
func LinuxXattrName(ns AttrNamespace, name []byte) string { return ns.String() + "." + string(name) }

// LinuxACLName maps the stored ACL attributes to their Linux names.
func LinuxACLName(ns AttrNamespace, name []byte) (string, bool) {
	if ns != NSTrusted {
		return "", false
	}
	switch string(name) {
	case SGIACLFile:
		return "system.posix_acl_access", true
	case SGIACLDefault:
		return "system.posix_acl_default", true
	}
	return "", false
}

// AttrLeafEntSizeLocal is the 4-aligned size of a local name/value struct.
func AttrLeafEntSizeLocal(namelen, valuelen int) int {
	return (attrLocalFixedSize + namelen + valuelen + AttrLeafNameAlign - 1) &^ (AttrLeafNameAlign - 1)
}

// AttrLeafEntSizeRemote is the 4-aligned size of a remote name struct
// (historically sized from a 12-byte struct, hence the +2).
func AttrLeafEntSizeRemote(namelen int) int {
	return (attrRmtFixedSize + 2 + namelen + AttrLeafNameAlign - 1) &^ (AttrLeafNameAlign - 1)
}

// AttrRmtBlocks is the number of filesystem blocks a remote value of
// valueLen bytes occupies; every block carries its own header.
func AttrRmtBlocks(blockSize, valueLen int) int {
	per := blockSize - Attr3RmtHdrSize
	if per <= 0 {
		return 0
	}
	return (valueLen + per - 1) / per
}

// ---------------------------------------------------------------------------
// Shortform (in-inode) attributes.

// AttrSFEntry is one shortform attribute; Name and Value alias the buffer.
type AttrSFEntry struct {
	Flags uint8
	Name  []byte
	Value []byte
}

// AttrSF is a decoded shortform attribute fork.
type AttrSF struct {
	TotSize uint16 // header plus entries, in bytes
	Count   uint8
	Pad     uint8
	Entries []AttrSFEntry
	Size    int // bytes the entries actually occupy, header included
}

// DecodeAttrSF decodes a shortform attribute fork from the attr fork area
// of an inode (at least TotSize bytes).
func DecodeAttrSF(buf []byte) (*AttrSF, error) {
	const st = "shortform attributes"
	if len(buf) < AttrSFHdrSize {
		return nil, shortErr(st, len(buf), AttrSFHdrSize)
	}
	a := &AttrSF{TotSize: binary.BigEndian.Uint16(buf), Count: buf[2], Pad: buf[3]}
	if int(a.TotSize) > len(buf) || a.TotSize < AttrSFHdrSize {
		return a, Corrupt(st, "", "totsize", "%d outside %d..%d (the attr fork)", a.TotSize, AttrSFHdrSize, len(buf))
	}
	buf = buf[:a.TotSize]
	p := AttrSFHdrSize
	a.Entries = make([]AttrSFEntry, 0, a.Count)
	for i := 0; i < int(a.Count); i++ {
		if p+AttrSFEntHdrSize > len(buf) {
			return a, Corrupt(st, "", "entry", "entry %d at byte %d runs past totsize %d", i, p, a.TotSize)
		}
		nl, vl := int(buf[p]), int(buf[p+1])
		end := p + AttrSFEntHdrSize + nl + vl
		if end > len(buf) {
			return a, Corrupt(st, "", "entry", "entry %d (name %d, value %d bytes) at byte %d runs past totsize %d", i, nl, vl, p, a.TotSize)
		}
		q := p + AttrSFEntHdrSize
		a.Entries = append(a.Entries, AttrSFEntry{Flags: buf[p+2], Name: buf[q : q+nl], Value: buf[q+nl : end]})
		p = end
	}
	a.Size = p
	return a, nil
}

// VerifyAttrSF decodes and checks a shortform attribute fork: entries fill
// totsize exactly, names are non-empty, and flags hold one known namespace
// and nothing else.
func VerifyAttrSF(buf []byte, where string) (*AttrSF, error) {
	a, err := DecodeAttrSF(buf)
	if err != nil {
		return a, withWhere(err, where)
	}
	c := func(field, f string, x ...any) error { return Corrupt("shortform attributes", where, field, f, x...) }
	for i, e := range a.Entries {
		if len(e.Name) == 0 {
			return a, c("namelen", "entry %d has an empty name", i)
		}
		if e.Flags&^AttrNSMask != 0 || !AttrNamespaceOf(e.Flags).Valid() {
			return a, c("flags", "entry %d %q has flags 0x%02x", i, e.Name, e.Flags)
		}
	}
	if a.Size != int(a.TotSize) {
		return a, c("totsize", "%d, but entries end at byte %d", a.TotSize, a.Size)
	}
	return a, nil
}

// EncodedSize is the number of bytes Encode writes.
func (a *AttrSF) EncodedSize() int {
	n := AttrSFHdrSize
	for _, e := range a.Entries {
		n += AttrSFEntHdrSize + len(e.Name) + len(e.Value)
	}
	return n
}

// Encode writes the fork into buf, setting TotSize, Count and Size, and
// returns the bytes written.
func (a *AttrSF) Encode(buf []byte) (int, error) {
	n := a.EncodedSize()
	if n > len(buf) || n > 0xffff || len(a.Entries) > 255 {
		return 0, fmt.Errorf("shortform attributes: %d entries in %d bytes do not fit in %d", len(a.Entries), n, len(buf))
	}
	a.TotSize, a.Count = uint16(n), uint8(len(a.Entries))
	binary.BigEndian.PutUint16(buf, a.TotSize)
	buf[2], buf[3] = a.Count, a.Pad
	p := AttrSFHdrSize
	for _, e := range a.Entries {
		if len(e.Name) > 255 || len(e.Value) > 255 {
			return 0, fmt.Errorf("shortform attributes: %q: name %d / value %d bytes exceed 255", e.Name, len(e.Name), len(e.Value))
		}
		buf[p], buf[p+1], buf[p+2] = uint8(len(e.Name)), uint8(len(e.Value)), e.Flags
		p += AttrSFEntHdrSize
		p += copy(buf[p:], e.Name)
		p += copy(buf[p:], e.Value)
	}
	a.Size = p
	return p, nil
}

// ---------------------------------------------------------------------------
// Leaf blocks.

// AttrLeafMap is a free region of a leaf block.
type AttrLeafMap struct {
	Base uint16
	Size uint16
}

// Attr3LeafHdr is the 80-byte attr3 leaf header. FirstUsed is widened so a
// 64 KiB block's "whole block" value fits (stored on disk as 0).
type Attr3LeafHdr struct {
	Info      DA3BlkInfo
	Count     uint16
	UsedBytes uint16
	FirstUsed uint32
	Holes     uint8
	Pad1      uint8
	FreeMap   [AttrLeafMapSize]AttrLeafMap
	Pad2      uint32
}

// AttrLeafEntry is a leaf entry with its name struct resolved.
type AttrLeafEntry struct {
	Hashval uint32
	NameIdx uint16 // offset of the name struct in the block
	Flags   uint8
	Pad2    uint8
	Name    []byte // aliases the block
	Value   []byte // local values only; aliases the block
	// Remote values: first logical block in the attr fork and length.
	// For local values ValueLen is len(Value).
	ValueBlk uint32
	ValueLen uint32
}

// IsLocal reports a value stored inside the leaf.
func (e *AttrLeafEntry) IsLocal() bool { return e.Flags&AttrLocal != 0 }

// EntSize is the size of the entry's name struct.
func (e *AttrLeafEntry) EntSize() int {
	if e.IsLocal() {
		return AttrLeafEntSizeLocal(len(e.Name), len(e.Value))
	}
	return AttrLeafEntSizeRemote(len(e.Name))
}

// Attr3Leaf is a decoded attr3 leaf block.
type Attr3Leaf struct {
	Hdr     Attr3LeafHdr
	Entries []AttrLeafEntry
}

// DecodeAttr3Leaf decodes a whole attr3 leaf block; every name struct is
// bounds-checked against the block.
func DecodeAttr3Leaf(buf []byte) (*Attr3Leaf, error) {
	const st = "attr3 leaf block"
	if len(buf) < Attr3LeafHdrSize {
		return nil, shortErr(st, len(buf), Attr3LeafHdrSize)
	}
	be := binary.BigEndian
	info, _ := DecodeDA3BlkInfo(buf)
	h := Attr3LeafHdr{Info: info, Count: be.Uint16(buf[56:]), UsedBytes: be.Uint16(buf[58:]),
		FirstUsed: uint32(be.Uint16(buf[60:])), Holes: buf[62], Pad1: buf[63], Pad2: be.Uint32(buf[76:])}
	for i := range h.FreeMap {
		h.FreeMap[i] = AttrLeafMap{be.Uint16(buf[64+4*i:]), be.Uint16(buf[66+4*i:])}
	}
	if h.FirstUsed == Attr3LeafNullOff && len(buf) > 0xffff {
		h.FirstUsed = uint32(len(buf))
	}
	l := &Attr3Leaf{Hdr: h}
	if Attr3LeafHdrSize+int(h.Count)*AttrLeafEntrySize > len(buf) {
		return l, Corrupt(st, "", "count", "%d entries do not fit in a %d-byte block", h.Count, len(buf))
	}
	l.Entries = make([]AttrLeafEntry, h.Count)
	for i := range l.Entries {
		o := Attr3LeafHdrSize + i*AttrLeafEntrySize
		e := AttrLeafEntry{Hashval: be.Uint32(buf[o:]), NameIdx: be.Uint16(buf[o+4:]), Flags: buf[o+6], Pad2: buf[o+7]}
		n := int(e.NameIdx)
		if e.IsLocal() {
			if n+attrLocalFixedSize > len(buf) {
				return l, Corrupt(st, "", "nameidx", "entry %d name struct at %d lies outside the block", i, n)
			}
			vl, nl := int(be.Uint16(buf[n:])), int(buf[n+2])
			end := n + attrLocalFixedSize + nl + vl
			if end > len(buf) {
				return l, Corrupt(st, "", "nameidx", "entry %d local name/value at %d (%d+%d bytes) runs past the block", i, n, nl, vl)
			}
			e.Name = buf[n+3 : n+3+nl]
			e.Value = buf[n+3+nl : end]
			e.ValueLen = uint32(vl)
		} else {
			if n+attrRmtFixedSize > len(buf) {
				return l, Corrupt(st, "", "nameidx", "entry %d name struct at %d lies outside the block", i, n)
			}
			nl := int(buf[n+8])
			if n+attrRmtFixedSize+nl > len(buf) {
				return l, Corrupt(st, "", "nameidx", "entry %d remote name at %d (%d bytes) runs past the block", i, n, nl)
			}
			e.ValueBlk, e.ValueLen = be.Uint32(buf[n:]), be.Uint32(buf[n+4:])
			e.Name = buf[n+9 : n+9+nl]
		}
		l.Entries[i] = e
	}
	return l, nil
}

// Encode writes the leaf into buf (a whole block): header with Count from
// len(Entries), entries, and each name struct at its NameIdx; bytes not
// covered are zeroed and the CRC is sealed.
func (l *Attr3Leaf) Encode(buf []byte) error {
	const st = "attr3 leaf block"
	if Attr3LeafHdrSize+len(l.Entries)*AttrLeafEntrySize > len(buf) {
		return fmt.Errorf("%s: %d entries do not fit in %d bytes", st, len(l.Entries), len(buf))
	}
	clear(buf)
	h := &l.Hdr
	h.Info.Magic = Attr3LeafMagic
	h.Count = uint16(len(l.Entries))
	h.Info.Encode(buf)
	be := binary.BigEndian
	be.PutUint16(buf[56:], h.Count)
	be.PutUint16(buf[58:], h.UsedBytes)
	fu := h.FirstUsed
	if fu > 0xffff {
		fu = Attr3LeafNullOff
	}
	be.PutUint16(buf[60:], uint16(fu))
	buf[62], buf[63] = h.Holes, h.Pad1
	for i, m := range h.FreeMap {
		be.PutUint16(buf[64+4*i:], m.Base)
		be.PutUint16(buf[66+4*i:], m.Size)
	}
	be.PutUint32(buf[76:], h.Pad2)
	for i, e := range l.Entries {
		o := Attr3LeafHdrSize + i*AttrLeafEntrySize
		be.PutUint32(buf[o:], e.Hashval)
		be.PutUint16(buf[o+4:], e.NameIdx)
		buf[o+6], buf[o+7] = e.Flags, e.Pad2
		n := int(e.NameIdx)
		if len(e.Name) > AttrMaxNameLen || n < Attr3LeafHdrSize || n+e.EntSize() > len(buf) {
			return fmt.Errorf("%s: entry %d %q at %d does not fit", st, i, e.Name, n)
		}
		if e.IsLocal() {
			be.PutUint16(buf[n:], uint16(len(e.Value)))
			buf[n+2] = uint8(len(e.Name))
			copy(buf[n+3+copy(buf[n+3:], e.Name):], e.Value)
		} else {
			be.PutUint32(buf[n:], e.ValueBlk)
			be.PutUint32(buf[n+4:], e.ValueLen)
			buf[n+8] = uint8(len(e.Name))
			copy(buf[n+9:], e.Name)
		}
	}
	SealDA3Block(buf)
	h.Info.CRC = StoredCRC(buf, DA3CRCOff)
	return nil
}

// VerifyAttr3Leaf checks an attr3 leaf block: header identity and CRC;
// firstused between the entry table and the block end; entries in hash
// order, each hash matching its name, name structs inside the name area,
// non-empty names, known flags with one namespace, remote values with a
// block unless incomplete and a length within the limit; usedbytes equal
// to the name structs' total; and aligned free map regions in the block.
func VerifyAttr3Leaf(buf []byte, uuid UUID, daddr, owner uint64, where string) (*Attr3Leaf, error) {
	if _, err := VerifyDA3BlkInfo(buf, Attr3LeafMagic, uuid, daddr, owner, where); err != nil {
		return nil, err
	}
	l, err := DecodeAttr3Leaf(buf)
	if err != nil {
		return l, withWhere(err, where)
	}
	c := func(field, f string, a ...any) error { return Corrupt("attr3 leaf block", where, field, f, a...) }
	h := &l.Hdr
	blk := uint32(len(buf))
	if h.FirstUsed > blk || h.FirstUsed < uint32(Attr3LeafHdrSize+int(h.Count)*AttrLeafEntrySize) {
		return l, c("firstused", "%d outside %d..%d", h.FirstUsed, Attr3LeafHdrSize+int(h.Count)*AttrLeafEntrySize, blk)
	}
	used := 0
	for i := range l.Entries {
		e := &l.Entries[i]
		if i > 0 && e.Hashval < l.Entries[i-1].Hashval {
			return l, c("entries", "entry %d hash 0x%08x below entry %d hash 0x%08x", i, e.Hashval, i-1, l.Entries[i-1].Hashval)
		}
		if uint32(e.NameIdx) < h.FirstUsed || uint32(e.NameIdx)+uint32(e.EntSize()) > blk {
			return l, c("nameidx", "entry %d name struct at %d (+%d) outside the name area %d..%d", i, e.NameIdx, e.EntSize(), h.FirstUsed, blk)
		}
		if len(e.Name) == 0 {
			return l, c("namelen", "entry %d has an empty name", i)
		}
		if e.Flags&^AttrOnDiskMask != 0 || !AttrNamespaceOf(e.Flags).Valid() {
			return l, c("flags", "entry %d %q has flags 0x%02x", i, e.Name, e.Flags)
		}
		if e.Flags&AttrParent == 0 {
			if hv := DAHash(e.Name); hv != e.Hashval {
				return l, c("hashval", "entry %d %q: stored hash 0x%08x, name hashes to 0x%08x", i, e.Name, e.Hashval, hv)
			}
		}
		if !e.IsLocal() {
			if e.ValueBlk == 0 && e.Flags&AttrIncomplete == 0 {
				return l, c("valueblk", "entry %d %q: remote value at block 0", i, e.Name)
			}
			if e.ValueLen > AttrMaxValueSize {
				return l, c("valuelen", "entry %d %q: remote value of %d bytes exceeds %d", i, e.Name, e.ValueLen, AttrMaxValueSize)
			}
		}
		used += e.EntSize()
	}
	if used != int(h.UsedBytes) {
		return l, c("usedbytes", "%d, but name structs use %d", h.UsedBytes, used)
	}
	for i, m := range h.FreeMap {
		if m.Base%4 != 0 || m.Size%4 != 0 || uint32(m.Base)+uint32(m.Size) > blk {
			return l, c("freemap", "slot %d (base %d size %d) misaligned or past the block", i, m.Base, m.Size)
		}
	}
	return l, nil
}

// Lookup returns the index of the first entry whose hash is >= hash
// (len(Entries) if none). Equal hashes are adjacent, and may continue in the
// next leaf.
func (l *Attr3Leaf) Lookup(hash uint32) int {
	lo, hi := 0, len(l.Entries)
	for lo < hi {
		m := (lo + hi) / 2
		if l.Entries[m].Hashval < hash {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// ---------------------------------------------------------------------------
// Remote value blocks: one header per filesystem block.

// Attr3RmtHdr is the header of one remote value block.
type Attr3RmtHdr struct {
	Magic  uint32
	Offset uint32 // byte offset of this block's payload in the value
	Bytes  uint32 // payload bytes in this block
	CRC    uint32
	UUID   UUID
	Owner  uint64
	Blkno  uint64 // daddr of this filesystem block
	LSN    uint64
}

// DecodeAttr3RmtHdr decodes the 56-byte header.
func DecodeAttr3RmtHdr(buf []byte) (Attr3RmtHdr, error) {
	var h Attr3RmtHdr
	if len(buf) < Attr3RmtHdrSize {
		return h, shortErr("attr3 remote value block", len(buf), Attr3RmtHdrSize)
	}
	be := binary.BigEndian
	h.Magic, h.Offset, h.Bytes = be.Uint32(buf[0:]), be.Uint32(buf[4:]), be.Uint32(buf[8:])
	h.CRC = binary.LittleEndian.Uint32(buf[12:])
	copy(h.UUID[:], buf[16:32])
	h.Owner, h.Blkno, h.LSN = be.Uint64(buf[32:]), be.Uint64(buf[40:]), be.Uint64(buf[48:])
	return h, nil
}

// EncodeAttr3Rmt writes one remote value block (a whole filesystem block):
// header with Bytes from len(payload), the payload, zeros after it, and the
// CRC over the block.
func EncodeAttr3Rmt(buf []byte, h *Attr3RmtHdr, payload []byte) error {
	if Attr3RmtHdrSize+len(payload) > len(buf) {
		return fmt.Errorf("attr3 remote value block: %d payload bytes do not fit in %d", len(payload), len(buf))
	}
	clear(buf)
	h.Magic, h.Bytes = Attr3RmtMagic, uint32(len(payload))
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint32(buf[4:], h.Offset)
	be.PutUint32(buf[8:], h.Bytes)
	copy(buf[16:32], h.UUID[:])
	be.PutUint64(buf[32:], h.Owner)
	be.PutUint64(buf[40:], h.Blkno)
	be.PutUint64(buf[48:], h.LSN)
	copy(buf[Attr3RmtHdrSize:], payload)
	SetCRC(buf, Attr3RmtCRCOff)
	h.CRC = StoredCRC(buf, Attr3RmtCRCOff)
	return nil
}

// VerifyAttr3Rmt checks one remote value block (a whole filesystem block)
// read from daddr for inode owner and returns its header and payload
// (aliasing buf): magic, CRC, UUID, owner, self address, and a payload that
// fits both the block and the maximum value size.
func VerifyAttr3Rmt(buf []byte, uuid UUID, daddr, owner uint64, where string) (Attr3RmtHdr, []byte, error) {
	const st = "attr3 remote value block"
	h, err := DecodeAttr3RmtHdr(buf)
	if err != nil {
		return h, nil, withWhere(err, where)
	}
	c := func(field, f string, a ...any) error { return Corrupt(st, where, field, f, a...) }
	if h.Magic != Attr3RmtMagic {
		return h, nil, c("magic", "bad magic 0x%08x, expected 0x%08x", h.Magic, Attr3RmtMagic)
	}
	if !CRCOK(buf, Attr3RmtCRCOff) {
		return h, nil, c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(buf, Attr3RmtCRCOff), CRC32c(buf, Attr3RmtCRCOff))
	}
	if h.UUID != uuid {
		return h, nil, c("uuid", "UUID %s does not match filesystem %s", h.UUID, uuid)
	}
	if h.Blkno != daddr {
		return h, nil, c("blkno", "block claims daddr %d but was read from daddr %d", h.Blkno, daddr)
	}
	if owner != ^uint64(0) && h.Owner != owner {
		return h, nil, c("owner", "owner %d, expected inode %d", h.Owner, owner)
	}
	if uint64(h.Bytes) > uint64(len(buf)-Attr3RmtHdrSize) || uint64(h.Offset)+uint64(h.Bytes) > AttrMaxValueSize {
		return h, nil, c("bytes", "%d bytes at value offset %d exceed the block or the %d-byte value limit", h.Bytes, h.Offset, AttrMaxValueSize)
	}
	return h, buf[Attr3RmtHdrSize : Attr3RmtHdrSize+int(h.Bytes)], nil
}

// ---------------------------------------------------------------------------
// POSIX ACL values.

// ACL entry tags (the same numbers in XFS and Linux formats).
const (
	ACLUserObj  = 0x01
	ACLUser     = 0x02
	ACLGroupObj = 0x04
	ACLGroup    = 0x08
	ACLMask     = 0x10
	ACLOther    = 0x20
	// ACLUndefinedID is the id stored for entries that name no user/group.
	ACLUndefinedID = 0xffffffff
	xfsACLEntSize  = 12
	posixACLVer    = 2
	posixACLEntSz  = 8
)

// ACLEntry is one POSIX ACL entry.
type ACLEntry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// DecodeXFSACL decodes the XFS on-disk ACL value (be32 count, then count
// entries of be32 tag, be32 id, be16 perm, be16 pad).
func DecodeXFSACL(buf []byte) ([]ACLEntry, error) {
	const st = "XFS ACL"
	if len(buf) < 4 {
		return nil, shortErr(st, len(buf), 4)
	}
	n := binary.BigEndian.Uint32(buf)
	if uint64(n)*xfsACLEntSize+4 != uint64(len(buf)) {
		return nil, Corrupt(st, "", "count", "%d entries in a %d-byte value", n, len(buf))
	}
	be := binary.BigEndian
	out := make([]ACLEntry, n)
	for i := range out {
		o := 4 + i*xfsACLEntSize
		tag := be.Uint32(buf[o:])
		if tag > 0xffff {
			return nil, Corrupt(st, "", "tag", "entry %d tag 0x%x", i, tag)
		}
		out[i] = ACLEntry{Tag: uint16(tag), ID: be.Uint32(buf[o+4:]), Perm: be.Uint16(buf[o+8:])}
	}
	return out, nil
}

// EncodeXFSACL is the inverse of DecodeXFSACL.
func EncodeXFSACL(ents []ACLEntry) []byte {
	be := binary.BigEndian
	b := make([]byte, 4+len(ents)*xfsACLEntSize)
	be.PutUint32(b, uint32(len(ents)))
	for i, e := range ents {
		o := 4 + i*xfsACLEntSize
		be.PutUint32(b[o:], uint32(e.Tag))
		be.PutUint32(b[o+4:], e.ID)
		be.PutUint16(b[o+8:], e.Perm)
	}
	return b
}

// PosixACLXattr encodes entries in the Linux system.posix_acl_* xattr
// format (le32 version 2; entries le16 tag, le16 perm, le32 id), with the
// id undefined for entries that name no user or group, as Linux shows them.
func PosixACLXattr(ents []ACLEntry) []byte {
	le := binary.LittleEndian
	b := make([]byte, 4+len(ents)*posixACLEntSz)
	le.PutUint32(b, posixACLVer)
	for i, e := range ents {
		o := 4 + i*posixACLEntSz
		id := e.ID
		if e.Tag != ACLUser && e.Tag != ACLGroup {
			id = ACLUndefinedID
		}
		le.PutUint16(b[o:], e.Tag)
		le.PutUint16(b[o+2:], e.Perm)
		le.PutUint32(b[o+4:], id)
	}
	return b
}

// DecodePosixACLXattr decodes the Linux xattr ACL format.
func DecodePosixACLXattr(buf []byte) ([]ACLEntry, error) {
	const st = "POSIX ACL xattr"
	if len(buf) < 4 || (len(buf)-4)%posixACLEntSz != 0 {
		return nil, Corrupt(st, "", "", "length %d is not 4 + a multiple of %d", len(buf), posixACLEntSz)
	}
	le := binary.LittleEndian
	if v := le.Uint32(buf); v != posixACLVer {
		return nil, Corrupt(st, "", "version", "%d, expected %d", v, posixACLVer)
	}
	out := make([]ACLEntry, (len(buf)-4)/posixACLEntSz)
	for i := range out {
		o := 4 + i*posixACLEntSz
		out[i] = ACLEntry{Tag: le.Uint16(buf[o:]), Perm: le.Uint16(buf[o+2:]), ID: le.Uint32(buf[o+4:])}
	}
	return out, nil
}
