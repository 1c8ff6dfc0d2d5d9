package ondisk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Log record layout facts (xlog_rec_header and friends). Block numbers in the
// log are 512-byte basic blocks relative to the start of the log.
const (
	LogHeaderMagic      = 0xFEEDBABE // h_magicno; never a valid cycle number
	LogVersion1         = 1
	LogVersion2         = 2 // large iclogs, log stripe unit
	LogVersionOKBits    = LogVersion1 | LogVersion2
	LogHeaderBlockSize  = 512       // every header (and extended header) takes one basic block
	LogHeaderCycleSize  = 32 * 1024 // bytes of record data whose cycle words one header block saves
	LogCycleWords       = LogHeaderCycleSize / BBSize
	LogMinRecordSize    = 16 * 1024
	LogBigRecordSize    = 32 * 1024
	LogMaxRecordSize    = 256 * 1024
	LogMaxIclogs        = 8
	LogRecHeaderCRCOff  = 32
	LogRecHeaderUsed    = 324 // bytes of xlog_rec_header that hold fields
	LogRecHeaderSize    = 328 // sizeof(xlog_rec_header) on LP64: 4 bytes of tail padding, covered by the CRC
	LogRecExtHeaderSize = 260 // sizeof(xlog_rec_ext_header): xh_cycle + 64 saved words
	LogOpHeaderSize     = 12
	TransHeaderSize     = 16
	UnmountFormatSize   = 8
)

// h_fmt values.
const (
	LogFmtUnknown = 0
	LogFmtLinuxLE = 1
	LogFmtLinuxBE = 2
	LogFmtIrixBE  = 3
)

// Log op header client ids and flags.
const (
	LogClientTransaction = 0x69
	LogClientLog         = 0xaa

	LogStartTrans    = 0x01
	LogCommitTrans   = 0x02
	LogContinueTrans = 0x04
	LogWasContTrans  = 0x08
	LogEndTrans      = 0x10
	LogUnmountTrans  = 0x20
)

// Payload magics.
const (
	LogUnmountType   = 0x556e     // "Un": xfs_unmount_log_format.magic, host order
	TransHeaderMagic = 0x5452414e // "TRAN": xfs_trans_header.th_magic, host order
	TransCheckpoint  = 40         // th_type of every CIL checkpoint
)

// LSN is a log sequence number: cycle in the high 32 bits, basic block in the
// low 32 bits.
type LSN uint64

// MakeLSN builds an LSN.
func MakeLSN(cycle, block uint32) LSN { return LSN(uint64(cycle)<<32 | uint64(block)) }

// Cycle is the log cycle of l.
func (l LSN) Cycle() uint32 { return uint32(l >> 32) }

// Block is the log basic block of l.
func (l LSN) Block() uint32 { return uint32(l) }

func (l LSN) String() string { return fmt.Sprintf("%d:%d", l.Cycle(), l.Block()) }

// CompareLSN orders LSNs by cycle, then block (as xfs_lsn_cmp).
func CompareLSN(a, b LSN) int {
	switch {
	case a.Cycle() != b.Cycle():
		if a.Cycle() < b.Cycle() {
			return -1
		}
		return 1
	case a.Block() < b.Block():
		return -1
	case a.Block() > b.Block():
		return 1
	}
	return 0
}

// LogBlockCycle returns the cycle number stamped on a log basic block: the
// first word, or for a record header the h_cycle that follows the magic.
// Short buffers yield 0, the cycle of a never-written block.
func LogBlockCycle(b []byte) uint32 {
	if len(b) < 8 {
		return 0
	}
	w := binary.BigEndian.Uint32(b)
	if w == LogHeaderMagic {
		return binary.BigEndian.Uint32(b[4:])
	}
	return w
}

// IsLogRecHeader reports whether a basic block starts with the record magic.
func IsLogRecHeader(b []byte) bool {
	return len(b) >= 4 && binary.BigEndian.Uint32(b) == LogHeaderMagic
}

// LogRecHeader is a decoded xlog_rec_header.
type LogRecHeader struct {
	Magic     uint32
	Cycle     uint32
	Version   uint32
	Len       uint32 // bytes of record data after the header blocks
	LSN       LSN
	TailLSN   LSN
	CRC       uint32 // stored little-endian
	PrevBlock uint32
	NumLogOps uint32
	CycleData [LogCycleWords]uint32 // saved first words of the first 64 data blocks
	Fmt       uint32
	FSUUID    UUID
	Size      uint32 // iclog buffer size (v2): decides the number of header blocks
}

// DecodeLogRecHeader decodes the record header at the start of buf.
func DecodeLogRecHeader(buf []byte) (*LogRecHeader, error) {
	if len(buf) < LogRecHeaderUsed {
		return nil, shortErr("log record header", len(buf), LogRecHeaderUsed)
	}
	be := binary.BigEndian
	h := &LogRecHeader{
		Magic:     be.Uint32(buf[0:]),
		Cycle:     be.Uint32(buf[4:]),
		Version:   be.Uint32(buf[8:]),
		Len:       be.Uint32(buf[12:]),
		LSN:       LSN(be.Uint64(buf[16:])),
		TailLSN:   LSN(be.Uint64(buf[24:])),
		CRC:       binary.LittleEndian.Uint32(buf[32:]),
		PrevBlock: be.Uint32(buf[36:]),
		NumLogOps: be.Uint32(buf[40:]),
		Fmt:       be.Uint32(buf[300:]),
		Size:      be.Uint32(buf[320:]),
	}
	for i := range h.CycleData {
		h.CycleData[i] = be.Uint32(buf[44+4*i:])
	}
	copy(h.FSUUID[:], buf[304:320])
	return h, nil
}

// Encode writes h into the first LogRecHeaderSize bytes of buf (the tail
// padding is zeroed). It does not compute the CRC; see SealLogRecord.
func (h *LogRecHeader) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint32(buf[4:], h.Cycle)
	be.PutUint32(buf[8:], h.Version)
	be.PutUint32(buf[12:], h.Len)
	be.PutUint64(buf[16:], uint64(h.LSN))
	be.PutUint64(buf[24:], uint64(h.TailLSN))
	binary.LittleEndian.PutUint32(buf[32:], h.CRC)
	be.PutUint32(buf[36:], h.PrevBlock)
	be.PutUint32(buf[40:], h.NumLogOps)
	for i, w := range h.CycleData {
		be.PutUint32(buf[44+4*i:], w)
	}
	be.PutUint32(buf[300:], h.Fmt)
	copy(buf[304:320], h.FSUUID[:])
	be.PutUint32(buf[320:], h.Size)
	clear(buf[LogRecHeaderUsed:LogRecHeaderSize])
}

// HeaderBlocks is the number of basic blocks the header occupies: one, plus
// one extended header per further 32 KiB of iclog size on v2 logs.
func (h *LogRecHeader) HeaderBlocks(logV2 bool) int {
	if logV2 && h.Version&LogVersion2 != 0 && h.Size > LogHeaderCycleSize {
		return int((uint64(h.Size) + LogHeaderCycleSize - 1) / LogHeaderCycleSize)
	}
	return 1
}

// DataBlocks is the number of basic blocks of record data.
func (h *LogRecHeader) DataBlocks() int { return int((uint64(h.Len) + BBSize - 1) / BBSize) }

// ByteOrder is the byte order of host-endian payload fields (transaction and
// unmount headers, log item formats), from h_fmt.
func (h *LogRecHeader) ByteOrder() binary.ByteOrder {
	if h.Fmt == LogFmtLinuxLE {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// IsUnmount reports whether the record is a lone unmount record: one op whose
// header in data carries XLOG_UNMOUNT_TRANS. data may be raw (cycle-stamped)
// since the flags byte is not the stamped word.
func (h *LogRecHeader) IsUnmount(data []byte) bool {
	if h.NumLogOps != 1 || len(data) < LogOpHeaderSize {
		return false
	}
	return data[9]&LogUnmountTrans != 0
}

// Verify checks the header fields that recovery relies on. logBlocks is the
// size of the log in basic blocks, logV2 the superblock's log version, and
// uuid the filesystem UUID (a nil UUID in the header is accepted, as IRIX
// wrote none). where names the location, e.g. "log block 1234".
func (h *LogRecHeader) Verify(where string, logBlocks uint32, logV2 bool, uuid UUID) error {
	const s = "log record header"
	if h.Magic != LogHeaderMagic {
		return Corrupt(s, where, "h_magicno", "bad magic 0x%08x", h.Magic)
	}
	if h.Version == 0 || h.Version&^LogVersionOKBits != 0 {
		return Corrupt(s, where, "h_version", "unrecognised log version %d", h.Version)
	}
	if logV2 && h.Version != LogVersion2 || !logV2 && h.Version != LogVersion1 {
		return Corrupt(s, where, "h_version", "record version %d does not match the superblock's log version", h.Version)
	}
	if h.Len == 0 || h.Len > LogMaxRecordSize {
		return Corrupt(s, where, "h_len", "record length %d outside 1..%d", h.Len, LogMaxRecordSize)
	}
	if logV2 {
		if h.Size < LogMinRecordSize || h.Size > LogMaxRecordSize || h.Size%BBSize != 0 {
			return Corrupt(s, where, "h_size", "iclog size %d outside %d..%d", h.Size, LogMinRecordSize, LogMaxRecordSize)
		}
		if h.Len > h.Size {
			return Corrupt(s, where, "h_len", "record length %d exceeds iclog size %d", h.Len, h.Size)
		}
	} else if h.Len > LogBigRecordSize {
		return Corrupt(s, where, "h_len", "v1 record length %d exceeds %d", h.Len, LogBigRecordSize)
	}
	if h.LSN.Cycle() != h.Cycle {
		return Corrupt(s, where, "h_lsn", "lsn %v disagrees with cycle %d", h.LSN, h.Cycle)
	}
	if h.LSN.Block() >= logBlocks {
		return Corrupt(s, where, "h_lsn", "lsn %v beyond the log's %d blocks", h.LSN, logBlocks)
	}
	if h.TailLSN.Block() >= logBlocks {
		return Corrupt(s, where, "h_tail_lsn", "tail lsn %v beyond the log's %d blocks", h.TailLSN, logBlocks)
	}
	if CompareLSN(h.TailLSN, h.LSN) > 0 {
		return Corrupt(s, where, "h_tail_lsn", "tail lsn %v is after the record's own lsn %v", h.TailLSN, h.LSN)
	}
	if uint64(h.NumLogOps)*LogOpHeaderSize > uint64(h.Len) {
		return Corrupt(s, where, "h_num_logops", "%d ops cannot fit in %d bytes", h.NumLogOps, h.Len)
	}
	if !h.FSUUID.IsZero() && h.FSUUID != uuid {
		return Corrupt(s, where, "h_fs_uuid", "log belongs to filesystem %v, not %v", h.FSUUID, uuid)
	}
	return nil
}

// LogRecExtHeader is a decoded xlog_rec_ext_header: the cycle words of a
// further 32 KiB of record data.
type LogRecExtHeader struct {
	Cycle     uint32
	CycleData [LogCycleWords]uint32
}

// DecodeLogRecExtHeader decodes an extended header block.
func DecodeLogRecExtHeader(buf []byte) (*LogRecExtHeader, error) {
	if len(buf) < LogRecExtHeaderSize {
		return nil, shortErr("log record extended header", len(buf), LogRecExtHeaderSize)
	}
	x := &LogRecExtHeader{Cycle: binary.BigEndian.Uint32(buf)}
	for i := range x.CycleData {
		x.CycleData[i] = binary.BigEndian.Uint32(buf[4+4*i:])
	}
	return x, nil
}

// logCRCBlocks checks that hdrs and data hold what the record's CRC covers and
// returns the number of extended headers it includes.
func logCRCExtHeaders(h *LogRecHeader, hdrs, data []byte, logV2 bool) (int, error) {
	if len(data) < int(h.Len) {
		return 0, Corrupt("log record", "", "", "data holds %d bytes, record length is %d", len(data), h.Len)
	}
	ext := 0
	if logV2 {
		// The CRC covers only the extended headers the record's data uses.
		ext = int((uint64(h.Len)+LogHeaderCycleSize-1)/LogHeaderCycleSize) - 1
	}
	if need := ext*LogHeaderBlockSize + LogRecHeaderSize; len(hdrs) < need {
		return 0, Corrupt("log record", "", "", "header blocks hold %d bytes, need %d", len(hdrs), need)
	}
	return ext, nil
}

// LogRecordCRC computes the record checksum as the kernel does (xlog_cksum):
// over the header with h_crc zeroed (hdrLen bytes: LogRecHeaderSize as LP64
// kernels write it, or LogRecHeaderUsed as i386 kernels did), then each used
// extended header, then h_len bytes of the data as they lie on disk (cycle
// words stamped). hdrs holds the record's header blocks.
func LogRecordCRC(h *LogRecHeader, hdrs, data []byte, logV2 bool, hdrLen int) (uint32, error) {
	ext, err := logCRCExtHeaders(h, hdrs, data, logV2)
	if err != nil {
		return 0, err
	}
	if hdrLen != LogRecHeaderSize && hdrLen != LogRecHeaderUsed {
		return 0, fmt.Errorf("log record CRC: header length %d is neither %d nor %d", hdrLen, LogRecHeaderSize, LogRecHeaderUsed)
	}
	var zero [4]byte
	c := crc32.Update(0, castagnoli, hdrs[:LogRecHeaderCRCOff])
	c = crc32.Update(c, castagnoli, zero[:])
	c = crc32.Update(c, castagnoli, hdrs[LogRecHeaderCRCOff+4:hdrLen])
	for i := 1; i <= ext; i++ {
		c = crc32.Update(c, castagnoli, hdrs[i*LogHeaderBlockSize:i*LogHeaderBlockSize+LogRecExtHeaderSize])
	}
	return crc32.Update(c, castagnoli, data[:h.Len]), nil
}

// VerifyLogRecordCRC checks the stored h_crc. A zero CRC is accepted, as the
// kernel does, because mkfs writes its unmount record without one; checked
// reports whether a CRC was actually compared. Records written by i386
// kernels (CRC over the unpadded header) are accepted too.
func VerifyLogRecordCRC(h *LogRecHeader, hdrs, data []byte, logV2 bool, where string) (checked bool, err error) {
	want, err := LogRecordCRC(h, hdrs, data, logV2, LogRecHeaderSize)
	if err != nil {
		return false, err
	}
	if h.CRC == 0 {
		return false, nil
	}
	if want == h.CRC {
		return true, nil
	}
	if alt, _ := LogRecordCRC(h, hdrs, data, logV2, LogRecHeaderUsed); alt == h.CRC {
		return true, nil
	}
	return true, Corrupt("log record", where, "h_crc", "CRC mismatch: stored 0x%08x, computed 0x%08x", h.CRC, want)
}

// SealLogRecord stamps the record's CRC into h and into the header block
// hdrs[0:LogRecHeaderSize] (LP64 layout).
func SealLogRecord(h *LogRecHeader, hdrs, data []byte, logV2 bool) error {
	c, err := LogRecordCRC(h, hdrs, data, logV2, LogRecHeaderSize)
	if err != nil {
		return err
	}
	h.CRC = c
	binary.LittleEndian.PutUint32(hdrs[LogRecHeaderCRCOff:], c)
	return nil
}

// UnpackLogRecord restores, in place, the first word of every basic block of
// data from the cycle words saved in the header (and, past 32 KiB, in the
// extended headers in hdrs). data must hold the record's whole blocks.
func UnpackLogRecord(h *LogRecHeader, hdrs, data []byte, logV2 bool) error {
	nblk := h.DataBlocks()
	if len(data) < nblk*BBSize {
		return Corrupt("log record", "", "", "data holds %d bytes, record needs %d blocks", len(data), nblk)
	}
	for i := 0; i < nblk; i++ {
		var w uint32
		switch {
		case i < LogCycleWords:
			w = h.CycleData[i]
		case !logV2:
			// v1 records never exceed 32 KiB; Verify rejects longer ones.
			return Corrupt("log record", "", "h_len", "v1 record of %d blocks exceeds one header's cycle data", nblk)
		default:
			j, k := i/LogCycleWords, i%LogCycleWords
			off := j*LogHeaderBlockSize + 4 + 4*k
			if off+4 > len(hdrs) {
				return Corrupt("log record", "", "", "record of %d blocks needs extended header %d, only %d header bytes", nblk, j, len(hdrs))
			}
			w = binary.BigEndian.Uint32(hdrs[off:])
		}
		binary.BigEndian.PutUint32(data[i*BBSize:], w)
	}
	return nil
}

// PackLogRecord is the inverse of UnpackLogRecord: it saves the first word
// of each data block into the header (and extended headers in hdrs) and
// stamps the block with cycle, as the kernel does before writing.
func PackLogRecord(h *LogRecHeader, hdrs, data []byte, logV2 bool, cycle uint32) error {
	nblk := h.DataBlocks()
	if len(data) < nblk*BBSize {
		return Corrupt("log record", "", "", "data holds %d bytes, record needs %d blocks", len(data), nblk)
	}
	for i := 0; i < nblk; i++ {
		w := binary.BigEndian.Uint32(data[i*BBSize:])
		switch {
		case i < LogCycleWords:
			h.CycleData[i] = w
		case !logV2:
			return fmt.Errorf("log record: v1 record of %d blocks exceeds one header's cycle data", nblk)
		default:
			j, k := i/LogCycleWords, i%LogCycleWords
			off := j*LogHeaderBlockSize + 4 + 4*k
			if off+4 > len(hdrs) {
				return fmt.Errorf("log record: %d blocks need extended header %d, only %d header bytes", nblk, j, len(hdrs))
			}
			binary.BigEndian.PutUint32(hdrs[j*LogHeaderBlockSize:], cycle)
			binary.BigEndian.PutUint32(hdrs[off:], w)
		}
		binary.BigEndian.PutUint32(data[i*BBSize:], cycle)
	}
	return nil
}

// LogOpHeader is a decoded xlog_op_header.
type LogOpHeader struct {
	TID      uint32
	Len      uint32
	ClientID uint8
	Flags    uint8
	Res2     uint16
}

// DecodeLogOpHeader decodes an op header.
func DecodeLogOpHeader(buf []byte) (LogOpHeader, error) {
	if len(buf) < LogOpHeaderSize {
		return LogOpHeader{}, shortErr("log op header", len(buf), LogOpHeaderSize)
	}
	be := binary.BigEndian
	return LogOpHeader{
		TID:      be.Uint32(buf[0:]),
		Len:      be.Uint32(buf[4:]),
		ClientID: buf[8],
		Flags:    buf[9],
		Res2:     be.Uint16(buf[10:]),
	}, nil
}

// Encode writes the op header into buf.
func (o LogOpHeader) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], o.TID)
	be.PutUint32(buf[4:], o.Len)
	buf[8] = o.ClientID
	buf[9] = o.Flags
	be.PutUint16(buf[10:], o.Res2)
}

// IsUnmount reports the XLOG_UNMOUNT_TRANS flag.
func (o LogOpHeader) IsUnmount() bool { return o.Flags&LogUnmountTrans != 0 }

// FlagString names the op flags as xfs_logprint does.
func (o LogOpHeader) FlagString() string {
	names := []struct {
		bit  uint8
		name string
	}{{LogStartTrans, "START"}, {LogCommitTrans, "COMMIT"}, {LogContinueTrans, "CONTINUE"},
		{LogWasContTrans, "WAS_CONT"}, {LogEndTrans, "END"}, {LogUnmountTrans, "UNMOUNT"}}
	s := ""
	for _, n := range names {
		if o.Flags&n.bit != 0 {
			if s != "" {
				s += " "
			}
			s += n.name
		}
	}
	if rest := o.Flags &^ 0x3f; rest != 0 {
		s += fmt.Sprintf(" 0x%02x", rest)
	}
	if s == "" {
		return "none"
	}
	return s
}

// LogOp is one operation of a record: its header and payload (a slice of the
// unpacked record data).
type LogOp struct {
	Header LogOpHeader
	Data   []byte
}

// ParseLogOps splits unpacked record data into its h_num_logops operations.
// Op headers are never split across records, but payloads may be (flagged
// CONTINUE / WAS_CONT); each op's payload must lie inside the record.
func ParseLogOps(h *LogRecHeader, data []byte, where string) ([]LogOp, error) {
	if len(data) < int(h.Len) {
		return nil, Corrupt("log record", where, "h_len", "data holds %d bytes, record length is %d", len(data), h.Len)
	}
	data = data[:h.Len]
	n := int(h.NumLogOps)
	if uint64(n)*LogOpHeaderSize > uint64(len(data)) {
		return nil, Corrupt("log record", where, "h_num_logops", "%d ops cannot fit in %d bytes", n, len(data))
	}
	ops := make([]LogOp, 0, n)
	off := 0
	for i := 0; i < n; i++ {
		oh, err := DecodeLogOpHeader(data[off:])
		if err != nil {
			return ops, Corrupt("log op header", where, "", "op %d at record offset %d: header runs past the record end (%d bytes)", i, off, len(data))
		}
		if oh.ClientID != LogClientTransaction && oh.ClientID != LogClientLog {
			return ops, Corrupt("log op header", where, "oh_clientid", "op %d at record offset %d: invalid client id 0x%02x", i, off, oh.ClientID)
		}
		start := off + LogOpHeaderSize
		if uint64(oh.Len) > uint64(len(data)-start) {
			return ops, Corrupt("log op header", where, "oh_len", "op %d at record offset %d: length %d runs past the record end (%d bytes)", i, off, oh.Len, len(data))
		}
		ops = append(ops, LogOp{Header: oh, Data: data[start : start+int(oh.Len)]})
		off = start + int(oh.Len)
	}
	return ops, nil
}

// TransHeader is a decoded xfs_trans_header (host byte order, see
// LogRecHeader.ByteOrder).
type TransHeader struct {
	Magic    uint32
	Type     uint32
	TID      uint32
	NumItems uint32
}

// DecodeTransHeader decodes a transaction header in byte order bo.
func DecodeTransHeader(buf []byte, bo binary.ByteOrder) (TransHeader, error) {
	if len(buf) < TransHeaderSize {
		return TransHeader{}, shortErr("transaction header", len(buf), TransHeaderSize)
	}
	t := TransHeader{Magic: bo.Uint32(buf[0:]), Type: bo.Uint32(buf[4:]), TID: bo.Uint32(buf[8:]), NumItems: bo.Uint32(buf[12:])}
	if t.Magic != TransHeaderMagic {
		return t, Corrupt("transaction header", "", "th_magic", "bad magic 0x%08x", t.Magic)
	}
	return t, nil
}

// Encode writes the transaction header in byte order bo.
func (t TransHeader) Encode(buf []byte, bo binary.ByteOrder) {
	bo.PutUint32(buf[0:], t.Magic)
	bo.PutUint32(buf[4:], t.Type)
	bo.PutUint32(buf[8:], t.TID)
	bo.PutUint32(buf[12:], t.NumItems)
}

// IsUnmountPayload reports whether an op payload is an xfs_unmount_log_format
// (magic XLOG_UNMOUNT_TYPE in byte order bo). Kernels since 5.x write the
// unmount op with no payload at all; the op flag is authoritative.
func IsUnmountPayload(p []byte, bo binary.ByteOrder) bool {
	return len(p) >= 2 && bo.Uint16(p) == LogUnmountType
}
