package ondisk_test

import (
	"bytes"
	"testing"

	"xfskit/ondisk"
)

// dxFuzzSB is a plausible 4 KiB-block v5 superblock for verifiers.
func dxFuzzSB() *ondisk.Superblock {
	return &ondisk.Superblock{
		MagicNum: ondisk.SBMagic, BlockSize: 4096, BlockLog: 12, SectSize: 512, SectLog: 9,
		InodeSize: 512, InodeLog: 9, InoPBlock: 8, InoPBLog: 3, AGBlocks: 16384, AGBlkLog: 14,
		AGCount: 4, DBlocks: 65536, VersionNum: 5 | ondisk.SBVersionMoreBits,
		FeaturesIncompat: ondisk.IncompatFType, UUID: ondisk.UUID{1, 2, 3},
	}
}

const dxFuzzOwner = 131

// dxSeedDirBlock builds a valid single-block directory of blk bytes.
func dxSeedDirBlock(sb *ondisk.Superblock, blk int, names []string) []byte {
	g := ondisk.NewDirGeo(sb)
	d := &ondisk.DirData{Hdr: ondisk.Dir3BlkHdr{Magic: ondisk.Dir3BlockMagic, Blkno: 80, UUID: sb.UUID, Owner: dxFuzzOwner}}
	off := ondisk.Dir3DataHdrSize
	all := append([]string{".", ".."}, names...)
	for i, n := range all {
		d.Entries = append(d.Entries, ondisk.DirDataEntry{Off: off, Ino: uint64(dxFuzzOwner + i), Name: []byte(n), FType: ondisk.DirFTRegFile})
		d.Leaf = append(d.Leaf, ondisk.DirLeafEntry{Hashval: ondisk.DAHash([]byte(n)), Address: g.Dataptr(0, off)})
		off += g.DataEntSize(len(n))
	}
	// Leaf entries sorted by hash.
	for i := 1; i < len(d.Leaf); i++ {
		for j := i; j > 0 && d.Leaf[j].Hashval < d.Leaf[j-1].Hashval; j-- {
			d.Leaf[j], d.Leaf[j-1] = d.Leaf[j-1], d.Leaf[j]
		}
	}
	end := blk - ondisk.DirBlockTailSize - len(d.Leaf)*ondisk.DirLeafEntrySize
	d.Unused = []ondisk.DirDataUnused{{Off: off, Length: uint16(end - off)}}
	d.BestFree[0] = ondisk.DirDataFree{Offset: uint16(off), Length: uint16(end - off)}
	buf := make([]byte, blk)
	if err := d.Encode(buf, true); err != nil {
		panic(err)
	}
	return buf
}

// The synthetic seed itself must verify, or the fuzzers start nowhere.
func TestDirFuzzSeedsVerify(t *testing.T) {
	sb := dxFuzzSB()
	buf := dxSeedDirBlock(sb, 4096, []string{"a", "bb", "ccc"})
	d, err := ondisk.VerifyDirData(buf, ondisk.Dir3BlockMagic, sb, 80, dxFuzzOwner, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) != 5 || string(d.Entries[4].Name) != "ccc" {
		t.Fatalf("seed decodes to %+v", d.Entries)
	}
	// Corruptions the verifier must catch.
	for name, mut := range map[string]func([]byte){
		"tag":      func(b []byte) { b[64+14]++ },                 // "." tag
		"leafhash": func(b []byte) { b[len(b)-8-8*5]++ },          // first leaf hash
		"bestfree": func(b []byte) { b[50]++ },                    // bestfree[0].length
		"ftype":    func(b []byte) { b[64+10] = ondisk.DirFTMax }, // "." ftype
		"owner":    func(b []byte) { b[47]++ },                    // owner
		"stale":    func(b []byte) { b[len(b)-1]++ },              // tail stale
		"name":     func(b []byte) { b[64+9] = '/' },              // "." name
		"inumber":  func(b []byte) { b[64] = 0xff },               // "." inumber
		"unused":   func(b []byte) { b[64+16*5+3] -= 8 },          // free length
	} {
		c := append([]byte(nil), buf...)
		mut(c)
		ondisk.SetCRC(c, ondisk.Dir3CRCOff)
		if _, err := ondisk.VerifyDirData(c, ondisk.Dir3BlockMagic, sb, 80, dxFuzzOwner, "seed"); err == nil {
			t.Errorf("%s corruption not detected", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// CRC itself.
	c := append([]byte(nil), buf...)
	c[100] ^= 1
	if _, err := ondisk.VerifyDirData(c, ondisk.Dir3BlockMagic, sb, 80, dxFuzzOwner, "seed"); err == nil {
		t.Error("CRC mismatch not detected")
	}
}

func FuzzDirData(f *testing.F) {
	sb := dxFuzzSB()
	f.Add(dxSeedDirBlock(sb, 4096, []string{"a", "bb", "ccc", "dddd"}))
	f.Add(dxSeedDirBlock(sb, 1024, []string{"x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ondisk.DecodeDirData(b, true)
		ondisk.VerifyDirData(b, ondisk.Dir3BlockMagic, sb, 80, dxFuzzOwner, "fuzz")
		ondisk.VerifyDirData(b, ondisk.Dir3DataMagic, sb, 80, dxFuzzOwner, "fuzz")
		if err != nil {
			return
		}
		out := make([]byte, len(b))
		if d.Encode(out, true) != nil {
			return
		}
		d2, err := ondisk.DecodeDirData(out, true)
		if err != nil {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		if len(d2.Entries) != len(d.Entries) {
			t.Fatalf("entries %d -> %d", len(d.Entries), len(d2.Entries))
		}
		for i := range d.Entries {
			if !bytes.Equal(d.Entries[i].Name, d2.Entries[i].Name) || d.Entries[i].Ino != d2.Entries[i].Ino {
				t.Fatalf("entry %d changed", i)
			}
		}
	})
}

func FuzzDirSF(f *testing.F) {
	sb := dxFuzzSB()
	sf := &ondisk.DirSF{Parent: 128, Entries: []ondisk.DirSFEntry{{Name: []byte("a"), Offset: 96, FType: 1, Ino: 132}, {Name: []byte("bcd"), Offset: 112, FType: 2, Ino: 1 << 33}}}
	buf := make([]byte, 100)
	n, _ := sf.Encode(buf, true)
	f.Add(buf[:n])
	f.Add([]byte{1, 0, 0, 0, 0, 128, 1, 0, 96, 'z', 1, 0, 0, 0, 132})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ondisk.DecodeDirSF(b, true)
		ondisk.VerifyDirSF(b, sb, "fuzz")
		if err != nil {
			return
		}
		out := make([]byte, d.EncodedSize(true))
		m, err := d.Encode(out, true)
		if err != nil {
			return
		}
		d2, err := ondisk.DecodeDirSF(out[:m], true)
		if err != nil || len(d2.Entries) != len(d.Entries) || d2.Parent != d.Parent {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDir3Leaf(f *testing.F) {
	sb := dxFuzzSB()
	for _, magic := range []uint16{ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic} {
		l := &ondisk.Dir3Leaf{Info: ondisk.DA3BlkInfo{Magic: magic, Blkno: 80, UUID: sb.UUID, Owner: dxFuzzOwner},
			Ents: []ondisk.DirLeafEntry{{Hashval: 1, Address: 8}, {Hashval: 5, Address: 0}, {Hashval: 9, Address: 20}}, Stale: 1}
		if magic == ondisk.Dir3Leaf1Magic {
			l.Bests = []uint16{16, 0xffff, 200}
		}
		buf := make([]byte, 1024)
		l.Encode(buf)
		f.Add(buf)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ondisk.DecodeDir3Leaf(b)
		ondisk.VerifyDir3Leaf(b, ondisk.Dir3Leaf1Magic, sb, 80, dxFuzzOwner, "fuzz")
		ondisk.VerifyDir3Leaf(b, ondisk.Dir3LeafNMagic, sb, 80, dxFuzzOwner, "fuzz")
		if err != nil {
			return
		}
		out := make([]byte, len(b))
		if l.Encode(out) == nil {
			if l2, err := ondisk.DecodeDir3Leaf(out); err != nil || len(l2.Ents) != len(l.Ents) || len(l2.Bests) != len(l.Bests) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzDir3Free(f *testing.F) {
	sb := dxFuzzSB()
	fr := &ondisk.Dir3Free{Hdr: ondisk.Dir3BlkHdr{Blkno: 80, UUID: sb.UUID, Owner: dxFuzzOwner}, Bests: []uint16{10, 0xffff, 30}, NUsed: 2}
	buf := make([]byte, 4096)
	fr.Encode(buf)
	f.Add(buf)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ondisk.DecodeDir3Free(b)
		ondisk.VerifyDir3Free(b, sb, 80, dxFuzzOwner, 0, "fuzz")
		if err != nil {
			return
		}
		out := make([]byte, len(b))
		if fr.Encode(out) == nil {
			if f2, err := ondisk.DecodeDir3Free(out); err != nil || len(f2.Bests) != len(fr.Bests) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzDA3Node(f *testing.F) {
	sb := dxFuzzSB()
	n := &ondisk.DA3Node{Info: ondisk.DA3BlkInfo{Blkno: 80, UUID: sb.UUID, Owner: dxFuzzOwner}, Level: 1,
		Entries: []ondisk.DANodeEntry{{Hashval: 10, Before: 8388609}, {Hashval: 99, Before: 8388610}}}
	buf := make([]byte, 4096)
	n.Encode(buf)
	f.Add(buf)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ondisk.DecodeDA3Node(b)
		ondisk.VerifyDA3Node(b, sb.UUID, 80, dxFuzzOwner, "fuzz")
		ondisk.DecodeDA3BlkInfo(b)
		ondisk.DAMagic(b)
		if err != nil {
			return
		}
		n.Lookup(12345)
		out := make([]byte, len(b))
		if n.Encode(out) == nil {
			if n2, err := ondisk.DecodeDA3Node(out); err != nil || len(n2.Entries) != len(n.Entries) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
