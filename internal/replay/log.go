package replay

import (
	"encoding/binary"
	"fmt"

	"xfskit/internal/image"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// writeCleanLog leaves the log as xfs_repair -L does after zeroing it: one
// unmount record at block 0 stamped with cycle, every later block stamped
// with cycle-1, so the head is right after the record, the tail equals the
// head, and cycle (higher than any in the old log) keeps every LSN replay
// wrote behind the new head. It returns the new head LSN.
func writeCleanLog(dev image.Device, sb *ondisk.Superblock, l *xlog.Log, cycle uint32) (ondisk.LSN, error) {
	const bb = ondisk.BBSize
	rec := unmountRecord(sb, cycle)
	nblk := uint32(len(rec) / bb)
	if nblk >= l.Blocks() {
		return 0, fmt.Errorf("log of %d blocks too small for a %d-block unmount record", l.Blocks(), nblk)
	}
	if _, err := dev.WriteAt(rec, int64(l.Daddr(0))*bb); err != nil {
		return 0, err
	}
	// The rest in chunks: zeroed blocks carrying the previous cycle.
	const chunk = 2048
	buf := make([]byte, chunk*bb)
	for i := 0; i < chunk; i++ {
		binary.BigEndian.PutUint32(buf[i*bb:], cycle-1)
	}
	for blk := nblk; blk < l.Blocks(); {
		n := min(chunk, l.Blocks()-blk)
		if _, err := dev.WriteAt(buf[:int(n)*bb], int64(l.Daddr(blk))*bb); err != nil {
			return 0, err
		}
		blk += n
	}
	return ondisk.MakeLSN(cycle, nblk), nil
}

// unmountRecord builds a log record holding only an unmount op, padded to
// the log stripe unit, as mkfs and xfs_repair write one.
func unmountRecord(sb *ondisk.Superblock, cycle uint32) []byte {
	const bb = ondisk.BBSize
	sunit := int(sb.LogSUnit)
	if sunit <= 1 {
		sunit = int(sb.LogSectSize)
	}
	hdrs := 1
	if sunit > ondisk.LogHeaderCycleSize {
		hdrs = (sunit + ondisk.LogHeaderCycleSize - 1) / ondisk.LogHeaderCycleSize
	}
	blocks := max((sunit+bb-1)/bb, 2, hdrs+1)
	buf := make([]byte, blocks*bb)
	lsn := ondisk.MakeLSN(cycle, 0)
	data := buf[hdrs*bb:]
	ondisk.LogOpHeader{TID: 0xb0c0d0d0, Len: ondisk.UnmountFormatSize,
		ClientID: ondisk.LogClientLog, Flags: ondisk.LogUnmountTrans}.Encode(data)
	binary.LittleEndian.PutUint16(data[ondisk.LogOpHeaderSize:], ondisk.LogUnmountType)
	h := ondisk.LogRecHeader{
		Magic: ondisk.LogHeaderMagic, Cycle: cycle, Version: ondisk.LogVersion2,
		Len: uint32(len(data)), LSN: lsn, TailLSN: lsn,
		PrevBlock: ^uint32(0), NumLogOps: 1, Fmt: ondisk.LogFmtLinuxLE, FSUUID: sb.UUID,
		Size: uint32(max(sunit, ondisk.LogBigRecordSize)),
	}
	hdrBytes := buf[:hdrs*bb]
	// Pack stamps the data blocks with the cycle and saves their first
	// words in the header (and extended headers); then the CRC.
	_ = ondisk.PackLogRecord(&h, hdrBytes, data, true, cycle)
	h.Encode(buf)
	_ = ondisk.SealLogRecord(&h, hdrBytes, data, true)
	return buf
}
