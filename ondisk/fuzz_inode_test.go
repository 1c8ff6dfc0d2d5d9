package ondisk_test

import (
	"testing"

	"xfskit/ondisk"
)

// inoFuzzSB is a plausible v5 geometry for verifying fuzzed inodes.
func inoFuzzSB() *ondisk.Superblock {
	return &ondisk.Superblock{
		MagicNum: ondisk.SBMagic, BlockSize: 4096, BlockLog: 12, InodeSize: 512, InodeLog: 9,
		InoPBlock: 8, InoPBLog: 3, AGBlocks: 16384, AGBlkLog: 14, AGCount: 4, DBlocks: 65536,
		VersionNum: ondisk.SBVersion5, SectSize: 512, SectLog: 9, RExtSize: 1,
		FeaturesIncompat: ondisk.IncompatFType | ondisk.IncompatBigtime | ondisk.IncompatNrext64,
		FeaturesROCompat: ondisk.ROCompatReflink | ondisk.ROCompatFinobt,
	}
}

func inoFuzzSeeds() [][]byte {
	var seeds [][]byte
	mk := func(d ondisk.Dinode, fork func(b []byte)) {
		b := make([]byte, 512)
		if fork != nil {
			fork(b[d.CoreSize():])
		}
		d.Encode(b)
		seeds = append(seeds, b)
	}
	base := ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 3, NLink: 1, Ino: 131, Flags2: ondisk.Diflag2Bigtime}
	reg := base
	reg.Mode, reg.Format, reg.AFormat, reg.ForkOff, reg.NExtents, reg.NBlocks, reg.Size = ondisk.ModeReg|0o644, ondisk.FmtExtents, ondisk.FmtExtents, 24, 2, 3, 9000
	mk(reg, func(f []byte) {
		ondisk.Extent{Offset: 0, StartBlock: 100, Length: 1}.Encode(f)
		ondisk.Extent{Offset: 2, StartBlock: 200, Length: 2, Unwritten: true}.Encode(f[16:])
	})
	bt := base
	bt.Mode, bt.Format, bt.AFormat, bt.ForkOff, bt.NExtents, bt.NBlocks, bt.Size = ondisk.ModeReg|0o600, ondisk.FmtBtree, ondisk.FmtExtents, 24, 500, 600, 1<<30
	bt.Flags2 |= ondisk.Diflag2Nrext64
	mk(bt, func(f []byte) {
		(&ondisk.BmdrRoot{Level: 1, Keys: []uint64{0, 300}, Ptrs: []uint64{77, 78}}).Encode(f[:192])
	})
	ln := base
	ln.Mode, ln.Format, ln.AFormat, ln.Size = ondisk.ModeSymlink|0o777, ondisk.FmtLocal, ondisk.FmtExtents, 5
	mk(ln, func(f []byte) { copy(f, "a/b/c") })
	dv := base
	dv.Mode, dv.Format, dv.ForkOff, dv.AFormat = ondisk.ModeChar|0o600, ondisk.FmtDev, 1, ondisk.FmtExtents
	mk(dv, func(f []byte) { ondisk.EncodeRdev(f, 0x40d1170) })
	v2 := ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 2, Mode: ondisk.ModeDir | 0o755, Format: ondisk.FmtLocal, NLink: 2, Size: 6}
	mk(v2, nil)
	return seeds
}

// FuzzDinode feeds arbitrary bytes through the inode decoder, verifier,
// fork split and fork decoders: none may panic, and whatever decodes must
// re-encode to a core that decodes the same.
func FuzzDinode(f *testing.F) {
	for _, s := range inoFuzzSeeds() {
		f.Add(s)
	}
	sb := inoFuzzSB()
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ondisk.DecodeDinode(b)
		if err != nil {
			return
		}
		_ = d.Verify(b, 131, sb)
		data, attr, err := d.Forks(b)
		if err != nil {
			return
		}
		for i, fork := range [][]byte{data, attr} {
			switch d.ForkFormat(i == 1) {
			case ondisk.FmtExtents:
				_, _ = ondisk.DecodeExtents(fork, d.ForkNextents(i == 1))
			case ondisk.FmtBtree:
				if r, err := ondisk.DecodeBmdr(fork, "fuzz"); err == nil && len(r.Keys) != int(r.NumRecs) {
					t.Fatalf("bmdr with %d keys for %d records", len(r.Keys), r.NumRecs)
				}
			case ondisk.FmtDev:
				_, _ = ondisk.DecodeRdev(fork)
			}
		}
		if len(b) < d.CoreSize() {
			return
		}
		c := append([]byte(nil), b...)
		d.Encode(c)
		d2, err := ondisk.DecodeDinode(c)
		if err != nil {
			t.Fatalf("re-encoded inode does not decode: %v", err)
		}
		d.CRC, d2.CRC = 0, 0
		if *d != *d2 {
			t.Fatalf("re-encode changed the core:\n%+v\n%+v", d, d2)
		}
	})
}

// FuzzSymlinkBlock checks the remote symlink verifier never panics and
// only returns pieces inside the buffer.
func FuzzSymlinkBlock(f *testing.F) {
	b := make([]byte, 1024)
	h := ondisk.SymlinkHeader{Magic: ondisk.SymlinkMagic, Bytes: 10, Owner: 131, Blkno: 8}
	copy(b[ondisk.SymlinkHdrSize:], "0123456789")
	h.Encode(b, true)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, piece, err := ondisk.VerifySymlinkBlock(b, ondisk.UUID{}, 8, 131, "fuzz")
		if err == nil && len(piece) > len(b)-ondisk.SymlinkHdrSize {
			t.Fatalf("piece of %d bytes from a %d-byte block", len(piece), len(b))
		}
	})
}
