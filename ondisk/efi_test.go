package ondisk

import (
	"encoding/binary"
	"slices"
	"testing"
)

// TestDecodeEFI: both extent layouts (16-byte padded, 12-byte packed) are
// read, told apart by the region's length; any other length is corrupt.
func TestDecodeEFI(t *testing.T) {
	le := binary.LittleEndian
	want := []FreeExtent{{Start: 12345, Len: 7}, {Start: 1 << 40, Len: 1}}
	for _, size := range []int{16, 12} {
		p := make([]byte, 16+size*len(want))
		le.PutUint16(p, LogItemEFI)
		le.PutUint32(p[4:], uint32(len(want)))
		le.PutUint64(p[8:], 0xabc)
		for i, e := range want {
			le.PutUint64(p[16+i*size:], e.Start)
			le.PutUint32(p[24+i*size:], e.Len)
		}
		id, got, err := DecodeEFI(p, le)
		if err != nil || id != 0xabc || !slices.Equal(got, want) {
			t.Errorf("%d-byte extents: id %#x, %v, %v", size, id, got, err)
		}
		if _, _, err := DecodeEFI(p[:len(p)-4], le); err == nil {
			t.Errorf("%d-byte extents: a short region was accepted", size)
		}
	}
	if _, _, err := DecodeEFI(make([]byte, 16), le); err == nil {
		t.Error("an EFI of no extents was accepted")
	}
}
