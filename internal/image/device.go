// Package image is the only code that touches an image file or block device.
// Everything above it asks for bytes at byte offsets through Device.
package image

import (
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
)

// Device is block storage: an image file, a block device, or a layer over one
// (undo journal, fault injection).
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Size() int64
	Close() error
	Name() string
}

// File is a Device over an image file or block device.
type File struct {
	f     *os.File
	size  int64
	name  string
	block bool // a block device: no truncate, discard by ioctl
}

// Open opens path read-only (writable=false) or read-write.
func Open(path string, writable bool) (*File, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	size, block, err := sizeOf(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{f: f, size: size, name: path, block: block}, nil
}

// Create creates (or truncates to size) an image file.
func Create(path string, size int64) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{f: f, size: size, name: path}, nil
}

// sizeOf returns the size of an open file or block device, and whether it
// is a block device (whose size only the kernel knows).
func sizeOf(f *os.File) (int64, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return st.Size(), false, nil
	}
	size, err := blockSize64(f.Fd())
	return size, true, err
}

func (d *File) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.f.ReadAt(p, off)
	if err != nil {
		return n, fmt.Errorf("%s: read %d bytes at offset %d: %w", d.name, len(p), off, err)
	}
	return n, nil
}

func (d *File) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, fmt.Errorf("%s: write %d bytes at offset %d: %w", d.name, len(p), off, err)
	}
	if off+int64(n) > d.size {
		d.size = off + int64(n)
	}
	return n, nil
}

func (d *File) Sync() error  { return d.f.Sync() }
func (d *File) Size() int64  { return d.size }
func (d *File) Close() error { return d.f.Close() }
func (d *File) Name() string { return d.name }

// WillNeed tells the kernel that [off, off+n) will be read soon, so it can
// start reading it in the background (posix_fadvise WILLNEED). Checkers use
// it to keep many reads in flight on scattered metadata.
func (d *File) WillNeed(off, n int64) error {
	return unix.Fadvise(int(d.f.Fd()), off, n, unix.FADV_WILLNEED)
}
