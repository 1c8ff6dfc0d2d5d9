package ondisk

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32c computes the XFS checksum of buf with the 4-byte CRC field at crcOff
// treated as zero. The result is what is stored (little-endian) at crcOff.
func CRC32c(buf []byte, crcOff int) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, buf[:crcOff])
	c = crc32.Update(c, castagnoli, zero[:])
	c = crc32.Update(c, castagnoli, buf[crcOff+4:])
	return c
}

// CRCOK reports whether the checksum stored at crcOff matches buf.
func CRCOK(buf []byte, crcOff int) bool {
	if crcOff < 0 || crcOff+4 > len(buf) {
		return false
	}
	return binary.LittleEndian.Uint32(buf[crcOff:]) == CRC32c(buf, crcOff)
}

// SetCRC computes and stores the checksum of buf at crcOff.
func SetCRC(buf []byte, crcOff int) {
	binary.LittleEndian.PutUint32(buf[crcOff:], CRC32c(buf, crcOff))
}

// StoredCRC returns the checksum stored at crcOff.
func StoredCRC(buf []byte, crcOff int) uint32 {
	return binary.LittleEndian.Uint32(buf[crcOff:])
}
