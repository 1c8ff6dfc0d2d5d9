package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xfsIocDioInfo is XFS_IOC_DIOINFO, _IOR('X', 30, struct dioattr): the
// direct I/O constraints of a file on XFS (not in x/sys/unix).
const xfsIocDioInfo = 0x800c581e

// ErrNotFileOrBlock is wrapped by Probe when the path names something
// other than a regular file or a block device.
var ErrNotFileOrBlock = errors.New("not a regular file or block device")

// TargetGeometry is what the kernel says about a file or block device that
// is to hold an image: its size, sector sizes and I/O hints (what libblkid
// reports to mkfs.xfs).
type TargetGeometry struct {
	Exists         bool
	IsBlock        bool  // a block device; otherwise a regular file
	Size           int64 // bytes
	LogicalSector  int   // logical sector, or the host filesystem's direct I/O size for files; 0 = unknown
	PhysicalSector int   // 0 = unknown
	MinIO, OptIO   int   // block device I/O hints in bytes
	AlignOffset    int   // block device alignment offset in bytes
}

// Probe stats path and asks the kernel for its geometry. A path that does
// not exist is not an error: Exists is false. Stat and open failures are
// returned as the *fs.PathError from the os package. Hints the kernel does
// not give stay zero.
func Probe(path string) (TargetGeometry, error) {
	var t TargetGeometry
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, err
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
		// d_mem, d_miniosz, d_maxiosz; only XFS answers.
		var dio [3]uint32
		if ioctlPtr(f.Fd(), xfsIocDioInfo, unsafe.Pointer(&dio)) == nil {
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
		if t.Size, err = blockSize64(fd); err != nil {
			return t, fmt.Errorf("%s: can't determine device size: %w", path, err)
		}
		t.LogicalSector, _ = ioctlInt32(fd, unix.BLKSSZGET)
		t.PhysicalSector, _ = ioctlInt32(fd, unix.BLKPBSZGET)
		t.MinIO, _ = ioctlInt32(fd, unix.BLKIOMIN)
		t.OptIO, _ = ioctlInt32(fd, unix.BLKIOOPT)
		t.AlignOffset, _ = ioctlInt32(fd, unix.BLKALIGNOFF)
		return t, nil
	}
	return t, fmt.Errorf("%s: %w", path, ErrNotFileOrBlock)
}

func ioctlPtr(fd uintptr, req uintptr, p unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(p)); e != 0 {
		return e
	}
	return nil
}

// ioctlInt32 reads the 32-bit int or unsigned int the block ioctls return.
func ioctlInt32(fd uintptr, req uintptr) (int, error) {
	var v int32
	if err := ioctlPtr(fd, req, unsafe.Pointer(&v)); err != nil {
		return 0, err
	}
	return int(v), nil
}

func blockSize64(fd uintptr) (int64, error) {
	var size uint64
	if err := ioctlPtr(fd, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return 0, fmt.Errorf("BLKGETSIZE64: %w", err)
	}
	return int64(size), nil
}

// IsBlock reports whether d is a block device rather than a regular file.
func (d *File) IsBlock() bool { return d.block }

// Discard tells the storage that bytes [off, off+n) are no longer needed:
// BLKDISCARD on a block device (after which the range may read as anything),
// a punched hole on a file (which reads as zeros). It fails where the
// storage cannot do it; callers that need zeros then use ZeroRange.
func (d *File) Discard(off, n int64) error {
	if n <= 0 {
		return nil
	}
	if d.block {
		if err := blockRange(d.f.Fd(), unix.BLKDISCARD, off, n); err != nil {
			return fmt.Errorf("%s: discard %d bytes at offset %d: BLKDISCARD: %w", d.name, n, off, err)
		}
		return nil
	}
	if err := punch(d.f, off, n); err != nil {
		return fmt.Errorf("%s: discard %d bytes at offset %d: punch hole: %w", d.name, n, off, err)
	}
	return nil
}

// ZeroRange makes bytes [off, off+n) read as zeros without changing the
// size: BLKZEROOUT on a block device, a punched hole on a file, and, where
// those are not supported, plain writes of zeros.
func (d *File) ZeroRange(off, n int64) error {
	if n <= 0 {
		return nil
	}
	if d.block {
		if blockRange(d.f.Fd(), unix.BLKZEROOUT, off, n) == nil {
			return nil
		}
	} else if punch(d.f, off, n) == nil {
		return nil
	}
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		c := min(n, int64(len(buf)))
		if _, err := d.WriteAt(buf[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// blockRange issues BLKDISCARD or BLKZEROOUT, which take {start, length}
// in bytes.
func blockRange(fd uintptr, req uintptr, off, n int64) error {
	if off < 0 {
		return unix.EINVAL
	}
	r := [2]uint64{uint64(off), uint64(n)}
	return ioctlPtr(fd, req, unsafe.Pointer(&r))
}

// punch deallocates a file range; KEEP_SIZE so a punch past the end does
// not grow the file.
func punch(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE|unix.FALLOC_FL_PUNCH_HOLE, off, n)
}

// NewFile is an image file being written under a temporary name in the
// directory of its final path. Commit renames it into place, so the final
// path never holds a half-written image; Abort removes it.
type NewFile struct {
	*File
	final string
	done  bool
}

// CreateReplacement creates a sparse image file of size bytes that will
// replace path on Commit. It takes the permissions of the regular file it
// replaces, or 0644.
func CreateReplacement(path string, size int64) (_ *NewFile, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".mkfs-*")
	if err != nil {
		return nil, err
	}
	tmpName := tmp.Name()
	tmp.Close()
	trackTemp(tmpName)
	defer func() {
		if err != nil {
			settleTemp(tmpName, func() error { return os.Remove(tmpName) })
		}
	}()
	mode := os.FileMode(0o644)
	if st, serr := os.Stat(path); serr == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm()
	}
	if err := os.Chmod(tmpName, mode); err != nil {
		return nil, err
	}
	f, err := Create(tmpName, size)
	if err != nil {
		return nil, err
	}
	return &NewFile{File: f, final: path}, nil
}

// Commit closes the file, renames it over the final path and syncs the
// directory (best effort, as the rename itself is done). On error the
// temporary file is removed.
func (n *NewFile) Commit() error {
	if n.done {
		return fmt.Errorf("%s: already committed or aborted", n.final)
	}
	n.done = true
	tmp := n.name
	// The data must be on disk before the name is: a crash after the
	// rename must never leave a half-written image under the final name.
	if err := n.File.Sync(); err != nil {
		n.File.Close()
		settleTemp(tmp, func() error { return os.Remove(tmp) })
		return fmt.Errorf("%s: sync: %w", tmp, err)
	}
	if err := n.File.Close(); err != nil {
		settleTemp(tmp, func() error { return os.Remove(tmp) })
		return err
	}
	err := settleTemp(tmp, func() error {
		if err := os.Rename(tmp, n.final); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	syncDir(n.final)
	return nil
}

// Abort closes and removes the temporary file; the final path is untouched.
// It does nothing after Commit.
func (n *NewFile) Abort() error {
	if n.done {
		return nil
	}
	n.done = true
	cerr := n.File.Close()
	if err := settleTemp(n.name, func() error { return os.Remove(n.name) }); err != nil {
		return err
	}
	return cerr
}

// Close aborts an uncommitted file.
func (n *NewFile) Close() error { return n.Abort() }
