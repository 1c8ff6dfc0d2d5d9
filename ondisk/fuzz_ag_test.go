package ondisk_test

import (
	"encoding/binary"
	"os"
	"os/exec"
	"testing"

	"xfskit/internal/oracle"

	"xfskit/ondisk"
)

// fuzzSB is a plausible 4k-block, 512-byte-sector v5 geometry.
func fuzzSB() *ondisk.Superblock {
	return &ondisk.Superblock{
		MagicNum: ondisk.SBMagic, BlockSize: 4096, DBlocks: 4 * 38400, AGBlocks: 38400, AGCount: 4,
		VersionNum: ondisk.SBVersion5 | ondisk.SBVersionAlignBit, SectSize: 512, InodeSize: 512,
		InoPBlock: 8, BlockLog: 12, SectLog: 9, InodeLog: 9, InoPBLog: 3, AGBlkLog: 16, LogBlocks: 4096,
		InoAlignMt: 8, SpinoAlign: 4, FeaturesROCompat: ondisk.ROCompatAll,
		FeaturesIncompat: ondisk.IncompatFType | ondisk.IncompatSpinodes,
	}
}

// fuzzSBFrom lets the input pick the geometry when it is one the superblock
// verifier accepts, so geometry-derived limits are fuzzed too.
func fuzzSBFrom(data []byte) *ondisk.Superblock {
	if len(data) < ondisk.SBSize {
		return fuzzSB()
	}
	sb, err := ondisk.DecodeSuperblock(data)
	if err != nil || sb.Verify(nil, "fuzz") != nil {
		return fuzzSB()
	}
	return sb
}

func fuzzSeeds(f *testing.F) {
	sb := fuzzSB()
	sect := make([]byte, 512)
	agf := &ondisk.AGF{Magic: ondisk.AGFMagic, Version: 1, SeqNo: 1, Length: 38400, BnoRoot: 1, CntRoot: 2,
		RmapRoot: 5, BnoLevel: 1, CntLevel: 1, RmapLevel: 1, FLFirst: 1, FLLast: 6, FLCount: 6,
		FreeBlks: 38000, Longest: 37000, RefcountRoot: 6, RefcountLevel: 1, RmapBlocks: 1, RefcountBlocks: 1}
	agf.Encode(sect)
	f.Add(append([]byte{}, sect...), uint32(1))
	agi := &ondisk.AGI{Magic: ondisk.AGIMagic, Version: 1, SeqNo: 1, Length: 38400, Count: 64, Root: 3, Level: 1,
		FreeCount: 10, NewIno: 128, DirIno: ondisk.NullAGIno, FreeRoot: 4, FreeLevel: 1, IBlocks: 1, FBlocks: 1}
	for i := range agi.Unlinked {
		agi.Unlinked[i] = ondisk.NullAGIno
	}
	agi.Encode(sect)
	f.Add(append([]byte{}, sect...), uint32(1))
	agfl := &ondisk.AGFL{Magic: ondisk.AGFLMagic, SeqNo: 1, Bno: make([]uint32, ondisk.AGFLSize(sb))}
	for i := range agfl.Bno {
		agfl.Bno[i] = ondisk.NullAGBno
	}
	agfl.Bno[1] = 7
	agfl.Encode(sect)
	f.Add(append([]byte{}, sect...), uint32(1))
	sbBuf := make([]byte, 512)
	sb.Encode(sbBuf)
	f.Add(sbBuf, uint32(0))
	rec := make([]byte, 48)
	ondisk.RmapRec{StartBlock: 10, BlockCount: 3, Owner: 131, Offset: 7, AttrFork: true}.Encode(rec)
	ondisk.RmapRec{StartBlock: 12, BlockCount: 1, Owner: ondisk.RmapOwnAG}.Encode(rec[24:])
	f.Add(rec, uint32(2))
	ondisk.InobtRec{StartIno: 128, HoleMask: 0xff00, Count: 32, FreeCount: 30, Free: 0xffffffff0000fffc, Sparse: true}.Encode(rec)
	f.Add(rec, uint32(3))
	f.Add([]byte{}, uint32(0))
	fuzzRealSeeds(f)
}

// fuzzRealSeeds adds the AG header sectors and B-tree root blocks of a
// fresh mkfs.xfs image (rmapbt and reflink on), when mkfs.xfs is installed.
func fuzzRealSeeds(f *testing.F) {
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		return
	}
	img := oracle.Mkfs(f, "600m", "-m", "rmapbt=1,reflink=1", "-d", "agcount=2")
	fh, err := os.Open(img)
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	read := func(off, n int) []byte {
		b := make([]byte, n)
		if _, err := fh.ReadAt(b, int64(off)); err != nil {
			f.Fatalf("reading %s: %v", img, err)
		}
		return b
	}
	sb, err := ondisk.DecodeSuperblock(read(0, 512))
	if err != nil {
		f.Fatal(err)
	}
	ss, bs := int(sb.SectSize), int(sb.BlockSize)
	for i := 0; i <= 3; i++ {
		f.Add(read(i*ss, ss), uint32(0))
	}
	agf, _ := ondisk.DecodeAGF(read(ss, ss))
	agi, _ := ondisk.DecodeAGI(read(2*ss, ss))
	for _, root := range []uint32{agf.BnoRoot, agf.CntRoot, agf.RmapRoot, agf.RefcountRoot, agi.Root, agi.FreeRoot} {
		blk := read(int(root)*bs, bs)
		f.Add(blk[ondisk.ShortHdrSize:ondisk.ShortHdrSize+2*ondisk.RmapRecSize], uint32(0))
	}
}

// FuzzAGHeaders: the AG header decoders and verifiers never panic, and what
// decodes re-encodes to the same bytes.
func FuzzAGHeaders(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, agno uint32) {
		sb := fuzzSBFrom(data)
		agno %= sb.AGCount + 1 // one past the end too
		if a, err := ondisk.DecodeAGF(data); err == nil {
			_ = a.Verify(data, agno, sb)
			_ = a.Verify(nil, agno, sb)
			_ = a.FreeListSpan(ondisk.AGFLSize(sb))
			out := append([]byte{}, data...)
			a.Encode(out)
			if b, _ := ondisk.DecodeAGF(out); b.CRC != ondisk.StoredCRC(out, ondisk.AGFCRCOff) || stripCRC(*b) != stripCRC(*a) {
				t.Fatalf("AGF round trip changed fields")
			}
			if agfl, err := ondisk.DecodeAGFL(data); err == nil {
				_, _ = agfl.FreeList(a, agno, sb)
			}
		}
		if a, err := ondisk.DecodeAGI(data); err == nil {
			_ = a.Verify(data, agno, sb)
			out := append([]byte{}, data...)
			a.Encode(out)
			b, _ := ondisk.DecodeAGI(out)
			b.CRC, a.CRC = 0, 0
			if *b != *a {
				t.Fatalf("AGI round trip changed fields")
			}
		}
		if a, err := ondisk.DecodeAGFL(data); err == nil {
			_ = a.Verify(data, agno, sb)
			out := append([]byte{}, data...)
			a.Encode(out)
			for i := ondisk.AGFLHdrSize; i+4 <= len(data); i++ {
				if i != ondisk.AGFLCRCOff && out[i] != data[i] {
					t.Fatalf("AGFL round trip changed byte %d", i)
				}
			}
		}
		_, _ = ondisk.AGInoRange(sb, agno)
		for _, m := range []uint32{ondisk.BnobtMagic, ondisk.InobtMagic, ondisk.RmapbtMagic, ondisk.RefcbtMagic, 0} {
			if l := ondisk.BtreeMaxLevels(sb, m); l < 0 || l > 9 {
				t.Fatalf("max levels %d", l)
			}
		}
	})
}

func stripCRC(a ondisk.AGF) ondisk.AGF { a.CRC = 0; return a }

// FuzzBtreeRecords: every record and key decoder, verifier and ordering
// helper accepts arbitrary bytes without panicking, and records round-trip.
func FuzzBtreeRecords(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, agno uint32) {
		sb := fuzzSB()
		agno %= sb.AGCount
		half := len(data) / 2
		a, b := data[:half], data[half:]
		for _, m := range []uint32{ondisk.BnobtMagic, ondisk.CntbtMagic, ondisk.InobtMagic, ondisk.FinobtMagic,
			ondisk.RmapbtMagic, ondisk.RefcbtMagic, ondisk.BmbtMagic, 0} {
			_ = ondisk.BtreeRecsInOrder(m, a, b)
			_ = ondisk.BtreeKeysInOrder(m, a, b)
			_ = ondisk.CompareBtreeKeys(m, a, b)
			key := make([]byte, 20)
			_ = ondisk.BtreeRecKey(m, data, key, false)
			_ = ondisk.BtreeRecKey(m, data, key, true)
			_ = ondisk.BtreeRecKey(m, data, key[:len(data)%21], true)
		}
		if r, err := ondisk.DecodeAllocRec(data); err == nil {
			out := make([]byte, ondisk.AllocRecSize)
			r.Encode(out)
			mustEqual(t, "alloc", out, data)
		}
		for _, sparse := range []bool{false, true} {
			if r, err := ondisk.DecodeInobtRec(data, sparse); err == nil {
				_ = r.Verify(sb, agno, "fuzz")
				_ = r.PresentRuns()
				for i := -1; i <= 64; i++ {
					_ = r.IsAllocated(i) || r.IsHole(i) || r.IsFree(i)
				}
				if r.AllocatedInodes()&r.HoleInodes() != 0 {
					t.Fatal("an inode is both allocated and in a hole")
				}
				out := make([]byte, ondisk.InobtRecSize)
				r.Encode(out)
				mustEqual(t, "inobt", out, data)
			}
		}
		if r, err := ondisk.DecodeRmapRec(data); err == nil {
			_ = r.Verify(38400, "fuzz")
			_ = r.String()
			_ = r.HighKey()
			out := make([]byte, ondisk.RmapRecSize)
			r.Encode(out)
			mustEqual(t, "rmap", out, data)
		}
		if lo, hi, err := ondisk.DecodeRmapKeyPair(data); err == nil {
			_ = lo.Compare(hi)
			out := make([]byte, ondisk.RmapKeySize)
			lo.Encode(out)
			mustEqual(t, "rmap key", out, data)
		}
		if r, err := ondisk.DecodeRefcountRec(data); err == nil {
			_ = r.Verify(38400, "fuzz")
			out := make([]byte, ondisk.RefcountRecSize)
			r.Encode(out)
			mustEqual(t, "refcount", out, data)
		}
		if k, err := ondisk.DecodeRefcountKey(data); err == nil {
			out := make([]byte, 4)
			k.Encode(out)
			mustEqual(t, "refcount key", out, data)
		}
		if len(data) >= 8 {
			_ = ondisk.RmapOwnerName(binary.BigEndian.Uint64(data))
		}
	})
}

func mustEqual(t *testing.T, what string, out, in []byte) {
	t.Helper()
	for i := range out {
		if out[i] != in[i] {
			t.Fatalf("%s record round trip changed byte %d: %x -> %x", what, i, in[:len(out)], out)
		}
	}
}
