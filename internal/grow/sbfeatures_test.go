package grow

import (
	"os"
	"strings"
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
	base, sb, opts := primaryDamageBase(t)
	for _, c := range []struct {
		name string
		set  func(*ondisk.Superblock)
	}{
		{"versionnum without morebits", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionMoreBits }},
		{"versionnum without dirv2", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionDirV2 }},
		{"features2 without crc", func(s *ondisk.Superblock) { s.Features2 &^= ondisk.SBF2CRC; s.BadFeatures2 = s.Features2 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev, bad := damagedPrimary(t, base, sb, c.set)
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

// TestPrimaryContradictedBySecondaries: a primary superblock that passes
// its own checks but that the secondaries contradict on a field every copy
// shares (realtime extent size, bitmap blocks: xfs_repair recovers such a
// primary from a secondary) is refused, nothing written; growing would
// copy it into every secondary, after which xfs_repair found no valid
// superblock. A damaged secondary next to one that agrees with the primary
// does not stop the grow (it is rewritten).
func TestPrimaryContradictedBySecondaries(t *testing.T) {
	img := mkfs(t, 64<<20)
	base, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := superblock(t, img)
	if sb.AGCount < 3 {
		t.Fatalf("want at least 3 AGs, have %d", sb.AGCount)
	}
	opts := Options{Data: true, ExtendTo: int64(sb.DBlocks+2*uint64(sb.AGBlocks)) * int64(sb.BlockSize), IMaxPct: -1}
	damage := func(dev *memDev, ag uint32, set func(*ondisk.Superblock)) {
		off := int64(sb.AGBToDaddr(ag, 0)) << ondisk.BBShift
		buf := make([]byte, sb.SectSize)
		dev.ReadAt(buf, off)
		s, err := ondisk.DecodeSuperblock(buf)
		if err != nil {
			t.Fatal(err)
		}
		set(s)
		s.Encode(buf)
		ondisk.SetCRC(buf, ondisk.SBCRCOff)
		dev.WriteAt(buf, off)
	}
	for _, c := range []struct {
		name string
		set  func(*ondisk.Superblock)
	}{
		{"rextsize", func(s *ondisk.Superblock) { s.RExtSize = 5 }},
		{"rbmblocks", func(s *ondisk.Superblock) { s.RBMBlocks = 9 }},
		{"logblocks", func(s *ondisk.Superblock) { s.LogBlocks-- }},
	} {
		t.Run("primary "+c.name, func(t *testing.T) {
			dev := newMemDev(base)
			damage(dev, 0, c.set)
			written := len(dev.over)
			_, err := Grow(dev, opts)
			if err == nil || !strings.Contains(err.Error(), c.name) {
				t.Fatalf("grow: %v", err)
			}
			if len(dev.over) != written || dev.size != int64(len(base)) {
				t.Errorf("refused, but %d sectors written, size %d", len(dev.over)-written, dev.size)
			}
		})
		t.Run("secondary "+c.name, func(t *testing.T) {
			dev := newMemDev(base)
			damage(dev, 1, c.set)
			if _, err := Grow(dev, opts); err != nil {
				t.Fatalf("a damaged secondary of AG 1 (AG 2 agrees with the primary): %v", err)
			}
		})
	}
}

// TestBadPrimaryFieldsRefused: stripe and realtime fields the kernel
// refuses to mount with are refused before anything is written (growing
// used to copy them into every secondary superblock, leaving xfs_repair
// no valid one).
func TestBadPrimaryFieldsRefused(t *testing.T) {
	base, sb, opts := primaryDamageBase(t)
	for _, c := range []struct {
		name string
		set  func(*ondisk.Superblock)
	}{
		{"stripe unit", func(s *ondisk.Superblock) { s.Unit = 3 }},
		{"stripe width", func(s *ondisk.Superblock) { s.Width = 5 }},
		{"realtime fields", func(s *ondisk.Superblock) { s.FRExtents = 10 }},
		{"realtime fields", func(s *ondisk.Superblock) { s.RExtSLog = 3 }},
		{"realtime extent size", func(s *ondisk.Superblock) { s.RExtSize = 2000000 }},
	} {
		dev, _ := damagedPrimary(t, base, sb, c.set)
		written := len(dev.over)
		if _, err := Grow(dev, opts); err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: %v", c.name, err)
		}
		if len(dev.over) != written || dev.size != int64(len(base)) {
			t.Errorf("%s: refused, but %d sectors written, size %d", c.name, len(dev.over)-written, dev.size)
		}
	}
}

// damagedPrimary returns base in memory with its primary superblock
// changed by set (the CRC made valid again), and that superblock.
func damagedPrimary(t *testing.T, base []byte, sb *ondisk.Superblock, set func(*ondisk.Superblock)) (*memDev, *ondisk.Superblock) {
	t.Helper()
	dev := newMemDev(base)
	buf := make([]byte, sb.SectSize)
	dev.ReadAt(buf, 0)
	bad, err := ondisk.DecodeSuperblock(buf)
	if err != nil {
		t.Fatal(err)
	}
	set(bad)
	bad.Encode(buf)
	ondisk.SetCRC(buf, ondisk.SBCRCOff)
	dev.WriteAt(buf, 0)
	return dev, bad
}

// primaryDamageBase makes the image the superblock-damage tables start
// from, in memory, with its superblock and options growing it by two AGs.
func primaryDamageBase(t *testing.T) ([]byte, *ondisk.Superblock, Options) {
	t.Helper()
	img := mkfs(t, 64<<20)
	base, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := superblock(t, img)
	return base, sb, Options{Data: true, ExtendTo: int64(sb.DBlocks+2*uint64(sb.AGBlocks)) * int64(sb.BlockSize), IMaxPct: -1}
}
