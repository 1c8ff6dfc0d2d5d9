package xlog

import (
	"encoding/binary"
	"fmt"

	"xfskit/ondisk"
)

// UnmountRecord builds a log record holding only an unmount op, stamped
// with cycle at log block 0 and padded to the log stripe unit (logsunit
// bytes; 0 or 1 means the log sector size), as mkfs and xfs_repair write
// one. The record's CRC is set.
func UnmountRecord(uuid ondisk.UUID, logsunit, logsectsize int, cycle uint32) []byte {
	const bb = ondisk.BBSize
	sunit := logsunit
	if sunit <= 1 {
		sunit = logsectsize
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
	// xfs_unmount_log_format's magic is host (little-endian) order.
	binary.LittleEndian.PutUint16(data[ondisk.LogOpHeaderSize:], ondisk.LogUnmountType)
	h := ondisk.LogRecHeader{
		Magic: ondisk.LogHeaderMagic, Cycle: cycle, Version: ondisk.LogVersion2,
		Len: uint32(len(data)), LSN: lsn, TailLSN: lsn,
		PrevBlock: ^uint32(0), NumLogOps: 1, Fmt: ondisk.LogFmtLinuxLE, FSUUID: uuid,
		Size: uint32(max(sunit, ondisk.LogBigRecordSize)),
	}
	hdrBytes := buf[:hdrs*bb]
	// Pack stamps the data blocks with the cycle, saving their first words
	// in the header (and extended headers); the CRC covers the result.
	_ = ondisk.PackLogRecord(&h, hdrBytes, data, true, cycle)
	h.Encode(buf)
	_ = ondisk.SealLogRecord(&h, hdrBytes, data, true)
	return buf
}

// Cleared is the log Clear leaves, described without writing it: Rec at
// log block 0, then blocks of zeros stamped with Cycle-1.
type Cleared struct {
	Start  uint64 // daddr of log block 0
	Blocks int64  // log size in 512-byte blocks
	Rec    []byte // the unmount record
	Cycle  uint32
}

// Cleared returns the log Clear(cycle) would write.
func (l *Log) Cleared(cycle uint32) (*Cleared, error) {
	if cycle < 1 || cycle >= 1<<31 {
		return nil, fmt.Errorf("%s: log cycle %d out of range", l.fs.Name(), cycle)
	}
	sb := l.fs.SB
	rec := UnmountRecord(l.uuid, int(sb.LogSUnit), int(sb.LogSectSize), cycle)
	if n := int64(len(rec) / ondisk.BBSize); n >= l.blocks {
		return nil, fmt.Errorf("%s: log of %d blocks too small for a %d-block unmount record", l.fs.Name(), l.blocks, n)
	}
	return &Cleared{Start: l.start, Blocks: l.blocks, Rec: rec, Cycle: cycle}, nil
}

// Block fills dst (512 bytes) with log block blk of the cleared log.
func (c *Cleared) Block(blk int64, dst []byte) {
	const bb = ondisk.BBSize
	if off := blk * bb; off < int64(len(c.Rec)) {
		copy(dst[:bb], c.Rec[off:])
		return
	}
	clear(dst[:bb])
	binary.BigEndian.PutUint32(dst, c.Cycle-1)
}

// Clear leaves the log as xfs_repair -L does after zeroing it: one unmount
// record at block 0 stamped with cycle, every later block stamped with
// cycle-1, so the head is right after the record and the tail equals the
// head. A cycle higher than any in the old log keeps every LSN already on
// disk behind the new head. It writes through the filesystem's device and
// returns the new head LSN.
func (l *Log) Clear(cycle uint32) (ondisk.LSN, error) {
	const bb = ondisk.BBSize
	c, err := l.Cleared(cycle)
	if err != nil {
		return 0, err
	}
	nblk := int64(len(c.Rec) / bb)
	if _, err := l.fs.Dev.WriteAt(c.Rec, int64(l.start)*bb); err != nil {
		return 0, err
	}
	// The rest in chunks: zeroed blocks carrying the previous cycle.
	const chunk = 2048
	buf := make([]byte, chunk*bb)
	for i := int64(0); i < chunk; i++ {
		c.Block(nblk+i, buf[i*bb:])
	}
	for blk := nblk; blk < l.blocks; {
		n := min(chunk, l.blocks-blk)
		if _, err := l.fs.Dev.WriteAt(buf[:n*bb], int64(l.start+uint64(blk))*bb); err != nil {
			return 0, err
		}
		blk += n
	}
	return ondisk.MakeLSN(cycle, uint32(nblk)), nil
}
