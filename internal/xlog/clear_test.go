package xlog

import (
	"bytes"
	"testing"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// TestUnmountRecordMatchesMkfs: at cycle 1 our record is the one mkfs.xfs
// writes, byte for byte but for the CRC (mkfs leaves it zero), and the CRC
// verifies.
func TestUnmountRecordMatchesMkfs(t *testing.T) {
	for _, opts := range [][]string{nil, {"-l", "su=32k"}, {"-s", "size=4096"}} {
		img := oracle.Mkfs(t, "300m", opts...)
		l, st, err := findImg(t, img)
		if err != nil || !st.Clean {
			t.Fatalf("%v: fresh log %v %v", opts, st, err)
		}
		sb := l.fs.SB
		rec := UnmountRecord(sb.UUID, int(sb.LogSUnit), int(sb.LogSectSize), 1)
		disk, err := l.read(0, int64(len(rec)/ondisk.BBSize))
		if err != nil {
			t.Fatal(err)
		}
		h, err := ondisk.DecodeLogRecHeader(rec)
		if err != nil {
			t.Fatal(err)
		}
		hb := h.HeaderBlocks(true) * ondisk.BBSize
		if ok, err := ondisk.VerifyLogRecordCRC(h, rec[:hb], rec[hb:], true, "ours"); !ok || err != nil {
			t.Fatalf("%v: our record's CRC: %v %v", opts, ok, err)
		}
		copy(rec[ondisk.LogRecHeaderCRCOff:ondisk.LogRecHeaderCRCOff+4], disk[ondisk.LogRecHeaderCRCOff:])
		if !bytes.Equal(rec, disk) {
			t.Fatalf("%v: our unmount record (%d bytes) differs from mkfs.xfs's", opts, len(rec))
		}
	}
}

// TestClearAtHigherCycle clears a dirty log at a cycle above any in it:
// our head finding and xfs_logprint see a clean log, head right after the
// record, tail equal to it.
func TestClearAtHigherCycle(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m")
	mnt := mountOpts(t, img, "")
	fill(t, mnt, "f", 500, 0)
	crash(t, mnt)
	_, st, err := findImg(t, img)
	if err != nil || st.Clean {
		t.Fatalf("dirty log expected: %v %v", st, err)
	}
	dev, err := image.Open(img, true)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := xfs.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(fs)
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Clear(st.HeadCycle + 1)
	if err != nil {
		t.Fatal(err)
	}
	fs.Close()
	l2, st2, err := findImg(t, img)
	if err != nil || !st2.Clean || ondisk.MakeLSN(st2.HeadCycle, st2.HeadBlock) != head || st2.TailBlock != st2.HeadBlock {
		t.Fatalf("after Clear (head %v): %v %v", head, st2, err)
	}
	// (Metadata is not replayed here, so only the log is judged.)
	checkAgainstLogprint(t, img, l2, st2)
}
