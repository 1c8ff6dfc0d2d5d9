package ondisk

import (
	"encoding/binary"
	"testing"
)

// FuzzLogItems feeds arbitrary regions to every log item decoder replay
// uses: none may panic, and accepted buffer maps stay inside the buffer.
func FuzzLogItems(f *testing.F) {
	le := binary.LittleEndian
	buf := make([]byte, 28)
	le.PutUint16(buf, LogItemBuf)
	le.PutUint16(buf[2:], 2)
	le.PutUint16(buf[6:], 8)
	le.PutUint32(buf[16:], 2)
	le.PutUint32(buf[20:], 0x8001)
	f.Add(buf)
	ino := make([]byte, InodeLogFormatSize)
	le.PutUint16(ino, LogItemInode)
	le.PutUint16(ino[2:], 3)
	le.PutUint32(ino[4:], ILogCore|ILogDBroot)
	le.PutUint32(ino[48:], 16)
	f.Add(ino)
	f.Fuzz(func(t *testing.T, p []byte) {
		if bf, err := DecodeBufLogFormat(p, le); err == nil {
			if runs, err := bf.Runs(); err == nil {
				for _, r := range runs {
					if r.Off < 0 || r.Len <= 0 || r.Off+r.Len > int(bf.Len)*BBSize {
						t.Fatalf("run %+v outside a %d-block buffer", r, bf.Len)
					}
				}
			}
		}
		DecodeInodeLogFormat(p, le)
		DecodeICreateLog(p, le)
		LogItemID(p, le)
		StampOf(p)
		dst := make([]byte, 512)
		if len(p) >= LogDinodeSize {
			LogDinodeToDisk(p[:LogDinodeSize], le, dst, MakeLSN(1, 1))
		}
		BmbtRootToDisk(p, dst[:len(p)%200])
	})
}
