package ondisk_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

func readAt(t *testing.T, img string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func dbUint(t *testing.T, out, name string) uint64 {
	t.Helper()
	v, err := oracle.Field(out, name)
	if err != nil {
		t.Fatal(err)
	}
	v = strings.Fields(v)[0]
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, v, err)
	}
	return n
}

// Decodes primary and secondary superblocks of real mkfs.xfs images across
// geometries, compares every numeric field with xfs_db, and re-encodes them
// byte for byte.
func TestSuperblockAgainstMkfs(t *testing.T) {
	cases := [][]string{
		nil,
		{"-b", "size=1024", "-i", "size=512"},
		{"-b", "size=2048", "-i", "size=1024", "-s", "size=2048"},
		{"-b", "size=1024", "-m", "crc=1,reflink=0,finobt=0", "-i", "sparse=0"},
		{"-b", "size=65536", "-n", "size=65536", "-i", "size=2048"},
		{"-m", "rmapbt=1", "-d", "agcount=7", "-L", "lbl"},
	}
	fields := []string{"blocksize", "dblocks", "logstart", "rootino", "rbmino", "rsumino", "agblocks", "agcount",
		"logblocks", "versionnum", "sectsize", "inodesize", "inopblock", "blocklog", "agblklog", "imax_pct",
		"icount", "ifree", "fdblocks", "inoalignmt", "dirblklog", "logsunit", "features2", "features_ro_compat",
		"features_incompat", "spino_align"}
	for _, opts := range cases {
		t.Run(strings.Join(opts, " "), func(t *testing.T) {
			img := oracle.Mkfs(t, "600m", opts...)
			sect := readAt(t, img, 0, 512)
			sb, err := ondisk.DecodeSuperblock(sect)
			if err != nil {
				t.Fatal(err)
			}
			sect = readAt(t, img, 0, int(sb.SectSize))
			if err := sb.Verify(sect, "AG 0"); err != nil {
				t.Fatal(err)
			}
			out := oracle.DB(t, img, nil, "sb 0", "p")
			for _, f := range fields {
				got := fieldValue(sb, f)
				if want := dbUint(t, out, f); got != want {
					t.Errorf("%s: decoded %d, xfs_db says %d", f, got, want)
				}
			}
			if u, _ := oracle.Field(out, "uuid"); u != sb.UUID.String() {
				t.Errorf("uuid: %s vs xfs_db %s", sb.UUID, u)
			}
			enc := make([]byte, len(sect))
			copy(enc[ondisk.SBSize:], sect[ondisk.SBSize:])
			sb.Encode(enc)
			if !bytes.Equal(enc, sect) {
				t.Errorf("re-encoded superblock differs from disk")
			}
			// Every secondary decodes and verifies with the same geometry.
			for ag := uint32(1); ag < sb.AGCount; ag++ {
				off := int64(ag) * int64(sb.AGBlocks) * int64(sb.BlockSize)
				s2b := readAt(t, img, off, int(sb.SectSize))
				s2, err := ondisk.DecodeSuperblock(s2b)
				if err != nil {
					t.Fatal(err)
				}
				if err := s2.Verify(s2b, fmt.Sprintf("AG %d", ag)); err != nil {
					t.Fatal(err)
				}
				if s2.UUID != sb.UUID || s2.AGBlocks != sb.AGBlocks || s2.DBlocks != sb.DBlocks {
					t.Errorf("secondary %d geometry differs", ag)
				}
			}
			// A flipped bit is caught by the CRC.
			sect[130] ^= 1
			if err := sb.Verify(sect, "AG 0"); err == nil || !strings.Contains(err.Error(), "checksum") {
				t.Errorf("corrupted sector not caught: %v", err)
			}
		})
	}
}

func fieldValue(sb *ondisk.Superblock, name string) uint64 {
	m := map[string]uint64{
		"blocksize": uint64(sb.BlockSize), "dblocks": sb.DBlocks, "logstart": sb.LogStart, "rootino": sb.RootIno,
		"rbmino": sb.RBMIno, "rsumino": sb.RSumIno, "agblocks": uint64(sb.AGBlocks), "agcount": uint64(sb.AGCount),
		"logblocks": uint64(sb.LogBlocks), "versionnum": uint64(sb.VersionNum), "sectsize": uint64(sb.SectSize),
		"inodesize": uint64(sb.InodeSize), "inopblock": uint64(sb.InoPBlock), "blocklog": uint64(sb.BlockLog),
		"agblklog": uint64(sb.AGBlkLog), "imax_pct": uint64(sb.IMaxPct), "icount": sb.ICount, "ifree": sb.IFree,
		"fdblocks": sb.FDBlocks, "inoalignmt": uint64(sb.InoAlignMt), "dirblklog": uint64(sb.DirBlkLog),
		"logsunit": uint64(sb.LogSUnit), "features2": uint64(sb.Features2), "features_ro_compat": uint64(sb.FeaturesROCompat),
		"features_incompat": uint64(sb.FeaturesIncompat), "spino_align": uint64(sb.SpinoAlign),
	}
	return m[name]
}
