package build

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"xfskit/internal/image"
)

// ProbeTarget asks internal/image what the kernel says about path: size,
// sector sizes and I/O hints for block devices (what libblkid reports to
// mkfs.xfs), the direct I/O size for regular files on XFS. Errors are
// worded as mkfs.xfs words them.
func ProbeTarget(path string) (TargetInfo, error) {
	t := TargetInfo{Path: path}
	tg, err := image.Probe(path)
	var pe *fs.PathError
	switch {
	case errors.Is(err, image.ErrNotFileOrBlock):
		return t, fmt.Errorf("specified device %s not a file or block device", path)
	case errors.As(err, &pe) && pe.Op == "stat":
		return t, fmt.Errorf("Error accessing specified device %s: %w", path, err)
	case err != nil:
		return t, err
	}
	t.Exists = tg.Exists
	t.IsBlock = tg.IsBlock
	t.Size = tg.Size
	t.LogicalSector = tg.LogicalSector
	t.PhysicalSector = tg.PhysicalSector
	t.MinIO, t.OptIO = tg.MinIO, tg.OptIO
	t.AlignOffset = tg.AlignOffset
	return t, nil
}

// signature is a magic string at a fixed offset identifying existing
// content that mkfs.xfs (through libblkid) refuses to overwrite without -f.
type signature struct {
	name string
	off  int64 // negative: from the end of the device
	val  []byte
}

var signatures = []signature{
	{"xfs", 0, []byte("XFSB")},
	{"ext2/ext3/ext4", 1024 + 56, []byte{0x53, 0xef}},
	{"btrfs", 65536 + 64, []byte("_BHRfS_M")},
	{"swap", 4096 - 10, []byte("SWAPSPACE2")},
	{"swap", 4096 - 10, []byte("SWAP-SPACE")},
	{"crypto_LUKS", 0, []byte("LUKS\xba\xbe")},
	{"LVM2_member", 512 + 24, []byte("LVM2 001")},
	{"squashfs", 0, []byte("hsqs")},
	{"iso9660", 32769, []byte("CD001")},
	{"jfs", 32768, []byte("JFS1")},
	{"reiserfs", 65536 + 52, []byte("ReIsEr")},
	{"f2fs", 1024, []byte{0x10, 0x20, 0xf5, 0xf2}},
	{"ntfs", 3, []byte("NTFS    ")},
	{"vfat", 82, []byte("FAT32   ")},
	{"vfat", 54, []byte("FAT1")},
	{"linux_raid_member", 4096, []byte{0xfc, 0x4e, 0x2b, 0xa9}},
	{"linux_raid_member", 0, []byte{0xfc, 0x4e, 0x2b, 0xa9}},
	{"gpt", 512, []byte("EFI PART")},
	{"dos", 510, []byte{0x55, 0xaa}},
}

// ExistingSignature reports what known filesystem, RAID member or
// partition table r (of the given size) appears to hold, or "".
func ExistingSignature(r io.ReaderAt, size int64) (string, error) {
	if size <= 0 {
		return "", nil
	}
	head := make([]byte, min(size, 65536+128))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return "", err
	}
	for _, s := range signatures {
		end := s.off + int64(len(s.val))
		if end <= int64(len(head)) && bytes.Equal(head[s.off:end], s.val) {
			return s.name, nil
		}
	}
	// MD RAID 0.90 and 1.0 superblocks live near the end of the device.
	if size >= 128<<10 {
		var w [4]byte
		for _, off := range []int64{(size &^ 65535) - 65536, (size &^ 4095) - 8192} {
			if _, err := r.ReadAt(w[:], off); err == nil && binary.LittleEndian.Uint32(w[:]) == 0xa92b4efc {
				return "linux_raid_member", nil
			}
		}
	}
	return "", nil
}
