// Package xfs is the engine over one XFS image: it reads (and later writes)
// inodes, extent maps, directories, attributes and file data through an
// image.Device, using the ondisk package for every structure.
package xfs

import (
	"errors"
	"fmt"
	"os"

	"xfskit/internal/image"
	"xfskit/ondisk"
)

// FS is an opened XFS filesystem image.
type FS struct {
	Dev  image.Device
	SB   *ondisk.Superblock
	name string
	// LSNHook, when set, sees the LSN of every file-owned metadata block
	// (directory, attribute, symlink, bmbt) the engine verifies, so a
	// checker can compare them with the log head. It must be safe for
	// concurrent use.
	LSNHook func(ino uint64, what string, daddr, lsn uint64)
}

// ErrPendingEdit is returned by Open when an undo journal lies next to the
// image: an xfskit tool is changing it or was interrupted.
var ErrPendingEdit = errors.New("an xfskit edit of the image is unfinished")

// Open opens the image or device at path read-only. It refuses an image
// with an undo journal: until the journal is played back the image holds
// neither the old filesystem nor the new one (an interrupted growfs leaves
// new AGs the superblock does not count yet, or a last AG longer than it
// says), so a reader would report a state that never existed.
func Open(path string) (*FS, error) {
	if _, err := os.Lstat(path + image.UndoSuffix); err == nil {
		return nil, fmt.Errorf("%s: %w: %s exists (another xfskit tool is changing the image, or was interrupted): "+
			"run the interrupted command again, which rolls the edit back first", path, ErrPendingEdit, path+image.UndoSuffix)
	}
	dev, err := image.Open(path, false)
	if err != nil {
		return nil, err
	}
	fs, err := OpenDevice(dev)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return fs, nil
}

// OpenDevice reads and verifies the primary superblock of dev.
func OpenDevice(dev image.Device) (*FS, error) {
	hdr := make([]byte, ondisk.BBSize)
	if _, err := dev.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	sb, err := ondisk.DecodeSuperblock(hdr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dev.Name(), err)
	}
	if sb.MagicNum != ondisk.SBMagic {
		return nil, fmt.Errorf("%s: %w", dev.Name(), ondisk.Corrupt("superblock", "AG 0", "magicnum", "not an XFS filesystem (magic 0x%08x at offset 0)", sb.MagicNum))
	}
	sectSize := int(sb.SectSize)
	if sectSize < ondisk.BBSize || sectSize > 32768 {
		return nil, fmt.Errorf("%s: %w", dev.Name(), ondisk.Corrupt("superblock", "AG 0", "sectsize", "invalid sector size %d", sectSize))
	}
	sect := make([]byte, sectSize)
	if _, err := dev.ReadAt(sect, 0); err != nil {
		return nil, err
	}
	if err := sb.Verify(sect, "AG 0"); err != nil {
		return nil, fmt.Errorf("%s: %w", dev.Name(), err)
	}
	if !sb.IsV5() {
		return nil, fmt.Errorf("%s: XFS version %d filesystem; xfskit handles v5 (CRC-enabled) filesystems only", dev.Name(), sb.Version())
	}
	need := int64(sb.DBlocks) * int64(sb.BlockSize)
	if dev.Size() < need {
		return nil, fmt.Errorf("%s: image holds %d bytes but the superblock describes %d (%d blocks of %d): truncated image?", dev.Name(), dev.Size(), need, sb.DBlocks, sb.BlockSize)
	}
	return &FS{Dev: dev, SB: sb, name: dev.Name()}, nil
}

// Close closes the underlying device.
func (f *FS) Close() error { return f.Dev.Close() }

// Name is the image path, for messages.
func (f *FS) Name() string { return f.name }

// ErrOutOfRange is returned (wrapped) for reads outside the data device.
var ErrOutOfRange = errors.New("outside the filesystem")

// ReadDaddr reads n bytes at 512-byte disk address daddr.
func (f *FS) ReadDaddr(daddr uint64, n int) ([]byte, error) {
	buf := make([]byte, n)
	return buf, f.ReadDaddrInto(daddr, buf)
}

// ReadDaddrInto fills buf from disk address daddr.
func (f *FS) ReadDaddrInto(daddr uint64, buf []byte) error {
	end := daddr<<ondisk.BBShift + uint64(len(buf))
	if daddr > f.SB.DBlocks<<(f.SB.BlockLog-ondisk.BBShift) || end > f.SB.DBlocks<<f.SB.BlockLog {
		return fmt.Errorf("%s: read of %d bytes at daddr %d: %w", f.name, len(buf), daddr, ErrOutOfRange)
	}
	_, err := f.Dev.ReadAt(buf, int64(daddr)<<ondisk.BBShift)
	return err
}

// ReadAGB reads count blocks starting at (agno, agbno).
func (f *FS) ReadAGB(agno, agbno, count uint32) ([]byte, error) {
	if agno >= f.SB.AGCount || uint64(agbno)+uint64(count) > uint64(f.SB.AGLength(agno)) {
		return nil, fmt.Errorf("%s: read of %d blocks at AG %d block %d: %w", f.name, count, agno, agbno, ErrOutOfRange)
	}
	return f.ReadDaddr(f.SB.AGBToDaddr(agno, agbno), int(count)<<f.SB.BlockLog)
}

// ReadFSB reads count blocks starting at filesystem block fsb.
func (f *FS) ReadFSB(fsb uint64, count uint32) ([]byte, error) {
	agno, agbno := f.SB.FSBToAG(fsb)
	return f.ReadAGB(agno, agbno, count)
}

// AGHeaderDaddr returns the disk address of AG header sector n (0 = sb,
// 1 = AGF, 2 = AGI, 3 = AGFL) of AG agno.
func (f *FS) AGHeaderDaddr(agno uint32, n int) uint64 {
	return f.SB.AGBToDaddr(agno, 0) + uint64(n)*uint64(f.SB.SectSize)/ondisk.BBSize
}

// ReadAGHeader reads AG header sector n of AG agno.
func (f *FS) ReadAGHeader(agno uint32, n int) ([]byte, error) {
	return f.ReadDaddr(f.AGHeaderDaddr(agno, n), int(f.SB.SectSize))
}

// prefetcher is a Device that can start reads in the background.
type prefetcher interface{ WillNeed(off, n int64) error }

// Prefetch hints that n bytes at disk address daddr will be read soon. It
// is advice only: errors and devices without the capability are ignored.
func (f *FS) Prefetch(daddr uint64, n int64) {
	if p, ok := f.Dev.(prefetcher); ok && n > 0 {
		p.WillNeed(int64(daddr)<<ondisk.BBShift, n)
	}
}

func (f *FS) noteLSN(ino uint64, what string, daddr, lsn uint64) {
	if f.LSNHook != nil {
		f.LSNHook(ino, what, daddr, lsn)
	}
}
