package xlog

import (
	"encoding/binary"
	"testing"

	"xfskit/ondisk"
)

// fuzzOps turns bytes into log ops: each op is tid (1 byte), flags (1 byte),
// length (1 byte) and that many payload bytes, so the fuzzer controls every
// flag combination, continuation and region count.
func fuzzOps(b []byte) []ondisk.LogOp {
	var ops []ondisk.LogOp
	for len(b) >= 3 {
		tid, flags, n := b[0], b[1], int(b[2])
		b = b[3:]
		n = min(n, len(b))
		ops = append(ops, ondisk.LogOp{Header: ondisk.LogOpHeader{TID: uint32(tid % 4), Flags: flags,
			ClientID: ondisk.LogClientTransaction, Len: uint32(n)}, Data: b[:n]})
		b = b[n:]
	}
	return ops
}

func FuzzAssembler(f *testing.F) {
	hdr := make([]byte, ondisk.TransHeaderSize)
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint, NumItems: 1}.Encode(hdr, binary.LittleEndian)
	item := []byte{0x3c, 0x12, 2, 0, 0, 0, 1, 0}
	var seed []byte
	seed = append(seed, 1, ondisk.LogStartTrans, 0)
	seed = append(seed, 1, 0, byte(len(hdr)))
	seed = append(seed, hdr...)
	seed = append(seed, 1, ondisk.LogContinueTrans, 4)
	seed = append(seed, item[:4]...)
	seed = append(seed, 1, ondisk.LogWasContTrans, 4)
	seed = append(seed, item[4:]...)
	seed = append(seed, 1, 0, 3, 'a', 'b', 'c')
	seed = append(seed, 1, ondisk.LogCommitTrans, 0)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		a := NewAssembler()
		// Split over two records, as transactions span records.
		ops := fuzzOps(b)
		half := len(ops) / 2
		if err := a.AddRecord(ondisk.MakeLSN(1, 2), binary.LittleEndian, ops[:half], "record 1"); err != nil {
			return
		}
		if err := a.AddRecord(ondisk.MakeLSN(1, 9), binary.LittleEndian, ops[half:], "record 2"); err != nil {
			return
		}
		for _, tx := range a.Committed {
			for _, it := range tx.Items {
				if it.total == 0 || len(it.Regions) != it.total {
					t.Fatalf("committed item with %d of %d regions", len(it.Regions), it.total)
				}
			}
		}
	})
}

// TestAssemblerSpansRecords: a transaction whose header and item regions
// are split across records and ops comes back whole; one without a commit
// does not.
func TestAssemblerSpansRecords(t *testing.T) {
	hdr := make([]byte, ondisk.TransHeaderSize)
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint, NumItems: 1}.Encode(hdr, binary.LittleEndian)
	op := func(tid uint32, flags uint8, p []byte) ondisk.LogOp {
		return ondisk.LogOp{Header: ondisk.LogOpHeader{TID: tid, Flags: flags, Len: uint32(len(p)), ClientID: ondisk.LogClientTransaction}, Data: p}
	}
	format := []byte{0x3c, 0x12, 2, 0, 1, 2, 3, 4}
	a := NewAssembler()
	le := binary.LittleEndian
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.AddRecord(ondisk.MakeLSN(3, 10), le, []ondisk.LogOp{
		op(7, 0, []byte("skipped: started before the tail")),
		op(1, ondisk.LogStartTrans, nil), op(1, ondisk.LogContinueTrans, hdr[:5]),
		op(2, ondisk.LogStartTrans, nil),
	}, "r1"))
	must(a.AddRecord(ondisk.MakeLSN(3, 20), le, []ondisk.LogOp{
		op(1, ondisk.LogWasContTrans, hdr[5:]), op(1, ondisk.LogContinueTrans, format[:3]),
	}, "r2"))
	must(a.AddRecord(ondisk.MakeLSN(3, 30), le, []ondisk.LogOp{
		op(1, ondisk.LogWasContTrans|ondisk.LogEndTrans, format[3:]), op(1, 0, []byte("region two")),
		op(1, ondisk.LogCommitTrans, nil),
	}, "r3"))
	if len(a.Committed) != 1 || a.Uncommitted() != 1 {
		t.Fatalf("%d committed, %d open; want 1 and 1", len(a.Committed), a.Uncommitted())
	}
	tx := a.Committed[0]
	if tx.LSN != ondisk.MakeLSN(3, 10) || tx.Header.Type != ondisk.TransCheckpoint || len(tx.Items) != 1 {
		t.Fatalf("transaction %+v", tx)
	}
	it := tx.Items[0]
	if it.Type != ondisk.LogItemBuf || len(it.Regions) != 2 || string(it.Regions[0]) != string(format) || string(it.Regions[1]) != "region two" {
		t.Fatalf("item %+v", it)
	}
	// A region after a complete item starts the next item.
	b := NewAssembler()
	err := b.AddRecord(1, le, []ondisk.LogOp{op(1, ondisk.LogStartTrans, nil), op(1, 0, hdr), op(1, 0, format), op(1, 0, []byte("x")),
		op(1, 0, format), op(1, 0, []byte("y")), op(1, ondisk.LogCommitTrans, nil)}, "r")
	if err != nil {
		t.Fatalf("a new item after a complete one: %v", err)
	}
	if len(b.Committed) != 1 || len(b.Committed[0].Items) != 2 {
		t.Fatal("second item not started")
	}
	// An item cut short at the commit is corruption.
	d := NewAssembler()
	if err := d.AddRecord(1, le, []ondisk.LogOp{op(1, ondisk.LogStartTrans, nil), op(1, 0, hdr), op(1, 0, format), op(1, ondisk.LogCommitTrans, nil)}, "r"); err == nil {
		t.Fatal("an item missing a region was committed")
	}
	c := NewAssembler()
	if err := c.AddRecord(1, le, []ondisk.LogOp{op(1, ondisk.LogStartTrans, nil), op(1, 0, hdr), op(1, 0, []byte{0x3c, 0x12, 0, 0}), op(1, ondisk.LogCommitTrans, nil)}, "r"); err == nil {
		t.Fatal("an item announcing 0 regions was accepted")
	}
}
