package xlog

import (
	"encoding/binary"
	"math/rand"
	"os"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// synthLog writes records into an in-memory copy of a log the way the kernel
// lays them out (cycle stamping, extended headers, records split over the
// physical end with the wrapped part stamped with the next cycle), so head
// and tail finding can be checked against known answers.
type synthLog struct {
	buf    []byte
	blocks int64
	uuid   ondisk.UUID
	size   uint32 // iclog size (h_size)
	blk    int64  // next write position
	cycle  uint32
	lsns   []ondisk.LSN // records written, oldest first
	rnd    *rand.Rand
}

func newSynthLog(blocks int64, uuid ondisk.UUID, size uint32, seed int64) *synthLog {
	return &synthLog{buf: make([]byte, blocks*512), blocks: blocks, uuid: uuid, size: size, cycle: 1, rnd: rand.New(rand.NewSource(seed))}
}

// record builds one sealed record of db data blocks at the current position.
// unmount makes it a lone unmount record. tailBack picks the tail LSN that
// many records back.
func (s *synthLog) record(db int, unmount bool, tailBack int) (start int64, img []byte) {
	lsn := ondisk.MakeLSN(s.cycle, uint32(s.blk))
	tail := lsn
	if n := len(s.lsns); tailBack > 0 && n > 0 {
		tail = s.lsns[max(0, n-tailBack)]
	}
	h := &ondisk.LogRecHeader{Magic: ondisk.LogHeaderMagic, Cycle: s.cycle, Version: ondisk.LogVersion2,
		Len: uint32(db * 512), LSN: lsn, TailLSN: tail, PrevBlock: 0xffffffff, NumLogOps: 1,
		Fmt: ondisk.LogFmtLinuxLE, FSUUID: s.uuid, Size: s.size}
	hb := h.HeaderBlocks(true)
	rec := make([]byte, (hb+db)*512)
	hdrs, data := rec[:hb*512], rec[hb*512:]
	s.rnd.Read(data)
	op := ondisk.LogOpHeader{TID: s.rnd.Uint32(), Len: uint32(db*512 - 12), ClientID: ondisk.LogClientTransaction, Flags: ondisk.LogStartTrans}
	if unmount {
		clear(data)
		h.Len = 512
		op = ondisk.LogOpHeader{TID: 1, Len: 8, ClientID: ondisk.LogClientLog, Flags: ondisk.LogUnmountTrans}
		binary.LittleEndian.PutUint16(data[12:], ondisk.LogUnmountType)
	}
	op.Encode(data)
	for i := 1; i < hb; i++ {
		clear(hdrs[i*512 : (i+1)*512])
	}
	if err := ondisk.PackLogRecord(h, hdrs, data, true, s.cycle); err != nil {
		panic(err)
	}
	for i := 1; i < hb; i++ {
		binary.BigEndian.PutUint32(hdrs[i*512:], s.cycle)
	}
	h.Encode(hdrs)
	// Blocks past the physical end land at the front in the next cycle.
	for i := 0; i < hb+db; i++ {
		if s.blk+int64(i) >= s.blocks && i > 0 {
			binary.BigEndian.PutUint32(rec[i*512:], s.cycle+1)
		}
	}
	if err := ondisk.SealLogRecord(h, hdrs, data, true); err != nil {
		panic(err)
	}
	return s.blk, rec
}

// put copies rec to the log at start, wrapping; only blocks in keep (nil:
// all) are written.
func (s *synthLog) put(start int64, rec []byte, keep func(i int) bool) {
	for i := 0; i*512 < len(rec); i++ {
		if keep != nil && !keep(i) {
			continue
		}
		b := (start + int64(i)) % s.blocks
		copy(s.buf[b*512:(b+1)*512], rec[i*512:(i+1)*512])
	}
}

// append writes a complete record and advances.
func (s *synthLog) append(db int, unmount bool, tailBack int) (int64, []byte) {
	start, rec := s.record(db, unmount, tailBack)
	s.put(start, rec, nil)
	s.lsns = append(s.lsns, ondisk.MakeLSN(s.cycle, uint32(start)))
	s.blk += int64(len(rec) / 512)
	if s.blk >= s.blocks {
		s.blk -= s.blocks
		s.cycle++
	}
	return start, rec
}

// synthImage makes an mkfs image with the smallest log mkfs allows and
// returns it with the log geometry.
func synthImage(t *testing.T) (img string, start int64, blocks int64, uuid ondisk.UUID) {
	t.Helper()
	img = oracle.Mkfs(t, "300m", "--unsupported", "-l", "size=1368b")
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	l, err := Open(fs)
	if err != nil {
		t.Fatal(err)
	}
	return img, int64(l.start) * 512, int64(l.blocks), fs.SB.UUID
}

func writeLog(t *testing.T, img string, start int64, buf []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(buf, start); err != nil {
		t.Fatal(err)
	}
}

func findImg(t *testing.T, img string) (*Log, *State, error) {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	l, err := Open(fs)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Find()
	return l, st, err
}

// TestFindSynthetic runs head/tail finding over many generated logs: stopped
// at random points of the first to third cycle, with the last record
// complete, torn (partly written, in or out of order), CRC-damaged, or an
// unmount record, and with small and 256 KiB iclogs.
func TestFindSynthetic(t *testing.T) {
	img, start, blocks, uuid := synthImage(t)
	const runs = 60
	for run := 0; run < runs; run++ {
		size := uint32(32768)
		if run%2 == 1 {
			size = 256 * 1024
		}
		s := newSynthLog(blocks, uuid, size, int64(run))
		maxData := int(size/512) - ondisk.LogCycleWords // keep records well inside h_size
		if size == 32768 {
			maxData = 63
		}
		// Total blocks to write before the final record: 0.3 to 2.7 logs.
		target := int64(float64(blocks) * (0.3 + 2.4*s.rnd.Float64()))
		written := int64(0)
		var lastStart int64
		var last []byte
		var lastHdr *ondisk.LogRecHeader
		for written < target {
			db := 1 + s.rnd.Intn(maxData)
			lastStart, last = s.append(db, false, 1+s.rnd.Intn(4))
			written += int64(len(last) / 512)
		}
		lastHdr, _ = ondisk.DecodeLogRecHeader(last)
		endCycle, endBlk := s.cycle, s.blk
		mode := run % 5
		var tornAt int64 = -1
		switch mode {
		case 1: // next record only partly written, in order
			st, rec := s.record(1+s.rnd.Intn(maxData), false, 1)
			n := 1 + s.rnd.Intn(len(rec)/512-1)
			s.put(st, rec, func(i int) bool { return i < n })
		case 2: // next record written except its header (out of order)
			st, rec := s.record(2+s.rnd.Intn(maxData-1), false, 1)
			s.put(st, rec, func(i int) bool { return i > 0 })
		case 3: // last complete record has a bad CRC: a torn write
			hb := lastHdr.HeaderBlocks(true)
			b := (lastStart + int64(hb)) % blocks
			s.buf[b*512+100] ^= 0xff
			tornAt = lastStart
		case 4: // clean unmount
			lastStart, last = s.append(1, true, 1)
			lastHdr, _ = ondisk.DecodeLogRecHeader(last)
			endCycle, endBlk = s.cycle, s.blk
		}
		writeLog(t, img, start, s.buf)
		l, st, err := findImg(t, img)
		if err != nil {
			t.Fatalf("run %d (mode %d, %d blocks written): %v", run, mode, written, err)
		}
		wantHead, wantCycle, wantTail := endBlk, endCycle, lastHdr.TailLSN.Block()
		if mode == 4 {
			wantTail = uint32(endBlk) // the tail moves up to the unmount record's end
		}
		if tornAt >= 0 {
			// Head moves back to the damaged record; tail from the one before.
			wantHead = tornAt
			prev := s.lsns[len(s.lsns)-2]
			wantCycle = prev.Cycle()
			if tornAt < int64(prev.Block()) {
				wantCycle++
			}
			if st.Torn == nil || int64(st.Torn.Block) != tornAt || st.Torn.Err == nil {
				t.Fatalf("run %d: torn write at %d not reported: %+v", run, tornAt, st.Torn)
			}
			ph := s.buf[int64(prev.Block())*512:]
			h, _ := ondisk.DecodeLogRecHeader(ph)
			wantTail = h.TailLSN.Block()
		}
		if int64(st.HeadBlock) != wantHead || st.HeadCycle != wantCycle || int64(st.TailBlock) != int64(wantTail) {
			t.Fatalf("run %d (mode %d, size %d): got %v, want head %d:%d tail %d", run, mode, size, st, wantCycle, wantHead, wantTail)
		}
		if tornAt < 0 && st.Torn != nil {
			t.Fatalf("run %d (mode %d): unexpected torn write %+v", run, mode, st.Torn)
		}
		if mode == 4 {
			if !st.Clean || !st.Unmount || st.TailBlock != st.HeadBlock || st.Records != 0 {
				t.Fatalf("run %d: unmount record at head, got %v", run, st)
			}
			continue
		}
		if st.Clean {
			t.Fatalf("run %d: transaction records at head reported clean", run)
		}
		// Every record from tail to head verifies and parses.
		n := 0
		if err := l.Walk(st.TailBlock, st.HeadBlock, func(r *Record) error {
			n++
			if !r.CRCChecked || len(r.Ops) != 1 || r.Ops[0].Header.Flags != ondisk.LogStartTrans {
				t.Fatalf("run %d: record at %d: checked=%v ops=%d", run, r.Block, r.CRCChecked, len(r.Ops))
			}
			return nil
		}); err != nil {
			t.Fatalf("run %d: walk %v: %v", run, st, err)
		}
		if n != st.Records || n == 0 {
			t.Fatalf("run %d: walked %d records, state says %d", run, n, st.Records)
		}
		if err := l.Verify(st); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
}

// TestFindZeroedLog: a log never written is clean with head = tail = 0.
func TestFindZeroedLog(t *testing.T) {
	img, start, blocks, _ := synthImage(t)
	writeLog(t, img, start, make([]byte, blocks*512))
	_, st, err := findImg(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Zeroed || !st.Clean || st.HeadBlock != 0 || st.TailBlock != 0 {
		t.Fatalf("zeroed log: %+v", st)
	}
}

// TestFindGarbage: a log area holding no records is an error, not a panic.
func TestFindGarbage(t *testing.T) {
	img, start, blocks, _ := synthImage(t)
	buf := make([]byte, blocks*512)
	rand.New(rand.NewSource(1)).Read(buf)
	writeLog(t, img, start, buf)
	if _, _, err := findImg(t, img); err == nil {
		t.Fatal("random log area accepted")
	}
	// All blocks stamped cycle 5 but no headers at all.
	for i := int64(0); i < blocks; i++ {
		binary.BigEndian.PutUint32(buf[i*512:], 5)
	}
	writeLog(t, img, start, buf)
	if _, _, err := findImg(t, img); err == nil {
		t.Fatal("headerless log accepted")
	}
}

// TestFindMutated damages generated logs at random (headers, data, cycle
// stamps); Find, Walk and Verify must return answers or errors, never
// panic or loop.
func TestFindMutated(t *testing.T) {
	img, start, blocks, uuid := synthImage(t)
	for run := 0; run < 25; run++ {
		s := newSynthLog(blocks, uuid, []uint32{32768, 65536, 256 * 1024}[run%3], int64(100+run))
		for w := int64(0); w < blocks*int64(1+run%3)/2; {
			_, rec := s.append(1+s.rnd.Intn(60), s.rnd.Intn(10) == 0, 1+s.rnd.Intn(3))
			w += int64(len(rec) / 512)
		}
		for i := 0; i < 1+s.rnd.Intn(20); i++ {
			b := s.rnd.Int63n(blocks)
			switch s.rnd.Intn(3) {
			case 0: // random bytes in a whole block
				s.rnd.Read(s.buf[b*512 : (b+1)*512])
			case 1: // a header field
				if ondisk.IsLogRecHeader(s.buf[b*512:]) {
					off := 4 * s.rnd.Int63n(12)
					binary.BigEndian.PutUint32(s.buf[b*512+off:], s.rnd.Uint32())
				}
			case 2: // a cycle stamp
				binary.BigEndian.PutUint32(s.buf[b*512:], uint32(s.rnd.Intn(4)))
			}
		}
		writeLog(t, img, start, s.buf)
		l, st, err := findImg(t, img)
		if err != nil || st == nil {
			continue
		}
		l.Verify(st)
		l.Walk(st.TailBlock, st.HeadBlock, func(*Record) error { return nil })
	}
}
