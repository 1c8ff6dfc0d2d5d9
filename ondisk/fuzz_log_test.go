package ondisk_test

import (
	"encoding/binary"
	"testing"

	"xfskit/ondisk"
)

// syntheticLogRecord builds a sealed v2 record: header blocks followed by
// data blocks, as the kernel lays it out.
func syntheticLogRecord(dataLen int, size uint32) []byte {
	var uuid ondisk.UUID
	uuid[3] = 7
	h := &ondisk.LogRecHeader{Magic: ondisk.LogHeaderMagic, Cycle: 3, Version: ondisk.LogVersion2,
		Len: uint32(dataLen), LSN: ondisk.MakeLSN(3, 16), TailLSN: ondisk.MakeLSN(2, 900),
		PrevBlock: 8, NumLogOps: 2, Fmt: ondisk.LogFmtLinuxLE, FSUUID: uuid, Size: size}
	hb := h.HeaderBlocks(true)
	buf := make([]byte, (hb+h.DataBlocks())*ondisk.BBSize)
	hdrs, data := buf[:hb*ondisk.BBSize], buf[hb*ondisk.BBSize:]
	ondisk.LogOpHeader{TID: 5, Len: 0, ClientID: ondisk.LogClientTransaction, Flags: ondisk.LogStartTrans}.Encode(data)
	ondisk.LogOpHeader{TID: 5, Len: ondisk.TransHeaderSize, ClientID: ondisk.LogClientTransaction}.Encode(data[12:])
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint, TID: 5, NumItems: 1}.Encode(data[24:], binary.LittleEndian)
	for i := 40; i < dataLen; i++ {
		data[i] = byte(i * 7)
	}
	if err := ondisk.PackLogRecord(h, hdrs, data, true, h.Cycle); err != nil {
		panic(err)
	}
	h.Encode(hdrs)
	if err := ondisk.SealLogRecord(h, hdrs, data, true); err != nil {
		panic(err)
	}
	return buf
}

func TestSyntheticLogRecordRoundTrip(t *testing.T) {
	for _, n := range []int{512, 33000, 200 * 1024} {
		buf := syntheticLogRecord(n, 256*1024)
		h, err := ondisk.DecodeLogRecHeader(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Verify("log block 16", 4096, true, h.FSUUID); err != nil {
			t.Fatal(err)
		}
		hb := h.HeaderBlocks(true)
		hdrs, data := buf[:hb*512], buf[hb*512:]
		if checked, err := ondisk.VerifyLogRecordCRC(h, hdrs, data, true, "log block 16"); !checked || err != nil {
			t.Fatalf("len %d: CRC checked=%v err=%v", n, checked, err)
		}
		if n > ondisk.LogHeaderCycleSize {
			// The extended headers are inside the CRC.
			hdrs[512+8] ^= 1
			if _, err := ondisk.VerifyLogRecordCRC(h, hdrs, data, true, "log block 16"); err == nil {
				t.Fatalf("len %d: extended header damage not caught", n)
			}
			hdrs[512+8] ^= 1
		}
		for i := 0; i < h.DataBlocks(); i++ {
			if ondisk.LogBlockCycle(data[i*512:]) != 3 {
				t.Fatalf("len %d: data block %d not stamped", n, i)
			}
		}
		if err := ondisk.UnpackLogRecord(h, hdrs, data, true); err != nil {
			t.Fatal(err)
		}
		ops, err := ondisk.ParseLogOps(h, data, "")
		if err != nil || len(ops) != 2 {
			t.Fatalf("len %d: ops %v err %v", n, ops, err)
		}
		if th, err := ondisk.DecodeTransHeader(ops[1].Data, h.ByteOrder()); err != nil || th.NumItems != 1 {
			t.Fatalf("trans header %+v %v", th, err)
		}
		for i := 40; i < n; i++ {
			if data[i] != byte(i*7) && i%512 >= 4 {
				t.Fatalf("len %d: byte %d changed", n, i)
			}
		}
		for i := 1; i < h.DataBlocks(); i++ {
			if w := binary.BigEndian.Uint32(data[i*512:]); w != binary.BigEndian.Uint32([]byte{byte(i * 512 * 7), byte((i*512 + 1) * 7), byte((i*512 + 2) * 7), byte((i*512 + 3) * 7)}) {
				t.Fatalf("len %d: block %d first word %08x not restored", n, i, w)
			}
		}
	}
}

// FuzzLogRecord feeds arbitrary bytes through every log decoder; none may
// panic, whatever the header claims.
func FuzzLogRecord(f *testing.F) {
	f.Add(syntheticLogRecord(512, 32768))
	f.Add(syntheticLogRecord(40000, 65536))
	f.Add(make([]byte, 600))
	f.Fuzz(func(t *testing.T, buf []byte) {
		ondisk.LogBlockCycle(buf)
		h, err := ondisk.DecodeLogRecHeader(buf)
		if err != nil {
			return
		}
		_ = h.Verify("fuzz", 1<<20, true, h.FSUUID)
		for _, v2 := range []bool{true, false} {
			hb := h.HeaderBlocks(v2)
			split := hb * ondisk.BBSize
			if split > len(buf) {
				split = len(buf)
			}
			hdrs := append([]byte(nil), buf[:split]...)
			data := append([]byte(nil), buf[split:]...)
			_, _ = ondisk.VerifyLogRecordCRC(h, hdrs, data, v2, "fuzz")
			_ = h.IsUnmount(data)
			if ondisk.UnpackLogRecord(h, hdrs, data, v2) == nil {
				ops, _ := ondisk.ParseLogOps(h, data, "fuzz")
				for _, op := range ops {
					_, _ = ondisk.DecodeTransHeader(op.Data, h.ByteOrder())
					_ = ondisk.IsUnmountPayload(op.Data, h.ByteOrder())
					_ = op.Header.FlagString()
				}
			}
			h2 := *h
			_ = ondisk.PackLogRecord(&h2, hdrs, data, v2, 1)
		}
		if len(buf) > 8 {
			_, _ = ondisk.DecodeLogRecExtHeader(buf[8:])
		}
	})
}
