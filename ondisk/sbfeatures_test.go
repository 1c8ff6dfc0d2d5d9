package ondisk_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// TestSuperblockV5FeatureBits: a v5 superblock missing one of the bits of
// the older feature words that every v5 filesystem has, or with the shared
// bit, or whose sparse inode alignment is not the inode cluster size, is
// rejected as the kernel (mount) and xfs_repair reject it; what mkfs.xfs
// writes (512-byte and 4 KiB sectors, where the sector bit is set, 1 KiB
// to 64 KiB blocks, 2 KiB inodes) passes. Before, such a primary passed, and growfs copied it into every
// secondary: xfs_repair then found no valid superblock at all.
func TestSuperblockV5FeatureBits(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	for _, opts := range [][]string{nil, {"-s", "size=4096"}, {"-n", "version=ci"}, {"-b", "size=1024"}, {"-i", "size=2048"}, {"-b", "size=65536"}} {
		img := oracle.Mkfs(t, "300m", opts...)
		sb, err := ondisk.DecodeSuperblock(readAt(t, img, 0, 512))
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.Verify(readAt(t, img, 0, int(sb.SectSize)), "AG 0"); err != nil {
			t.Fatalf("mkfs.xfs %v: %v", opts, err)
		}
	}
	img := oracle.Mkfs(t, "300m")
	orig := readAt(t, img, 0, 512)
	for _, c := range []struct {
		field string
		set   func(*ondisk.Superblock)
	}{
		{"versionnum", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionMoreBits }},
		{"versionnum", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionNlinkBit }},
		{"versionnum", func(s *ondisk.Superblock) { s.VersionNum &^= ondisk.SBVersionDirV2 }},
		{"versionnum", func(s *ondisk.Superblock) { s.VersionNum |= ondisk.SBVersionShared }},
		{"features2", func(s *ondisk.Superblock) { s.Features2 &^= ondisk.SBF2CRC }},
		{"features2", func(s *ondisk.Superblock) { s.Features2 &^= ondisk.SBF2LazySBCount }},
		{"spino_align", func(s *ondisk.Superblock) { s.SpinoAlign = 0 }},
		{"spino_align", func(s *ondisk.Superblock) { s.SpinoAlign *= 2 }},
	} {
		sb, err := ondisk.DecodeSuperblock(orig)
		if err != nil {
			t.Fatal(err)
		}
		c.set(sb)
		sb.BadFeatures2 = sb.Features2
		buf := append([]byte(nil), orig...)
		sb.Encode(buf)
		ondisk.SetCRC(buf, ondisk.SBCRCOff)
		what := fmt.Sprintf("versionnum 0x%04x features2 0x%x", sb.VersionNum, sb.Features2)
		err = sb.Verify(buf, "AG 0")
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v", what, err)
		}
		// The oracles agree that it is damage.
		bad := img + ".bad"
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		copy(data, buf)
		if err := os.WriteFile(bad, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := oracle.Repair(t, bad); code == 0 {
			t.Errorf("%s: xfs_repair -n finds nothing wrong:\n%s", what, out)
		}
	}
}
