package build

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// Linux ioctls used to learn a target's size and topology.
const (
	ioctlBlkGetSize64 = 0x80081272
	ioctlBlkSSZGet    = 0x1268
	ioctlBlkPBSZGet   = 0x127b
	ioctlBlkIOMin     = 0x1278
	ioctlBlkIOOpt     = 0x1279
	ioctlBlkAlignOff  = 0x127a
	ioctlBlkDiscard   = 0x1277
	ioctlBlkZeroOut   = 0x127f
	ioctlXFSDioInfo   = 0x800c581e // XFS_IOC_DIOINFO: _IOR('X', 30, struct dioattr)
)

func ioctlInt(fd uintptr, req uintptr) (int, error) {
	var v int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&v))); e != 0 {
		return 0, e
	}
	return int(v), nil
}

// ProbeTarget stats path and, for block devices, asks the kernel for the
// size, sector sizes and I/O hints (what libblkid reports to mkfs.xfs).
// For regular files on XFS the direct I/O size sets the sector size.
func ProbeTarget(path string) (TargetInfo, error) {
	t := TargetInfo{Path: path}
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("Error accessing specified device %s: %w", path, err)
	}
	t.Exists = true
	mode := st.Mode()
	switch {
	case mode.IsRegular():
		t.Size = st.Size()
		f, err := os.Open(path)
		if err != nil {
			return t, err
		}
		defer f.Close()
		var dio [3]uint32 // d_mem, d_miniosz, d_maxiosz
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), ioctlXFSDioInfo, uintptr(unsafe.Pointer(&dio))); e == 0 {
			t.LogicalSector = int(dio[1])
		}
		return t, nil
	case mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0:
		t.IsBlock = true
		f, err := os.Open(path)
		if err != nil {
			return t, err
		}
		defer f.Close()
		fd := f.Fd()
		var size uint64
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, ioctlBlkGetSize64, uintptr(unsafe.Pointer(&size))); e != 0 {
			return t, fmt.Errorf("%s: can't determine device size: %w", path, e)
		}
		t.Size = int64(size)
		t.LogicalSector, _ = ioctlInt(fd, ioctlBlkSSZGet)
		t.PhysicalSector, _ = ioctlInt(fd, ioctlBlkPBSZGet)
		t.MinIO, _ = ioctlInt(fd, ioctlBlkIOMin)
		t.OptIO, _ = ioctlInt(fd, ioctlBlkIOOpt)
		t.AlignOffset, _ = ioctlInt(fd, ioctlBlkAlignOff)
		return t, nil
	}
	return t, fmt.Errorf("specified device %s not a file or block device", path)
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
