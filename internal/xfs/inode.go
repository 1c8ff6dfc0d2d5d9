package xfs

import (
	"fmt"

	"xfskit/ondisk"
)

// Inode is a verified on-disk inode: the decoded core plus its number and
// raw bytes, with the literal area split into its forks.
type Inode struct {
	ondisk.Dinode
	Ino      uint64
	Raw      []byte // the whole inode (sb inode size bytes)
	DataFork []byte // slice of Raw
	AttrFork []byte // slice of Raw; nil without an attr fork
}

// Inode reads and verifies inode ino.
func (f *FS) Inode(ino uint64) (*Inode, error) {
	raw, err := f.InodeRaw(ino)
	if err != nil {
		return nil, err
	}
	return f.decodeInode(ino, raw)
}

// DecodeInode verifies and decodes inode ino from raw (one inode's bytes,
// e.g. cut from an inode cluster buffer). raw is copied.
func (f *FS) DecodeInode(ino uint64, raw []byte) (*Inode, error) {
	return f.decodeInode(ino, append([]byte(nil), raw...))
}

// DecodeInodeShared is DecodeInode without the copy: the Inode aliases raw,
// so it is valid only as long as raw is (walkers use it inside a callback).
func (f *FS) DecodeInodeShared(ino uint64, raw []byte) (*Inode, error) {
	return f.decodeInode(ino, raw)
}

func (f *FS) decodeInode(ino uint64, raw []byte) (*Inode, error) {
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	if err := d.Verify(raw, ino, f.SB); err != nil {
		return nil, err
	}
	ip := &Inode{Dinode: *d, Ino: ino, Raw: raw}
	ip.DataFork, ip.AttrFork, err = d.Forks(raw)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	return ip, nil
}

// Rdev is the device number of a character or block device inode in XFS's
// 32-bit form; see ondisk.DevMajor/DevMinor.
func (ip *Inode) Rdev() (uint32, error) {
	if ip.Format != ondisk.FmtDev {
		return 0, fmt.Errorf("inode %d: no device number in a %s-format data fork", ip.Ino, ondisk.FormatName(ip.Format))
	}
	dev, err := ondisk.DecodeRdev(ip.DataFork)
	if err != nil {
		return 0, fmt.Errorf("inode %d: %w", ip.Ino, err)
	}
	return dev, nil
}

// DevNumbers returns the major and minor numbers of a device inode.
func (ip *Inode) DevNumbers() (major, minor uint32, err error) {
	dev, err := ip.Rdev()
	if err != nil {
		return 0, 0, err
	}
	return ondisk.DevMajor(dev), ondisk.DevMinor(dev), nil
}

// Fork returns the bytes of the data or attr fork.
func (ip *Inode) Fork(attr bool) []byte {
	if attr {
		return ip.AttrFork
	}
	return ip.DataFork
}

// LocalData returns the inline bytes of a local-format data fork (short
// directories and symlinks), di_size long.
func (ip *Inode) LocalData() ([]byte, error) {
	if ip.Format != ondisk.FmtLocal {
		return nil, fmt.Errorf("inode %d: data fork is in %s format, not local", ip.Ino, ondisk.FormatName(ip.Format))
	}
	if ip.Size > uint64(len(ip.DataFork)) {
		return nil, ondisk.Corrupt("data fork", fmt.Sprintf("inode %d", ip.Ino), "size", "%d bytes of local data in a %d-byte fork", ip.Size, len(ip.DataFork))
	}
	return ip.DataFork[:ip.Size], nil
}
