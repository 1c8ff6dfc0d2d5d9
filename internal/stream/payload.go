package stream

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Payload layouts. All integers are little-endian; see docs/stream-format.md.

const (
	headerFixed   = 96
	inodeFixed    = 128
	xattrEntHdr   = 8
	direntEntHdr  = 12
	hardlinkFixed = 24
	inodeEndSize  = 32
	dirsEndSize   = 8
	endSize       = 40
	indexEntSize  = 16
	indexFixed    = 8
	trailerSize   = 88
	dataFixed     = 8
)

// cursor is a bounds-checked little-endian decoder.
type cursor struct {
	b   []byte
	off int
	err error
}

func (c *cursor) need(n int) bool {
	if c.err != nil {
		return false
	}
	if n < 0 || len(c.b)-c.off < n {
		c.err = fmt.Errorf("payload too short at byte %d (need %d more)", c.off, n)
		return false
	}
	return true
}

func (c *cursor) u8() uint8 {
	if !c.need(1) {
		return 0
	}
	v := c.b[c.off]
	c.off++
	return v
}

func (c *cursor) u16() uint16 {
	if !c.need(2) {
		return 0
	}
	v := le.Uint16(c.b[c.off:])
	c.off += 2
	return v
}

func (c *cursor) u32() uint32 {
	if !c.need(4) {
		return 0
	}
	v := le.Uint32(c.b[c.off:])
	c.off += 4
	return v
}

func (c *cursor) u64() uint64 {
	if !c.need(8) {
		return 0
	}
	v := le.Uint64(c.b[c.off:])
	c.off += 8
	return v
}

func (c *cursor) bytes(n int) []byte {
	if !c.need(n) {
		return nil
	}
	v := c.b[c.off : c.off+n]
	c.off += n
	return v
}

func (c *cursor) skip(n int) { c.bytes(n) }

// str16 reads a u16-length-prefixed string of at most max bytes.
func (c *cursor) str16(max int, what string) string {
	n := int(c.u16())
	if c.err == nil && n > max {
		c.err = fmt.Errorf("%s length %d exceeds %d", what, n, max)
		return ""
	}
	return string(c.bytes(n))
}

func putStr16(b []byte, s string) []byte {
	b = le.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// ---- HEADER ----

func checkHeader(h *Header) error {
	for _, l := range []struct{ what, s string }{{"session label", h.SessionLabel}, {"media label", h.MediaLabel}, {"filesystem label", h.FSLabel}} {
		if len(l.s) > MaxLabelLen {
			return fmt.Errorf("stream: %s is %d bytes (max %d)", l.what, len(l.s), MaxLabelLen)
		}
	}
	if len(h.Subtrees) > MaxSubtrees {
		return fmt.Errorf("stream: %d subtrees (max %d)", len(h.Subtrees), MaxSubtrees)
	}
	total := headerFixed + 3*(2+MaxLabelLen) + 4
	for _, s := range h.Subtrees {
		if len(s) > MaxSubtreeLen {
			return fmt.Errorf("stream: subtree path %.40q… is %d bytes (max %d)", s, len(s), MaxSubtreeLen)
		}
		total += 2 + len(s)
	}
	if total > maxHeaderBytes {
		return fmt.Errorf("stream: subtree list too large (%d bytes, max %d)", total, maxHeaderBytes)
	}
	if h.StreamCount == 0 || h.StreamIndex >= h.StreamCount {
		return fmt.Errorf("stream: stream index %d of %d", h.StreamIndex, h.StreamCount)
	}
	return nil
}

func encodeHeader(b []byte, h *Header) []byte {
	var f [headerFixed]byte
	le.PutUint16(f[0:], h.VersionMajor)
	le.PutUint16(f[2:], h.VersionMinor)
	copy(f[8:24], h.SessionID[:])
	copy(f[24:40], h.BaseSessionID[:])
	copy(f[40:56], h.FSUUID[:])
	le.PutUint32(f[56:], h.Level)
	le.PutUint32(f[60:], h.StreamIndex)
	le.PutUint32(f[64:], h.StreamCount)
	f[68] = byte(h.Compression)
	le.PutUint32(f[72:], h.ChunkSize)
	le.PutUint32(f[76:], h.BlockSize)
	ts := TimestampOf(h.Created)
	le.PutUint64(f[80:], uint64(ts.Sec))
	le.PutUint32(f[88:], ts.Nsec)
	b = append(b, f[:]...)
	b = putStr16(b, h.SessionLabel)
	b = putStr16(b, h.MediaLabel)
	b = putStr16(b, h.FSLabel)
	b = le.AppendUint32(b, uint32(len(h.Subtrees)))
	for _, s := range h.Subtrees {
		b = putStr16(b, s)
	}
	return b
}

func decodeHeader(p []byte) (Header, error) {
	var h Header
	c := cursor{b: p}
	h.VersionMajor = c.u16()
	h.VersionMinor = c.u16()
	c.skip(4)
	copy(h.SessionID[:], c.bytes(16))
	copy(h.BaseSessionID[:], c.bytes(16))
	copy(h.FSUUID[:], c.bytes(16))
	h.Level = c.u32()
	h.StreamIndex = c.u32()
	h.StreamCount = c.u32()
	h.Compression = Compression(c.u8())
	c.skip(3)
	h.ChunkSize = c.u32()
	h.BlockSize = c.u32()
	sec := int64(c.u64())
	nsec := c.u32()
	c.skip(4)
	h.SessionLabel = c.str16(MaxLabelLen, "session label")
	h.MediaLabel = c.str16(MaxLabelLen, "media label")
	h.FSLabel = c.str16(MaxLabelLen, "filesystem label")
	n := c.u32()
	if c.err == nil && n > MaxSubtrees {
		return h, fmt.Errorf("%d subtrees (max %d)", n, MaxSubtrees)
	}
	for i := uint32(0); i < n && c.err == nil; i++ {
		h.Subtrees = append(h.Subtrees, c.str16(MaxSubtreeLen, "subtree path"))
	}
	if c.err != nil {
		return h, c.err
	}
	if h.VersionMajor != VersionMajor {
		return h, fmt.Errorf("unsupported format major version %d", h.VersionMajor)
	}
	if nsec > 999999999 {
		return h, fmt.Errorf("creation time nanoseconds %d out of range", nsec)
	}
	h.Created = time.Unix(sec, int64(nsec))
	return h, nil
}

// ---- names ----

// checkName validates a directory entry or hard link name: 1..MaxNameLen
// bytes, no '/', no NUL, not "." or "..". Restore builds paths from these
// names, so this check is what keeps a hostile stream inside the target.
func checkName(name string) error {
	switch {
	case len(name) == 0:
		return errors.New("empty name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %.40q… is %d bytes (max %d)", name, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("name %q not allowed", name)
	case strings.IndexByte(name, '/') >= 0 || strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("name %q contains '/' or NUL", name)
	}
	return nil
}

// ---- INODE ----

func checkMeta(m *FileMeta) error {
	for _, t := range []Timestamp{m.Atime, m.Mtime, m.Ctime, m.Crtime} {
		if t.Nsec > 999999999 {
			return fmt.Errorf("inode %d: timestamp nanoseconds %d out of range", m.Ino, t.Nsec)
		}
	}
	if m.Size < 0 {
		return fmt.Errorf("inode %d: negative size %d", m.Ino, m.Size)
	}
	if len(m.Symlink) > MaxSymlinkLen {
		return fmt.Errorf("inode %d: symlink target is %d bytes (max %d)", m.Ino, len(m.Symlink), MaxSymlinkLen)
	}
	if len(m.Symlink) > 0 && m.Type() != TypeSymlink {
		return fmt.Errorf("inode %d: symlink target on a non-symlink (mode %o)", m.Ino, m.Mode)
	}
	if m.Ino == 0 {
		return errors.New("inode number 0")
	}
	return nil
}

func putTime(b []byte, t Timestamp) {
	le.PutUint64(b, uint64(t.Sec))
	le.PutUint32(b[8:], t.Nsec)
}

func encodeInode(b []byte, m *FileMeta, parent uint64) []byte {
	var f [inodeFixed]byte
	le.PutUint64(f[0:], m.Ino)
	le.PutUint32(f[8:], m.Mode)
	le.PutUint32(f[12:], m.UID)
	le.PutUint32(f[16:], m.GID)
	le.PutUint32(f[20:], m.Nlink)
	le.PutUint64(f[24:], uint64(m.Size))
	putTime(f[32:], m.Atime)
	putTime(f[44:], m.Mtime)
	putTime(f[56:], m.Ctime)
	putTime(f[68:], m.Crtime)
	le.PutUint64(f[80:], m.Rdev)
	le.PutUint32(f[88:], m.ProjectID)
	le.PutUint32(f[92:], m.XFlags)
	le.PutUint32(f[96:], m.ExtSize)
	le.PutUint32(f[100:], m.CowExtSize)
	le.PutUint32(f[104:], m.Gen)
	le.PutUint64(f[112:], parent)
	le.PutUint16(f[120:], uint16(len(m.Symlink)))
	b = append(b, f[:]...)
	return append(b, m.Symlink...)
}

func getTime(c *cursor) Timestamp {
	return Timestamp{Sec: int64(c.u64()), Nsec: c.u32()}
}

func decodeInode(p []byte) (m FileMeta, parent uint64, err error) {
	c := cursor{b: p}
	m.Ino = c.u64()
	m.Mode = c.u32()
	m.UID = c.u32()
	m.GID = c.u32()
	m.Nlink = c.u32()
	m.Size = int64(c.u64())
	m.Atime = getTime(&c)
	m.Mtime = getTime(&c)
	m.Ctime = getTime(&c)
	m.Crtime = getTime(&c)
	m.Rdev = c.u64()
	m.ProjectID = c.u32()
	m.XFlags = c.u32()
	m.ExtSize = c.u32()
	m.CowExtSize = c.u32()
	m.Gen = c.u32()
	c.skip(4)
	parent = c.u64()
	n := int(c.u16())
	c.skip(6)
	if c.err == nil && n > MaxSymlinkLen {
		return m, 0, fmt.Errorf("symlink target length %d exceeds %d", n, MaxSymlinkLen)
	}
	m.Symlink = string(c.bytes(n))
	if c.err != nil {
		return m, 0, c.err
	}
	return m, parent, checkMeta(&m)
}

// ---- XATTRS ----

func checkXattr(x *Xattr) error {
	if len(x.Name) == 0 || len(x.Name) > MaxNameLen {
		return fmt.Errorf("xattr name length %d (want 1..%d)", len(x.Name), MaxNameLen)
	}
	if len(x.Value) > MaxXattrValue {
		return fmt.Errorf("xattr %s.%s: value is %d bytes (max %d)", x.Namespace, x.Name, len(x.Value), MaxXattrValue)
	}
	return nil
}

func xattrSize(x *Xattr) int { return xattrEntHdr + len(x.Name) + len(x.Value) }

func appendXattr(b []byte, x *Xattr) []byte {
	b = append(b, byte(x.Namespace), 0)
	b = le.AppendUint16(b, uint16(len(x.Name)))
	b = le.AppendUint32(b, uint32(len(x.Value)))
	b = append(b, x.Name...)
	return append(b, x.Value...)
}

// decodeXattrs appends the xattrs of one XATTRS payload to dst; budget is
// the number of bytes still allowed for this inode.
func decodeXattrs(dst []Xattr, p []byte, budget *int64) ([]Xattr, error) {
	c := cursor{b: p}
	n := c.u32()
	if c.err == nil && uint64(n)*xattrEntHdr > uint64(len(p)) {
		return dst, fmt.Errorf("xattr count %d does not fit in %d bytes", n, len(p))
	}
	for i := uint32(0); i < n; i++ {
		var x Xattr
		x.Namespace = XattrNamespace(c.u8())
		c.skip(1)
		nl := int(c.u16())
		vl := int(c.u32())
		if c.err != nil {
			return dst, c.err
		}
		if nl == 0 || nl > MaxNameLen {
			return dst, fmt.Errorf("xattr %d: name length %d (want 1..%d)", i, nl, MaxNameLen)
		}
		if vl > MaxXattrValue {
			return dst, fmt.Errorf("xattr %d: value length %d exceeds %d", i, vl, MaxXattrValue)
		}
		*budget -= int64(nl + vl + 64)
		if *budget < 0 {
			return dst, errors.New("xattrs exceed the reader's per-inode limit")
		}
		x.Name = string(c.bytes(nl))
		v := c.bytes(vl)
		if c.err != nil {
			return dst, c.err
		}
		x.Value = append([]byte(nil), v...)
		dst = append(dst, x)
	}
	return dst, nil
}

// ---- DIRENTS ----

func direntSize(e *DirEntry) int { return direntEntHdr + len(e.Name) }

func appendDirent(b []byte, e *DirEntry) []byte {
	b = le.AppendUint64(b, e.Ino)
	b = append(b, byte(e.Type), 0)
	b = le.AppendUint16(b, uint16(len(e.Name)))
	return append(b, e.Name...)
}

func decodeDirents(dst []DirEntry, p []byte, budget *int64) ([]DirEntry, error) {
	c := cursor{b: p}
	n := c.u32()
	if c.err == nil && uint64(n)*direntEntHdr > uint64(len(p)) {
		return dst, fmt.Errorf("entry count %d does not fit in %d bytes", n, len(p))
	}
	for i := uint32(0); i < n; i++ {
		var e DirEntry
		e.Ino = c.u64()
		e.Type = FileType(c.u8())
		c.skip(1)
		nl := int(c.u16())
		if c.err != nil {
			return dst, c.err
		}
		if nl > MaxNameLen {
			return dst, fmt.Errorf("entry %d: name length %d exceeds %d", i, nl, MaxNameLen)
		}
		*budget -= int64(nl + 48)
		if *budget < 0 {
			return dst, errors.New("directory entries exceed the reader's per-directory limit")
		}
		e.Name = string(c.bytes(nl))
		if c.err != nil {
			return dst, c.err
		}
		if err := checkName(e.Name); err != nil {
			return dst, fmt.Errorf("entry %d: %v", i, err)
		}
		if e.Ino == 0 {
			return dst, fmt.Errorf("entry %q: inode 0", e.Name)
		}
		dst = append(dst, e)
	}
	return dst, nil
}

// ---- INODE_END ----

type inodeEnd struct {
	xattrs, entries, pieces, dataBytes uint64
}

func encodeInodeEnd(b []byte, e *inodeEnd) []byte {
	b = le.AppendUint64(b, e.xattrs)
	b = le.AppendUint64(b, e.entries)
	b = le.AppendUint64(b, e.pieces)
	return le.AppendUint64(b, e.dataBytes)
}

func decodeInodeEnd(p []byte) (inodeEnd, error) {
	c := cursor{b: p}
	e := inodeEnd{c.u64(), c.u64(), c.u64(), c.u64()}
	return e, c.err
}

// ---- HARDLINK ----

func encodeHardLink(b []byte, l *HardLink) []byte {
	b = le.AppendUint64(b, l.Ino)
	b = le.AppendUint64(b, l.Parent)
	b = le.AppendUint16(b, uint16(len(l.Name)))
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, l.Name...)
}

func decodeHardLink(p []byte) (HardLink, error) {
	var l HardLink
	c := cursor{b: p}
	l.Ino = c.u64()
	l.Parent = c.u64()
	n := int(c.u16())
	c.skip(6)
	if c.err == nil && n > MaxNameLen {
		return l, fmt.Errorf("name length %d exceeds %d", n, MaxNameLen)
	}
	l.Name = string(c.bytes(n))
	if c.err != nil {
		return l, c.err
	}
	if n > 0 {
		if err := checkName(l.Name); err != nil {
			return l, err
		}
	}
	return l, nil
}

// ---- END ----

type endRec struct {
	files, dirs, links, dataBytes, xattrs uint64
}

func encodeEnd(b []byte, e *endRec) []byte {
	for _, v := range []uint64{e.files, e.dirs, e.links, e.dataBytes, e.xattrs} {
		b = le.AppendUint64(b, v)
	}
	return b
}

func decodeEnd(p []byte) (endRec, error) {
	c := cursor{b: p}
	e := endRec{c.u64(), c.u64(), c.u64(), c.u64(), c.u64()}
	return e, c.err
}

// ---- TRAILER ----

func encodeTrailer(b []byte, t *Trailer) []byte {
	for _, v := range []uint64{t.Records, t.Files, t.Dirs, t.HardLinks, t.DataBytes, t.Xattrs, t.IndexCount,
		uint64(t.IndexOffset), uint64(t.DirsEnd), uint64(t.EndOffset)} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint32(b, t.RecordChain)
	return le.AppendUint32(b, 0)
}

func decodeTrailer(p []byte) (Trailer, error) {
	c := cursor{b: p}
	var t Trailer
	t.Records = c.u64()
	t.Files = c.u64()
	t.Dirs = c.u64()
	t.HardLinks = c.u64()
	t.DataBytes = c.u64()
	t.Xattrs = c.u64()
	t.IndexCount = c.u64()
	t.IndexOffset = int64(c.u64())
	t.DirsEnd = int64(c.u64())
	t.EndOffset = int64(c.u64())
	t.RecordChain = c.u32()
	return t, c.err
}
