package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Remote symlink block facts.
const (
	SymlinkMagic   = 0x58534c4d // "XSLM"
	SymlinkHdrSize = 56
	SymlinkCRCOff  = 12
	SymlinkMaxLen  = 1024 // longest target XFS stores (PATH_MAX)
)

// SymlinkHeader is the v5 header at the start of each remote symlink
// buffer (one per mapping the kernel wrote, normally one per block).
type SymlinkHeader struct {
	Magic  uint32
	Offset uint32 // byte offset of this piece in the target
	Bytes  uint32 // target bytes in this buffer
	CRC    uint32
	UUID   UUID
	Owner  uint64 // inode number
	Blkno  uint64 // daddr of this buffer
	LSN    uint64
}

// DecodeSymlinkHeader decodes the header at the start of buf.
func DecodeSymlinkHeader(buf []byte) (*SymlinkHeader, error) {
	if len(buf) < SymlinkHdrSize {
		return nil, shortErr("symlink block", len(buf), SymlinkHdrSize)
	}
	be := binary.BigEndian
	h := &SymlinkHeader{
		Magic:  be.Uint32(buf[0:]),
		Offset: be.Uint32(buf[4:]),
		Bytes:  be.Uint32(buf[8:]),
		CRC:    binary.LittleEndian.Uint32(buf[12:]),
		Owner:  be.Uint64(buf[32:]),
		Blkno:  be.Uint64(buf[40:]),
		LSN:    be.Uint64(buf[48:]),
	}
	copy(h.UUID[:], buf[16:32])
	return h, nil
}

// Encode writes the header into buf and, when seal is true, computes the
// CRC over the whole of buf (the header plus the target bytes after it).
func (h *SymlinkHeader) Encode(buf []byte, seal bool) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint32(buf[4:], h.Offset)
	be.PutUint32(buf[8:], h.Bytes)
	copy(buf[16:32], h.UUID[:])
	be.PutUint64(buf[32:], h.Owner)
	be.PutUint64(buf[40:], h.Blkno)
	be.PutUint64(buf[48:], h.LSN)
	if seal {
		SetCRC(buf, SymlinkCRCOff)
		h.CRC = StoredCRC(buf, SymlinkCRCOff)
	} else {
		binary.LittleEndian.PutUint32(buf[12:], h.CRC)
	}
}

// SymlinkBufSpace is how many target bytes a remote symlink buffer of
// bufSize bytes holds after its header.
func SymlinkBufSpace(bufSize int) int { return bufSize - SymlinkHdrSize }

// VerifySymlinkBlock checks a whole remote symlink buffer read from daddr:
// magic, CRC over the buffer, UUID, self address, owner and that the piece
// stays inside the maximum target length and the buffer. It returns the
// header and the target bytes it holds.
func VerifySymlinkBlock(buf []byte, uuid UUID, daddr, owner uint64, where string) (*SymlinkHeader, []byte, error) {
	h, err := DecodeSymlinkHeader(buf)
	if err != nil {
		return nil, nil, err
	}
	c := func(field, f string, a ...any) error { return Corrupt("symlink block", where, field, f, a...) }
	if h.Magic != SymlinkMagic {
		return h, nil, c("magic", "bad magic 0x%08x", h.Magic)
	}
	if !CRCOK(buf, SymlinkCRCOff) {
		return h, nil, c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(buf, SymlinkCRCOff), CRC32c(buf, SymlinkCRCOff))
	}
	if h.UUID != uuid {
		return h, nil, c("uuid", "UUID %s does not match filesystem %s", h.UUID, uuid)
	}
	if h.Blkno != daddr {
		return h, nil, c("blkno", "block claims daddr %d but was read from daddr %d", h.Blkno, daddr)
	}
	if h.Owner != owner {
		return h, nil, c("owner", "owner %d, expected %d", h.Owner, owner)
	}
	if uint64(h.Offset)+uint64(h.Bytes) >= SymlinkMaxLen {
		return h, nil, c("bytes", "piece %d+%d reaches the %d-byte limit", h.Offset, h.Bytes, SymlinkMaxLen)
	}
	if int(h.Bytes) > SymlinkBufSpace(len(buf)) {
		return h, nil, c("bytes", "%d bytes do not fit a %d-byte buffer", h.Bytes, len(buf))
	}
	return h, buf[SymlinkHdrSize : SymlinkHdrSize+int(h.Bytes)], nil
}

// SymlinkBlocks is the number of filesystem blocks a remote target of
// pathLen bytes needs on a v5 filesystem.
func SymlinkBlocks(blockSize, pathLen int) int {
	space := SymlinkBufSpace(blockSize)
	if space <= 0 {
		return 0
	}
	return (pathLen + space - 1) / space
}

// String summarises the header for messages.
func (h *SymlinkHeader) String() string {
	return fmt.Sprintf("symlink piece off %d bytes %d owner %d blkno %d", h.Offset, h.Bytes, h.Owner, h.Blkno)
}
