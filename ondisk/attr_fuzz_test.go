package ondisk_test

import (
	"bytes"
	"testing"

	"xfskit/ondisk"
)

// dxSeedAttrLeaf builds a valid attr3 leaf with a local and a remote entry.
func dxSeedAttrLeaf(uuid ondisk.UUID, blk int) []byte {
	names := []struct {
		name, value string
		flags       uint8
	}{{"alpha", "one", ondisk.AttrLocal}, {"beta", "", ondisk.AttrRoot}, {"gamma", "three3", ondisk.AttrLocal | ondisk.AttrSecure}}
	l := &ondisk.Attr3Leaf{Hdr: ondisk.Attr3LeafHdr{Info: ondisk.DA3BlkInfo{Blkno: 80, UUID: uuid, Owner: dxFuzzOwner}}}
	pos := blk
	used := 0
	for _, n := range names {
		e := ondisk.AttrLeafEntry{Hashval: ondisk.DAHash([]byte(n.name)), Flags: n.flags, Name: []byte(n.name)}
		if n.flags&ondisk.AttrLocal != 0 {
			e.Value = []byte(n.value)
		} else {
			e.ValueBlk, e.ValueLen = 1, 5000
		}
		pos -= e.EntSize()
		used += e.EntSize()
		e.NameIdx = uint16(pos)
		l.Entries = append(l.Entries, e)
	}
	for i := 1; i < len(l.Entries); i++ {
		for j := i; j > 0 && l.Entries[j].Hashval < l.Entries[j-1].Hashval; j-- {
			l.Entries[j], l.Entries[j-1] = l.Entries[j-1], l.Entries[j]
		}
	}
	tbl := ondisk.Attr3LeafHdrSize + len(l.Entries)*ondisk.AttrLeafEntrySize
	l.Hdr.FirstUsed, l.Hdr.UsedBytes = uint32(pos), uint16(used)
	l.Hdr.FreeMap[0] = ondisk.AttrLeafMap{Base: uint16(tbl), Size: uint16(pos - tbl)}
	buf := make([]byte, blk)
	if err := l.Encode(buf); err != nil {
		panic(err)
	}
	return buf
}

func TestAttrFuzzSeedsVerify(t *testing.T) {
	sb := dxFuzzSB()
	buf := dxSeedAttrLeaf(sb.UUID, 4096)
	l, err := ondisk.VerifyAttr3Leaf(buf, sb.UUID, 80, dxFuzzOwner, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 {
		t.Fatalf("%d entries", len(l.Entries))
	}
	for name, mut := range map[string]func([]byte){
		"hash":      func(b []byte) { b[ondisk.Attr3LeafHdrSize]++ },
		"usedbytes": func(b []byte) { b[59]++ },
		"firstused": func(b []byte) { b[60], b[61] = 0, 8 },
		"flags":     func(b []byte) { b[ondisk.Attr3LeafHdrSize+6] |= ondisk.AttrRoot | ondisk.AttrSecure },
		"freemap":   func(b []byte) { b[65]++ },
		"magic":     func(b []byte) { b[9]++ },
	} {
		c := append([]byte(nil), buf...)
		mut(c)
		ondisk.SetCRC(c, ondisk.Attr3LeafCRCOff)
		if _, err := ondisk.VerifyAttr3Leaf(c, sb.UUID, 80, dxFuzzOwner, "seed"); err == nil {
			t.Errorf("%s corruption not detected", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// 64 KiB blocks store an empty block's firstused as 0.
	big := dxSeedAttrLeaf(sb.UUID, 65536)
	if l, err := ondisk.DecodeAttr3Leaf(big); err != nil || l.Hdr.FirstUsed >= 65536 {
		t.Fatalf("64k leaf: %v", err)
	}
	e := &ondisk.Attr3Leaf{Hdr: ondisk.Attr3LeafHdr{Info: ondisk.DA3BlkInfo{UUID: sb.UUID}, FirstUsed: 65536}}
	e.Encode(big)
	if big[60] != 0 || big[61] != 0 {
		t.Error("firstused of an empty 64 KiB leaf must be stored as 0")
	}
	if l, _ := ondisk.DecodeAttr3Leaf(big); l.Hdr.FirstUsed != 65536 {
		t.Errorf("firstused 0 decodes as %d in a 64 KiB block", l.Hdr.FirstUsed)
	}
	if ondisk.AttrRmtBlocks(4096, 65536) != 17 || ondisk.AttrRmtBlocks(65536, 65536) != 2 || ondisk.AttrRmtBlocks(1024, 968) != 1 {
		t.Error("AttrRmtBlocks")
	}
	if ondisk.AttrLeafEntSizeLocal(1, 0) != 4 || ondisk.AttrLeafEntSizeRemote(1) != 12 || ondisk.AttrLeafEntSizeRemote(2) != 16 {
		t.Error("entry sizes")
	}
}

func FuzzAttr3Leaf(f *testing.F) {
	sb := dxFuzzSB()
	f.Add(dxSeedAttrLeaf(sb.UUID, 4096))
	f.Add(dxSeedAttrLeaf(sb.UUID, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ondisk.DecodeAttr3Leaf(b)
		ondisk.VerifyAttr3Leaf(b, sb.UUID, 80, dxFuzzOwner, "fuzz")
		if err != nil {
			return
		}
		l.Lookup(0x12345678)
		out := make([]byte, len(b))
		if l.Encode(out) != nil {
			return
		}
		l2, err := ondisk.DecodeAttr3Leaf(out)
		if err != nil || len(l2.Entries) != len(l.Entries) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range l.Entries {
			a, c := l.Entries[i], l2.Entries[i]
			if !bytes.Equal(a.Name, c.Name) || a.IsLocal() && !bytes.Equal(a.Value, c.Value) {
				t.Fatalf("entry %d changed", i)
			}
		}
	})
}

func FuzzAttrSF(f *testing.F) {
	a := &ondisk.AttrSF{Entries: []ondisk.AttrSFEntry{{Name: []byte("x"), Value: []byte("hello")}, {Flags: ondisk.AttrRoot, Name: []byte("t"), Value: []byte{1, 2}}}}
	buf := make([]byte, 64)
	n, _ := a.Encode(buf)
	f.Add(buf[:n])
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ondisk.DecodeAttrSF(b)
		ondisk.VerifyAttrSF(b, "fuzz")
		if err != nil {
			return
		}
		out := make([]byte, a.EncodedSize())
		if _, err := a.Encode(out); err != nil {
			return
		}
		if a2, err := ondisk.DecodeAttrSF(out); err != nil || len(a2.Entries) != len(a.Entries) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzAttr3Rmt(f *testing.F) {
	sb := dxFuzzSB()
	buf := make([]byte, 1024)
	h := &ondisk.Attr3RmtHdr{Offset: 968, UUID: sb.UUID, Owner: dxFuzzOwner, Blkno: 80}
	ondisk.EncodeAttr3Rmt(buf, h, bytes.Repeat([]byte{7}, 500))
	f.Add(buf)
	f.Fuzz(func(t *testing.T, b []byte) {
		ondisk.DecodeAttr3RmtHdr(b)
		_, p, err := ondisk.VerifyAttr3Rmt(b, sb.UUID, 80, dxFuzzOwner, "fuzz")
		if err == nil && len(p) > len(b) {
			t.Fatal("payload longer than block")
		}
	})
}

func FuzzACL(f *testing.F) {
	f.Add(ondisk.EncodeXFSACL([]ondisk.ACLEntry{{Tag: ondisk.ACLUserObj, Perm: 7, ID: ondisk.ACLUndefinedID}, {Tag: ondisk.ACLUser, Perm: 4, ID: 1000}}))
	f.Add(ondisk.PosixACLXattr([]ondisk.ACLEntry{{Tag: ondisk.ACLOther, Perm: 1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ents, err := ondisk.DecodeXFSACL(b); err == nil {
			again, err := ondisk.DecodeXFSACL(ondisk.EncodeXFSACL(ents))
			if err != nil || len(again) != len(ents) {
				t.Fatalf("XFS ACL round trip: %v", err)
			}
			for i := range ents {
				if again[i] != ents[i] {
					t.Fatalf("XFS ACL entry %d changed", i)
				}
			}
		}
		if ents, err := ondisk.DecodePosixACLXattr(b); err == nil {
			ondisk.PosixACLXattr(ents)
		}
	})
}
