// Package xlog reads the XFS journal: it finds the head and tail of the log
// the way kernel log recovery does, decides whether the log is clean, and
// walks the records between tail and head with CRC verification.
//
// Block numbers here are 512-byte basic blocks relative to the start of the
// log, as in LSNs and xfs_logprint output.
package xlog

import (
	"errors"
	"fmt"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// Scan distances of head finding, from the in-core log geometry: at most
// XLOG_MAX_ICLOGS records of up to 256 KiB (v2) or 32 KiB (v1) can be in
// flight, so that is how far back a torn or out-of-order write can reach.
func recShift(v2 bool) int64 {
	if v2 {
		return ondisk.LogMaxRecordSize / ondisk.BBSize
	}
	return ondisk.LogBigRecordSize / ondisk.BBSize
}

func totalRecShift(v2 bool) int64 { return ondisk.LogMaxIclogs * recShift(v2) }

// Log is the internal log of an opened filesystem.
type Log struct {
	fs     *xfs.FS
	start  uint64 // daddr of log block 0
	blocks int64  // log length in basic blocks
	v2     bool
	uuid   ondisk.UUID
}

// Open locates the internal log of fs.
func Open(fs *xfs.FS) (*Log, error) {
	sb := fs.SB
	if sb.LogStart == 0 {
		return nil, fmt.Errorf("%s: external log devices are not supported", fs.Name())
	}
	if !sb.ValidFSB(sb.LogStart) {
		return nil, ondisk.Corrupt("superblock", fs.Name(), "sb_logstart", "log start block %d is not a valid filesystem block", sb.LogStart)
	}
	blocks := int64(sb.LogBlocks) << (sb.BlockLog - ondisk.BBShift)
	start := sb.FSBToDaddr(sb.LogStart)
	if blocks < 2 || start+uint64(blocks) > sb.DBlocks<<(sb.BlockLog-ondisk.BBShift) {
		return nil, ondisk.Corrupt("superblock", fs.Name(), "sb_logblocks", "log of %d blocks at block %d does not fit the data device", sb.LogBlocks, sb.LogStart)
	}
	return &Log{fs: fs, start: start, blocks: blocks, v2: sb.VersionNum&ondisk.SBVersionLogV2 != 0, uuid: sb.UUID}, nil
}

// Blocks is the log length in basic blocks.
func (l *Log) Blocks() uint32 { return uint32(l.blocks) }

// Daddr is the disk address of log block blk.
func (l *Log) Daddr(blk uint32) uint64 { return l.start + uint64(blk) }

// V2 reports a version 2 log (always so on v5 filesystems).
func (l *Log) V2() bool { return l.v2 }

func (l *Log) where(blk int64) string {
	return fmt.Sprintf("log block %d (daddr %d)", blk, l.start+uint64(blk))
}

func (l *Log) wrap(blk int64) int64 {
	blk %= l.blocks
	if blk < 0 {
		blk += l.blocks
	}
	return blk
}

// read returns n blocks starting at log block blk, wrapping around the
// physical end of the log.
func (l *Log) read(blk int64, n int64) ([]byte, error) {
	if n <= 0 || n > l.blocks {
		return nil, fmt.Errorf("%s: log read of %d blocks (log holds %d)", l.fs.Name(), n, l.blocks)
	}
	blk = l.wrap(blk)
	buf := make([]byte, n*ondisk.BBSize)
	first := min(n, l.blocks-blk)
	if err := l.fs.ReadDaddrInto(l.start+uint64(blk), buf[:first*ondisk.BBSize]); err != nil {
		return nil, err
	}
	if first < n {
		if err := l.fs.ReadDaddrInto(l.start, buf[first*ondisk.BBSize:]); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func (l *Log) cycle(blk int64) (uint32, error) {
	b, err := l.read(blk, 1)
	if err != nil {
		return 0, err
	}
	return ondisk.LogBlockCycle(b), nil
}

// findCycleStart binary-searches [first, *last] for the first block stamped
// with cycle, assuming first holds another cycle and *last holds cycle.
func (l *Log) findCycleStart(first int64, last *int64, cycle uint32) error {
	end := *last
	for mid := (first + end) / 2; mid != first && mid != end; mid = (first + end) / 2 {
		c, err := l.cycle(mid)
		if err != nil {
			return err
		}
		if c == cycle {
			end = mid
		} else {
			first = mid
		}
	}
	*last = end
	return nil
}

// findCycle returns the first block in [start, start+n) stamped with cycle,
// or -1.
func (l *Log) findCycle(start, n int64, cycle uint32) (int64, error) {
	const chunk = 2048
	for i := start; i < start+n; i += chunk {
		cnt := min(chunk, start+n-i)
		b, err := l.read(i, cnt)
		if err != nil {
			return -1, err
		}
		for j := int64(0); j < cnt; j++ {
			if ondisk.LogBlockCycle(b[j*ondisk.BBSize:]) == cycle {
				return i + j, nil
			}
		}
	}
	return -1, nil
}

// errReported stops a walk after a header error already passed to its
// callback.
var errReported = errors.New("log walk stopped at a bad record header")

// errHitStart means a backwards search for a record header ran into block 0.
var errHitStart = errors.New("reached the start of the log")

// backUpToRecord looks backwards from *last-1 (not below start) for a record
// header. If *last is not exactly the end of that record (counting extra
// blocks already seen past the physical end), *last moves to the header,
// trimming a partially written record.
func (l *Log) backUpToRecord(start int64, last *int64, extra int64) error {
	n := *last - start
	if n <= 0 {
		if *last == 0 {
			return errHitStart
		}
		return ondisk.Corrupt("log", l.fs.Name(), "", "no record header between log blocks %d and %d", start, *last)
	}
	buf, err := l.read(start, n)
	if err != nil {
		return err
	}
	i := *last - 1
	for ; i >= start; i-- {
		if ondisk.IsLogRecHeader(buf[(i-start)*ondisk.BBSize:]) {
			break
		}
	}
	if i < start {
		if start == 0 {
			return errHitStart
		}
		return ondisk.Corrupt("log", l.fs.Name(), "", "log inconsistent: no record header in log blocks %d..%d before the head", start, *last-1)
	}
	h, err := ondisk.DecodeLogRecHeader(buf[(i-start)*ondisk.BBSize:])
	if err != nil {
		return err
	}
	if !h.FSUUID.IsZero() && h.FSUUID != l.uuid {
		return ondisk.Corrupt("log record header", l.where(i), "h_fs_uuid", "log belongs to filesystem %v, not %v", h.FSUUID, l.uuid)
	}
	if *last-i+extra != int64(h.DataBlocks()+h.HeaderBlocks(l.v2)) {
		*last = i
	}
	return nil
}

// findZeroed reports whether the log has never been fully written (its end
// still holds cycle 0) and if so returns the first unwritten block, which is
// the head.
func (l *Log) findZeroed() (blk int64, zeroed bool, err error) {
	first, err := l.cycle(0)
	if err != nil {
		return 0, false, err
	}
	if first == 0 {
		return 0, true, nil
	}
	lastCycle, err := l.cycle(l.blocks - 1)
	if err != nil {
		return 0, false, err
	}
	if lastCycle != 0 {
		return 0, false, nil
	}
	if first != 1 {
		return 0, false, ondisk.Corrupt("log", l.fs.Name(), "", "log inconsistent or not a log: last block has cycle 0 but block 0 has cycle %d", first)
	}
	last := l.blocks - 1
	if err := l.findCycleStart(0, &last, 0); err != nil {
		return 0, false, err
	}
	scan := min(totalRecShift(l.v2), last)
	start := last - scan
	// A zero block before the binary search's answer is the real start.
	if nb, err := l.findCycle(start, scan, 0); err != nil {
		return 0, false, err
	} else if nb != -1 {
		last = nb
	}
	if err := l.backUpToRecord(start, &last, 0); err != nil {
		if err == errHitStart {
			return 0, false, ondisk.Corrupt("log", l.fs.Name(), "", "no record header before the first unwritten block %d", last)
		}
		return 0, false, err
	}
	return last, true, nil
}

// findHead finds the block where the next log write would go: the first
// block of the oldest cycle after the newest one, backed up over any
// partially written record.
func (l *Log) findHead() (int64, error) {
	if blk, zeroed, err := l.findZeroed(); err != nil {
		return 0, err
	} else if zeroed {
		return blk, nil
	}
	firstHalf, err := l.cycle(0)
	if err != nil {
		return 0, err
	}
	lastBlk := l.blocks - 1
	lastHalf, err := l.cycle(lastBlk)
	if err != nil {
		return 0, err
	}
	var head int64
	var stop uint32
	if firstHalf == lastHalf {
		// The whole log carries one cycle, unless a hole of the previous
		// cycle remains near the end; log_bbnum stands for block 0.
		head = l.blocks
		stop = lastHalf - 1
	} else {
		stop = lastHalf
		head = lastBlk
		if err := l.findCycleStart(0, &head, lastHalf); err != nil {
			return 0, err
		}
	}
	// Writes may complete out of order: look back over the maximum amount
	// of in-flight log I/O for blocks that contradict the answer.
	scan := min(totalRecShift(l.v2), l.blocks)
	if head >= scan {
		nb, err := l.findCycle(head-scan, scan, stop)
		if err != nil {
			return 0, err
		}
		if nb != -1 {
			head = nb
		}
	} else {
		// Part of the scan is at the physical end of the log.
		start := l.blocks - (scan - head)
		nb, err := l.findCycle(start, scan-head, stop-1)
		if err != nil {
			return 0, err
		}
		if nb != -1 {
			head = nb
		} else {
			nb, err := l.findCycle(0, head, stop)
			if err != nil {
				return 0, err
			}
			if nb != -1 {
				head = nb
			}
		}
	}
	// Make sure head is not in the middle of a record.
	scan = min(recShift(l.v2), l.blocks)
	if head >= scan {
		if err := l.backUpToRecord(head-scan, &head, 0); err != nil {
			if err == errHitStart {
				return 0, ondisk.Corrupt("log", l.fs.Name(), "", "no record header before head block %d", head)
			}
			return 0, err
		}
	} else {
		err := l.backUpToRecord(0, &head, 0)
		if err == errHitStart {
			// The last record may straddle the physical end.
			nb := l.blocks
			if err := l.backUpToRecord(l.blocks-(scan-head), &nb, head); err != nil {
				if err == errHitStart {
					return 0, ondisk.Corrupt("log", l.fs.Name(), "", "no record header before head block %d", head)
				}
				return 0, err
			}
			if nb != l.blocks {
				head = nb
			}
		} else if err != nil {
			return 0, err
		}
	}
	if head == l.blocks {
		head = 0
	}
	return head, nil
}

// rseekHeader searches backwards from head for up to count record headers,
// stopping at tail; if the search passes block 0 it continues from the
// physical end (wrapped). It returns the last header found and how many.
func (l *Log) rseekHeader(head, tail int64, count int) (blk int64, hdr []byte, wrapped bool, found int, err error) {
	end := int64(0)
	if head > tail {
		end = tail
	}
	look := func(from, to int64, wrap bool) error {
		// Read backwards in chunks, newest first.
		const chunk = 256
		for hi := from; hi >= to && found < count; {
			lo := max(to, hi-chunk+1)
			b, err := l.read(lo, hi-lo+1)
			if err != nil {
				return err
			}
			for i := hi; i >= lo; i-- {
				p := b[(i-lo)*ondisk.BBSize : (i-lo+1)*ondisk.BBSize]
				if ondisk.IsLogRecHeader(p) {
					blk, hdr, wrapped = i, p, wrap
					if found++; found == count {
						return nil
					}
				}
			}
			hi = lo - 1
		}
		return nil
	}
	if head > 0 {
		if err = look(head-1, end, false); err != nil {
			return
		}
	}
	if tail >= head && found != count {
		err = look(l.blocks-1, tail, true)
	}
	return
}

// TornWrite records a head trimmed back over records that failed
// verification: the kernel treats these as log writes torn by a crash.
type TornWrite struct {
	Block    uint32 // first record that failed, now the head
	OrigHead uint32 // head before trimming
	Err      error  // what failed (CRC or header), naming the block
}

// State is the position and condition of the log.
type State struct {
	HeadBlock, HeadCycle uint32 // where the next write goes
	TailBlock, TailCycle uint32 // oldest record still needed
	// Clean: nothing to replay (head right after an unmount record, or a
	// zeroed log). Dirty logs need recovery before the filesystem is
	// consistent.
	Clean  bool
	Zeroed bool // log never written (no records at all)
	// The last record before the head.
	LastRecordBlock uint32
	LastRecordLSN   ondisk.LSN
	LastTailLSN     ondisk.LSN // that record's h_tail_lsn
	Unmount         bool       // it is an unmount record
	// Records is the number of records from tail to head (to replay).
	Records int
	Torn    *TornWrite
}

func (s *State) String() string {
	st := "dirty"
	if s.Clean {
		st = "clean"
	}
	return fmt.Sprintf("head %d:%d tail %d:%d %s, %d records to replay", s.HeadCycle, s.HeadBlock, s.TailCycle, s.TailBlock, st, s.Records)
}

// Find locates head and tail as kernel log recovery does (xlog_find_tail):
// head from the cycle stamps, the last record before it, the tail from its
// h_tail_lsn, an unmount record at the head meaning clean; for dirty logs
// the last few records are CRC-checked and torn ones trimmed off the head.
// On error the partially filled State is returned with it where possible.
func (l *Log) Find() (*State, error) {
	head, err := l.findHead()
	if err != nil {
		return nil, err
	}
	st := &State{}
	if head == 0 {
		if c, err := l.cycle(0); err != nil {
			return nil, err
		} else if c == 0 {
			st.Zeroed, st.Clean = true, true
			return st, nil
		}
	}
	rblk, hdr, wrapped, found, err := l.rseekHeader(head, head, 1)
	if err != nil {
		return nil, err
	}
	if found == 0 {
		return nil, ondisk.Corrupt("log", l.fs.Name(), "", "no record header before head block %d", head)
	}
	rh, err := l.header(rblk, hdr)
	if err != nil {
		return nil, err
	}
	tail := int64(rh.TailLSN.Block())
	l.setState(st, head, rblk, rh, wrapped)
	if err := l.checkUnmount(st, head, rblk, rh); err != nil {
		return st, err
	}
	if !st.Clean {
		origHead := head
		nhead, nrblk, nrh, nwrapped, torn, err := l.verifyHead(head, tail, rblk, rh, wrapped)
		if err != nil {
			return st, err
		}
		if torn != nil {
			st.Torn = torn
			torn.OrigHead = uint32(origHead)
		}
		if nhead != origHead {
			l.setState(st, nhead, nrblk, nrh, nwrapped)
			if err := l.checkUnmount(st, nhead, nrblk, nrh); err != nil {
				return st, err
			}
		}
	}
	if !st.Clean {
		n, err := l.count(int64(st.TailBlock), int64(st.HeadBlock))
		st.Records = n
		if err != nil {
			return st, fmt.Errorf("walking the log from tail %d to head %d: %w", st.TailBlock, st.HeadBlock, err)
		}
	}
	return st, nil
}

// header decodes and verifies the record header block at blk.
func (l *Log) header(blk int64, b []byte) (*ondisk.LogRecHeader, error) {
	h, err := ondisk.DecodeLogRecHeader(b)
	if err != nil {
		return nil, err
	}
	if err := h.Verify(l.where(blk), uint32(l.blocks), l.v2, l.uuid); err != nil {
		return nil, err
	}
	if int64(h.LSN.Block()) != blk {
		return nil, ondisk.Corrupt("log record header", l.where(blk), "h_lsn", "lsn %v names another block", h.LSN)
	}
	return h, nil
}

func (l *Log) setState(st *State, head, rblk int64, rh *ondisk.LogRecHeader, wrapped bool) {
	st.HeadBlock = uint32(head)
	st.HeadCycle = rh.Cycle
	if wrapped {
		// The last record sits before the physical end; the next write
		// starts the following cycle at the front.
		st.HeadCycle++
	}
	st.TailBlock, st.TailCycle = rh.TailLSN.Block(), rh.TailLSN.Cycle()
	st.LastRecordBlock = uint32(rblk)
	st.LastRecordLSN = rh.LSN
	st.LastTailLSN = rh.TailLSN
	st.Unmount, st.Clean = false, false
}

// checkUnmount marks the log clean when the record just before the head is
// a lone unmount record; the tail then moves to the head.
func (l *Log) checkUnmount(st *State, head, rblk int64, rh *ondisk.LogRecHeader) error {
	hb := int64(rh.HeaderBlocks(l.v2))
	after := l.wrap(rblk + hb + int64(rh.DataBlocks()))
	if head != after || rh.NumLogOps != 1 {
		return nil
	}
	b, err := l.read(rblk+hb, 1)
	if err != nil {
		return err
	}
	if rh.IsUnmount(b) {
		st.Unmount, st.Clean = true, true
		st.TailBlock, st.TailCycle = uint32(after), st.HeadCycle
	}
	return nil
}

// verifyHead CRC-checks the last XLOG_MAX_ICLOGS records before head; the
// first failure is taken as a torn write and the head moves back to it.
func (l *Log) verifyHead(head, tail, rblk int64, rh *ondisk.LogRecHeader, wrapped bool) (int64, int64, *ondisk.LogRecHeader, bool, *TornWrite, error) {
	from, _, _, found, err := l.rseekHeader(head, tail, ondisk.LogMaxIclogs)
	if err != nil {
		return 0, 0, nil, false, nil, err
	}
	if found == 0 {
		return head, rblk, rh, wrapped, nil, nil
	}
	var bad int64 = -1
	var badErr error
	err = l.walk(from, head, walkCRC, func(r *Record, rerr error) error {
		if rerr != nil {
			bad, badErr = int64(r.Block), rerr
			return rerr
		}
		return nil
	})
	if bad < 0 {
		if err != nil {
			return 0, 0, nil, false, nil, err
		}
		return head, rblk, rh, wrapped, nil, nil
	}
	nrblk, hdr, nwrapped, found, err := l.rseekHeader(bad, tail, 1)
	if err != nil {
		return 0, 0, nil, false, nil, err
	}
	if found == 0 {
		return 0, 0, nil, false, nil, fmt.Errorf("torn write at %s and no earlier record: %w", l.where(bad), badErr)
	}
	nrh, err := l.header(nrblk, hdr)
	if err != nil {
		return 0, 0, nil, false, nil, err
	}
	return bad, nrblk, nrh, nwrapped, &TornWrite{Block: uint32(bad), Err: badErr}, nil
}

// Record is one log record read between tail and head.
type Record struct {
	Block        uint32 // log block of the header
	Daddr        uint64 // disk address of the header
	Header       *ondisk.LogRecHeader
	HeaderBlocks int
	Data         []byte         // h_len bytes, cycle words restored
	Ops          []ondisk.LogOp // slices of Data
	CRCChecked   bool           // false for a zero stored CRC (as mkfs writes)
}

type walkMode int

const (
	walkHeaders walkMode = iota // headers only
	walkCRC                     // headers and CRCs; stop at the first failure
	walkFull                    // headers, CRCs, unpacked data and ops
)

// walk visits the records from block from up to block to. fn gets either a
// record or, with a partially filled record, the error that record caused;
// fn's error stops the walk. Header errors always stop it, since the next
// record cannot be located; if fn returned nil for one, walk returns
// errReported.
func (l *Log) walk(from, to int64, mode walkMode, fn func(*Record, error) error) error {
	blk := l.wrap(from)
	to = l.wrap(to)
	walked := int64(0)
	for blk != to {
		if walked >= l.blocks {
			return ondisk.Corrupt("log", l.fs.Name(), "", "records from block %d never reach block %d", from, to)
		}
		first, err := l.read(blk, 1)
		if err != nil {
			return err
		}
		rec := &Record{Block: uint32(blk), Daddr: l.start + uint64(blk)}
		if !ondisk.IsLogRecHeader(first) {
			err := ondisk.Corrupt("log record header", l.where(blk), "h_magicno", "no record header where the previous record ends (cycle %d)", ondisk.LogBlockCycle(first))
			if ferr := fn(rec, err); ferr != nil {
				return ferr
			}
			return errReported
		}
		h, err := l.header(blk, first)
		if err != nil {
			if ferr := fn(rec, err); ferr != nil {
				return ferr
			}
			return errReported
		}
		hb, db := int64(h.HeaderBlocks(l.v2)), int64(h.DataBlocks())
		rec.Header, rec.HeaderBlocks = h, int(hb)
		if left := l.wrap(to - blk); hb+db > left {
			err := ondisk.Corrupt("log record", l.where(blk), "h_len", "record of %d blocks runs past block %d", hb+db, to)
			if ferr := fn(rec, err); ferr != nil {
				return ferr
			}
			return errReported
		}
		if mode != walkHeaders {
			hdrs, err := l.read(blk, hb)
			if err != nil {
				return err
			}
			data, err := l.read(blk+hb, db)
			if err != nil {
				return err
			}
			checked, rerr := ondisk.VerifyLogRecordCRC(h, hdrs, data, l.v2, l.where(blk))
			rec.CRCChecked = checked
			if rerr == nil && mode == walkFull {
				if rerr = ondisk.UnpackLogRecord(h, hdrs, data, l.v2); rerr == nil {
					rec.Data = data[:h.Len]
					rec.Ops, rerr = ondisk.ParseLogOps(h, data, l.where(blk))
				}
			}
			if rerr != nil {
				if ferr := fn(rec, rerr); ferr != nil {
					return ferr
				}
				blk = l.wrap(blk + hb + db)
				walked += hb + db
				continue
			}
		}
		if err := fn(rec, nil); err != nil {
			return err
		}
		blk = l.wrap(blk + hb + db)
		walked += hb + db
	}
	return nil
}

func (l *Log) count(from, to int64) (int, error) {
	n := 0
	err := l.walk(from, to, walkHeaders, func(_ *Record, err error) error {
		if err == nil {
			n++
		}
		return err
	})
	return n, err
}

// Walk visits every record from log block from up to block to (normally a
// State's tail and head) in log order, with CRCs verified, cycle words
// restored and operations split out. The first bad record stops the walk
// with a *ondisk.CorruptError naming its block.
func (l *Log) Walk(from, to uint32, fn func(*Record) error) error {
	return l.walk(int64(from), int64(to), walkFull, func(r *Record, err error) error {
		if err != nil {
			return err
		}
		return fn(r)
	})
}

// Verify checks every record between tail and head of st and returns all
// problems found (joined), continuing past records whose CRC fails since
// their headers still say where the next record starts.
func (l *Log) Verify(st *State) error {
	if st.Clean {
		return nil
	}
	var errs []error
	err := l.walk(int64(st.TailBlock), int64(st.HeadBlock), walkFull, func(_ *Record, err error) error {
		if err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil && err != errReported {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Find opens the log of fs and finds its state.
func Find(fs *xfs.FS) (*State, error) {
	l, err := Open(fs)
	if err != nil {
		return nil, err
	}
	return l.Find()
}
