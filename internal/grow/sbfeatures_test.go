package grow

import (
	"os"
	"testing"

	"xfskit/ondisk"
)

// TestBadPrimaryFeatureBitsRefused: a primary superblock whose v5 feature
// words lack a bit every v5 filesystem has (the kernel will not mount it,
// xfs_repair calls it a bad version and recovers from a secondary) is
// refused, and nothing is written. Before, growfs accepted it and copied
// it into every secondary superblock, after which xfs_repair found no
// valid superblock anywhere and gave up.
func TestBadPrimaryFeatureBitsRefused(t *testing.T) {
	img := mkfs(t, 64<<20)
	base, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := superblock(t, img)
	opts := Options{Data: true, ExtendTo: int64(sb.DBlocks+2*uint64(sb.AGBlocks)) * int64(sb.BlockSize), IMaxPct: -1}
	for _, c := range []struct {
		name string
		set  func(*ondisk.Superblock)
	}{
		{"versionnum without morebits", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionMoreBits }},
		{"versionnum without dirv2", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionDirV2 }},
		{"features2 without crc", func(s *ondisk.Superblock) { s.Features2 &^= ondisk.SBF2CRC; s.BadFeatures2 = s.Features2 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev := newMemDev(base)
			buf := make([]byte, sb.SectSize)
			dev.ReadAt(buf, 0)
			bad, err := ondisk.DecodeSuperblock(buf)
			if err != nil {
				t.Fatal(err)
			}
			c.set(bad)
			bad.Encode(buf)
			ondisk.SetCRC(buf, ondisk.SBCRCOff)
			dev.WriteAt(buf, 0)
			written := len(dev.over)
			if _, err := Grow(dev, opts); err == nil {
				t.Fatalf("grown (versionnum 0x%04x, features2 0x%x)", bad.VersionNum, bad.Features2)
			} else {
				t.Log(err)
			}
			if len(dev.over) != written || dev.size != int64(len(base)) {
				t.Errorf("refused, but %d sectors written, size %d", len(dev.over)-written, dev.size)
			}
		})
	}
}
