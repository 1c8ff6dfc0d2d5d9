package pack_test

import (
	"bytes"
	"fmt"
	"testing"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// nullDisk checks that writes stay inside the device and drops them.
type nullDisk struct{ size int64 }

func (m *nullDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, fmt.Errorf("write of %d bytes at %d outside the %d-byte disk", len(p), off, m.size)
	}
	return len(p), nil
}

// fuzzSB describes a small v5 filesystem (4 AGs of 4096 blocks) with the
// default features; blockLog picks the block size.
func fuzzSB(blockLog uint8) *ondisk.Superblock {
	bs := uint32(1) << blockLog
	ipb := bs / 512
	sb := &ondisk.Superblock{
		MagicNum: ondisk.SBMagic, BlockSize: bs, BlockLog: blockLog, DBlocks: 4 * 4096, AGBlocks: 4096,
		AGBlkLog: 12, AGCount: 4, InodeSize: 512, InodeLog: 9, InoPBlock: uint16(ipb),
		SectSize: 512, SectLog: 9, VersionNum: ondisk.SBVersion5 | ondisk.SBVersionAlignBit | ondisk.SBVersionDirV2,
		FeaturesIncompat: ondisk.IncompatFType | ondisk.IncompatSpinodes | ondisk.IncompatBigtime,
		FeaturesROCompat: ondisk.ROCompatFinobt | ondisk.ROCompatReflink | ondisk.ROCompatInobtCnt,
		InoAlignMt:       max(1, 64/ipb), UUID: ondisk.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
	for 1<<sb.InoPBLog < ipb {
		sb.InoPBLog++
	}
	return sb
}

// FuzzPack builds inodes from arbitrary names, attributes and targets:
// Pack must never panic, and whatever it accepts must pass the inode
// verifier.
func FuzzPack(f *testing.F) {
	f.Add([]byte("a\x00bb\x00ccc"), []byte("user.x\x00v\x00trusted.y\x00"), []byte("target"), uint8(0), uint8(12))
	f.Add(bytes.Repeat([]byte("name-long-enough\x00"), 300), bytes.Repeat([]byte("user.attr\x00value-value\x00"), 50), []byte("t"), uint8(1), uint8(10))
	f.Add([]byte("."), []byte("system.posix_acl_access\x00\x02\x00\x00\x00"), bytes.Repeat([]byte("/x"), 600), uint8(2), uint8(16))
	f.Fuzz(func(t *testing.T, names, attrs, target []byte, kind, blockLog uint8) {
		blockLog = 10 + blockLog%7 // 1 KiB .. 64 KiB blocks
		sb := fuzzSB(blockLog)
		disk := &nullDisk{size: int64(sb.DBlocks) << blockLog}
		space := pack.NewSpace(sb)
		for agno := uint32(0); agno < sb.AGCount; agno++ {
			if err := space.SetFree(agno, []pack.AGExtent{{Bno: 64, Len: sb.AGBlocks - 64}}); err != nil {
				t.Fatal(err)
			}
		}
		p, err := pack.New(sb, space, disk)
		if err != nil {
			t.Fatal(err)
		}
		ino := sb.AGInoToIno(1, sb.AGBToAGIno(64))
		in := &pack.Inode{Ino: ino, UID: 1, GID: 2, NLink: 1, Parent: ino}
		switch kind % 4 {
		case 0:
			in.Mode = ondisk.ModeDir | 0o755
			for i, n := range bytes.Split(names, []byte{0}) {
				in.Entries = append(in.Entries, pack.DirEntry{Name: n, Ino: ino + uint64(i%50), FType: uint8(1 + i%7)})
			}
		case 1:
			in.Mode = ondisk.ModeReg | 0o644
			for i := range min(len(names), 5000) {
				in.Extents = append(in.Extents, ondisk.Extent{Offset: uint64(i) * 2, StartBlock: sb.AGToFSB(2, uint32(100+i)), Length: 1})
			}
		case 2:
			in.Mode = ondisk.ModeSymlink | 0o777
			in.Target = target
		default:
			in.Mode = ondisk.ModeChar | 0o600
			in.Rdev = uint32(len(names))
		}
		parts := bytes.Split(attrs, []byte{0})
		for i := 0; i+1 < len(parts); i += 2 {
			x, err := pack.XattrFromLinux(string(parts[i]), bytes.Repeat(parts[i+1], 1+len(target)%300))
			if err == nil {
				in.Xattrs = append(in.Xattrs, x)
			}
		}
		buf := make([]byte, sb.InodeSize)
		if _, err := p.Pack(in, buf); err != nil {
			return
		}
		d, err := ondisk.DecodeDinode(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Verify(buf, ino, sb); err != nil {
			t.Fatalf("Pack built an inode its verifier rejects: %v", err)
		}
	})
}
