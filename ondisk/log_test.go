package ondisk_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// logImage is an image file plus the geometry of its internal log.
type logImage struct {
	f      *os.File
	sb     *ondisk.Superblock
	start  int64  // byte offset of the log
	blocks uint32 // log size in basic blocks
}

func openLogImage(t *testing.T, img string) *logImage {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf := make([]byte, ondisk.BBSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(buf)
	if err != nil {
		t.Fatal(err)
	}
	return &logImage{f: f, sb: sb, start: int64(sb.FSBToDaddr(sb.LogStart)) << ondisk.BBShift,
		blocks: sb.LogBlocks << (sb.BlockLog - ondisk.BBShift)}
}

func (l *logImage) read(t *testing.T, blk uint32, n int) []byte {
	t.Helper()
	if uint64(blk)+uint64(n) > uint64(l.blocks) {
		t.Fatalf("read of %d blocks at log block %d past the log's %d blocks", n, blk, l.blocks)
	}
	b := make([]byte, n*ondisk.BBSize)
	if _, err := l.f.ReadAt(b, l.start+int64(blk)*ondisk.BBSize); err != nil {
		t.Fatal(err)
	}
	return b
}

// logRec is one record read straight off an unwrapped log.
type logRec struct {
	blk  uint32
	h    *ondisk.LogRecHeader
	hdrs []byte
	data []byte // as on disk
}

// records walks an unwrapped log from block 0 while headers follow each other.
func (l *logImage) records(t *testing.T) []logRec {
	t.Helper()
	var recs []logRec
	for blk := uint32(0); blk < l.blocks; {
		b := l.read(t, blk, 1)
		// The kernel stamps blocks past the head with cycle-0 headers
		// (clearing stale blocks at mount); they end the walk too.
		if !ondisk.IsLogRecHeader(b) || ondisk.LogBlockCycle(b) == 0 {
			break
		}
		h, err := ondisk.DecodeLogRecHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Verify(fmt.Sprintf("log block %d", blk), l.blocks, true, l.sb.UUID); err != nil {
			t.Fatal(err)
		}
		hb := h.HeaderBlocks(true)
		recs = append(recs, logRec{blk: blk, h: h, hdrs: l.read(t, blk, hb), data: l.read(t, blk+uint32(hb), h.DataBlocks())})
		blk += uint32(hb + h.DataBlocks())
	}
	return recs
}

var logprintHeader = regexp.MustCompile(`^\s*(\d+) HEADER Cycle (\d+) tail (\d+):(\d+) len\s+(\d+) ops (\d+)`)

// logprintHeaders parses `xfs_logprint -d` record lines with a non-zero cycle.
func logprintHeaders(t *testing.T, img string) []string {
	t.Helper()
	out := oracle.Run(t, "xfs_logprint", "-d", img)
	var got []string
	for _, line := range strings.Split(out, "\n") {
		m := logprintHeader.FindStringSubmatch(line)
		if m == nil || m[2] == "0" {
			continue
		}
		tb, _ := strconv.Atoi(m[4])
		got = append(got, fmt.Sprintf("%s cycle %s tail %s:%d len %s ops %s", m[1], m[2], m[3], tb, m[5], m[6]))
	}
	return got
}

func TestLSN(t *testing.T) {
	l := ondisk.MakeLSN(3, 0x1234)
	if l.Cycle() != 3 || l.Block() != 0x1234 || uint64(l) != 3<<32|0x1234 || l.String() != "3:4660" {
		t.Fatalf("MakeLSN(3, 0x1234) = %#x (%v)", uint64(l), l)
	}
	cases := []struct {
		a, b ondisk.LSN
		want int
	}{
		{ondisk.MakeLSN(1, 5), ondisk.MakeLSN(1, 5), 0},
		{ondisk.MakeLSN(1, 5), ondisk.MakeLSN(1, 6), -1},
		{ondisk.MakeLSN(2, 0), ondisk.MakeLSN(1, 99999), 1},
		{ondisk.MakeLSN(1, 0xffffffff), ondisk.MakeLSN(2, 0), -1},
	}
	for _, c := range cases {
		if got := ondisk.CompareLSN(c.a, c.b); got != c.want {
			t.Errorf("CompareLSN(%v, %v) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	hdr := make([]byte, 512)
	binary.BigEndian.PutUint32(hdr, ondisk.LogHeaderMagic)
	binary.BigEndian.PutUint32(hdr[4:], 7)
	if ondisk.LogBlockCycle(hdr) != 7 || !ondisk.IsLogRecHeader(hdr) {
		t.Fatal("header block cycle not taken from h_cycle")
	}
	binary.BigEndian.PutUint32(hdr, 9)
	if ondisk.LogBlockCycle(hdr) != 9 || ondisk.IsLogRecHeader(hdr) {
		t.Fatal("data block cycle not taken from the first word")
	}
}

// TestLogMkfsUnmountRecord decodes the unmount record mkfs.xfs writes and
// checks it against xfs_logprint.
func TestLogMkfsUnmountRecord(t *testing.T) {
	img := oracle.Mkfs(t, "300m")
	li := openLogImage(t, img)
	recs := li.records(t)
	if len(recs) != 1 {
		t.Fatalf("fresh log holds %d records, want 1", len(recs))
	}
	r := recs[0]
	h := r.h
	if h.Cycle != 1 || h.LSN != ondisk.MakeLSN(1, 0) || h.TailLSN != ondisk.MakeLSN(1, 0) || h.Len != 512 ||
		h.NumLogOps != 1 || h.Version != ondisk.LogVersion2 || h.Fmt != ondisk.LogFmtLinuxLE ||
		h.PrevBlock != 0xffffffff || h.FSUUID != li.sb.UUID || h.Size != 32768 || h.CRC != 0 {
		t.Fatalf("mkfs unmount record header: %+v", h)
	}
	if want := logprintHeaders(t, img); len(want) != 1 || want[0] != "0 cycle 1 tail 1:0 len 512 ops 1" {
		t.Fatalf("xfs_logprint -d headers: %q", want)
	}
	// Round trip of the header sector.
	enc := make([]byte, 512)
	h.Encode(enc)
	if !bytes.Equal(enc, r.hdrs[:512]) {
		t.Fatal("header Encode does not reproduce mkfs's bytes")
	}
	if !h.IsUnmount(r.data) {
		t.Fatal("IsUnmount false for mkfs's unmount record")
	}
	checked, err := ondisk.VerifyLogRecordCRC(h, r.hdrs, r.data, true, "log block 0")
	if err != nil || checked {
		t.Fatalf("zero CRC of mkfs record: checked=%v err=%v (want accepted unchecked)", checked, err)
	}
	raw := append([]byte(nil), r.data...)
	if binary.BigEndian.Uint32(r.data) != 1 {
		t.Fatalf("data block not stamped with cycle 1: %x", r.data[:4])
	}
	if err := ondisk.UnpackLogRecord(h, r.hdrs, r.data, true); err != nil {
		t.Fatal(err)
	}
	ops, err := ondisk.ParseLogOps(h, r.data, "log block 0")
	if err != nil {
		t.Fatal(err)
	}
	o := ops[0].Header
	// xfs_logprint: "tid: b0c0d0d0  len: 8  clientid: LOG  flags: UNMOUNT"
	if len(ops) != 1 || o.TID != 0xb0c0d0d0 || o.Len != 8 || o.ClientID != ondisk.LogClientLog || o.FlagString() != "UNMOUNT" || !o.IsUnmount() {
		t.Fatalf("unmount op: %+v flags %s", o, o.FlagString())
	}
	if !ondisk.IsUnmountPayload(ops[0].Data, h.ByteOrder()) {
		t.Fatalf("unmount payload %x lacks XLOG_UNMOUNT_TYPE", ops[0].Data)
	}
	// Packing again restores the on-disk bytes.
	h2 := *h
	hdrs2 := append([]byte(nil), r.hdrs...)
	if err := ondisk.PackLogRecord(&h2, hdrs2, r.data, true, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.data, raw) || h2.CycleData != h.CycleData {
		t.Fatal("PackLogRecord does not invert UnpackLogRecord")
	}
}

// TestLogKernelRecords checks records the kernel wrote (with 256 KiB iclogs,
// so records carry extended headers) against xfs_logprint, and verifies
// their CRCs.
func TestLogKernelRecords(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m")
	mnt := mountOpts(t, img, "logbsize=256k")
	oracle.MustBeMounted(t, mnt)
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1500; i++ {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file-%04d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Run(t, "umount", mnt)

	li := openLogImage(t, img)
	recs := li.records(t)
	var got []string
	big := 0
	unmounts := 0
	for i, r := range recs {
		h := r.h
		where := fmt.Sprintf("log block %d", r.blk)
		got = append(got, fmt.Sprintf("%d cycle %d tail %d:%d len %d ops %d", r.blk, h.Cycle, h.TailLSN.Cycle(), h.TailLSN.Block(), h.Len, h.NumLogOps))
		if h.LSN != ondisk.MakeLSN(1, r.blk) {
			t.Errorf("%s: lsn %v", where, h.LSN)
		}
		if i == 0 {
			continue // mkfs's record, no CRC
		}
		if h.Len > ondisk.LogHeaderCycleSize {
			big++
			if r.h.HeaderBlocks(true) != 8 {
				t.Errorf("%s: %d header blocks for h_size %d", where, h.HeaderBlocks(true), h.Size)
			}
		}
		checked, err := ondisk.VerifyLogRecordCRC(h, r.hdrs, r.data, true, where)
		if err != nil || !checked {
			t.Fatalf("%s: kernel record CRC: checked=%v err=%v", where, checked, err)
		}
		// A flipped data bit is caught, and the error names the block.
		bad := append([]byte(nil), r.data...)
		bad[len(bad)/2] ^= 0x40
		if _, err := ondisk.VerifyLogRecordCRC(h, r.hdrs, bad, true, where); err == nil || !strings.Contains(err.Error(), where) {
			t.Fatalf("%s: corrupted data not reported: %v", where, err)
		}
		var ce *ondisk.CorruptError
		if _, err := ondisk.VerifyLogRecordCRC(h, r.hdrs, bad, true, where); !errors.As(err, &ce) || ce.Field != "h_crc" {
			t.Fatalf("%s: CRC error is not a CorruptError on h_crc: %v", where, err)
		}
		raw := append([]byte(nil), r.data...)
		if err := ondisk.UnpackLogRecord(h, r.hdrs, r.data, true); err != nil {
			t.Fatal(err)
		}
		ops, err := ondisk.ParseLogOps(h, r.data, where)
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) != int(h.NumLogOps) {
			t.Fatalf("%s: %d ops, header says %d", where, len(ops), h.NumLogOps)
		}
		if h.IsUnmount(raw) {
			unmounts++
			continue
		}
		if ops[0].Header.Flags&ondisk.LogStartTrans != 0 && len(ops) > 1 {
			th, err := ondisk.DecodeTransHeader(ops[1].Data, h.ByteOrder())
			if err != nil || th.Type != ondisk.TransCheckpoint || th.TID != ops[1].Header.TID {
				t.Fatalf("%s: transaction header %+v: %v", where, th, err)
			}
		}
		// Re-packing and re-sealing reproduces the kernel's bytes and CRC.
		h2 := *h
		hdrs2 := append([]byte(nil), r.hdrs...)
		if err := ondisk.PackLogRecord(&h2, hdrs2, r.data, true, h.Cycle); err != nil {
			t.Fatal(err)
		}
		if err := ondisk.SealLogRecord(&h2, hdrs2, r.data, true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.data, raw) || !bytes.Equal(hdrs2, r.hdrs) || h2.CRC != h.CRC {
			t.Fatalf("%s: pack+seal does not reproduce the kernel's record", where)
		}
	}
	if big == 0 {
		t.Fatal("no record above 32 KiB: extended headers untested")
	}
	if unmounts != 1 || !recs[len(recs)-1].h.IsUnmount(li.read(t, recs[len(recs)-1].blk+uint32(recs[len(recs)-1].h.HeaderBlocks(true)), 1)) {
		t.Fatalf("want exactly one kernel unmount record, last; got %d", unmounts)
	}
	want := logprintHeaders(t, img)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records differ from xfs_logprint -d:\nours:\n%s\nxfs_logprint:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// mountOpts loop-mounts img with extra options, unmounting at cleanup.
func mountOpts(t *testing.T, img, opts string) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	oracle.Run(t, "mount", "-t", "xfs", "-o", "loop,"+opts, img, mnt)
	t.Cleanup(func() { oracle.Unmount(t, mnt) })
	oracle.MustBeMounted(t, mnt)
	return mnt
}

func TestLogHeaderVerify(t *testing.T) {
	var uuid ondisk.UUID
	uuid[0] = 1
	good := func() *ondisk.LogRecHeader {
		return &ondisk.LogRecHeader{Magic: ondisk.LogHeaderMagic, Cycle: 2, Version: 2, Len: 1024,
			LSN: ondisk.MakeLSN(2, 100), TailLSN: ondisk.MakeLSN(1, 900), NumLogOps: 3, Fmt: 1, FSUUID: uuid, Size: 32768}
	}
	if err := good().Verify("log block 100", 1000, true, uuid); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		field string
		mod   func(h *ondisk.LogRecHeader)
	}{
		{"h_magicno", func(h *ondisk.LogRecHeader) { h.Magic = 1 }},
		{"h_version", func(h *ondisk.LogRecHeader) { h.Version = 4 }},
		{"h_version", func(h *ondisk.LogRecHeader) { h.Version = 1 }},
		{"h_len", func(h *ondisk.LogRecHeader) { h.Len = 0 }},
		{"h_len", func(h *ondisk.LogRecHeader) { h.Len = 40000 }},
		{"h_size", func(h *ondisk.LogRecHeader) { h.Size = 300000 }},
		{"h_lsn", func(h *ondisk.LogRecHeader) { h.LSN = ondisk.MakeLSN(3, 100) }},
		{"h_lsn", func(h *ondisk.LogRecHeader) { h.LSN = ondisk.MakeLSN(2, 1000) }},
		{"h_tail_lsn", func(h *ondisk.LogRecHeader) { h.TailLSN = ondisk.MakeLSN(2, 101) }},
		{"h_num_logops", func(h *ondisk.LogRecHeader) { h.NumLogOps = 100 }},
		{"h_fs_uuid", func(h *ondisk.LogRecHeader) { h.FSUUID[1] = 9 }},
	}
	for _, b := range bad {
		h := good()
		b.mod(h)
		err := h.Verify("log block 100", 1000, true, uuid)
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.Field != b.field || ce.Where != "log block 100" {
			t.Errorf("%s: got %v", b.field, err)
		}
	}
	// Short buffers are reported, never panic.
	if _, err := ondisk.DecodeLogRecHeader(make([]byte, 100)); err == nil {
		t.Fatal("short header decoded")
	}
	if _, err := ondisk.DecodeLogOpHeader(make([]byte, 11)); err == nil {
		t.Fatal("short op header decoded")
	}
}

// TestLogOpsBounds checks that op lengths running past the record are
// reported with the op's offset.
func TestLogOpsBounds(t *testing.T) {
	data := make([]byte, 512)
	ondisk.LogOpHeader{TID: 1, Len: 4, ClientID: ondisk.LogClientTransaction, Flags: ondisk.LogStartTrans}.Encode(data)
	ondisk.LogOpHeader{TID: 1, Len: 600, ClientID: ondisk.LogClientTransaction}.Encode(data[16:])
	h := &ondisk.LogRecHeader{Len: 512, NumLogOps: 2}
	ops, err := ondisk.ParseLogOps(h, data, "log block 7")
	if err == nil || !strings.Contains(err.Error(), "op 1 at record offset 16") || !strings.Contains(err.Error(), "log block 7") || len(ops) != 1 {
		t.Fatalf("overlong op: ops=%d err=%v", len(ops), err)
	}
	h.NumLogOps = 1
	if ops, err := ondisk.ParseLogOps(h, data, "x"); err != nil || len(ops) != 1 || len(ops[0].Data) != 4 {
		t.Fatalf("one op: %v %v", ops, err)
	}
}
