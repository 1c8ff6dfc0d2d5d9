package treecmp

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Options choose what FromDir records.
type Options struct {
	NoContent bool // skip SHA256 of regular files
	NoData    bool // skip data ranges (SEEK_DATA/SEEK_HOLE)
	NoXattrs  bool // skip extended attributes
	// Skip leaves out the entry at path (relative, "/"-separated) and, for
	// a directory, everything below it.
	Skip func(path string, isDir bool) bool
}

// FromDir snapshots the tree under root without following symlinks.
// Files and directories are opened with O_NOATIME where permitted, and file
// contents are read only where SEEK_DATA reports data (holes hash as
// zeros), so that a snapshot changes neither atimes nor what a later
// SEEK_DATA reports over unwritten extents. One exception: Linux updates a
// symlink's atime when reading it, so compare atimes only between
// snapshots of read-only (or noatime) mounts.
func FromDir(root string, opts Options) (*Tree, error) {
	var entries []Entry
	// Hard links share content: read each inode once.
	type content struct {
		sha  string
		data []Range
	}
	seen := map[uint64]content{}
	zero := make([]byte, 1<<16)
	buf := make([]byte, 1<<20)
	var walk func(rel string) error
	walk = func(rel string) error {
		full := filepath.Join(root, filepath.FromSlash(rel))
		e, err := lstatEntry(full, rel)
		if err != nil {
			return err
		}
		if !opts.NoXattrs {
			if e.Xattrs, err = readXattrs(full); err != nil {
				return fmt.Errorf("%s: xattrs: %w", full, err)
			}
		}
		switch e.Type {
		case Symlink:
			if e.Target, err = os.Readlink(full); err != nil {
				return err
			}
		case Reg:
			if c, ok := seen[e.Ino]; ok && e.Nlink > 1 {
				e.SHA256, e.Data = c.sha, c.data
				break
			}
			if err := readFile(full, &e, opts, buf, zero); err != nil {
				return err
			}
			if e.Nlink > 1 {
				seen[e.Ino] = content{e.SHA256, e.Data}
			}
		}
		entries = append(entries, e)
		if e.Type != Dir {
			return nil
		}
		names, err := readNames(full)
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, name := range names {
			child := name
			if rel != "." {
				child = rel + "/" + name
			}
			if opts.Skip != nil {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(full, name), &st); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(full, name), err)
				}
				if opts.Skip(child, st.Mode&unix.S_IFMT == unix.S_IFDIR) {
					continue
				}
			}
			if err := walk(child); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	return NewTree(entries), nil
}

// openNoatime opens path read-only without updating its atime where the
// caller may (owner or CAP_FOWNER).
func openNoatime(path string, flags int) (int, error) {
	flags |= unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

func readNames(dir string) ([]string, error) {
	fd, err := openNoatime(dir, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), dir)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return names, nil
}

func lstatEntry(full, rel string) (Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return Entry{}, &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	typ, ok := TypeFromMode(st.Mode)
	if !ok {
		return Entry{}, fmt.Errorf("%s: unknown file type (mode 0%o)", full, st.Mode)
	}
	e := Entry{
		Path:  rel,
		Type:  typ,
		Mode:  PermFromMode(st.Mode),
		UID:   st.Uid,
		GID:   st.Gid,
		Nlink: uint32(st.Nlink),
		Size:  st.Size,
		Mtime: NewTimestamp(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
		Atime: NewTimestamp(int64(st.Atim.Sec), int64(st.Atim.Nsec)),
		Ino:   st.Ino,
	}
	if typ == Chr || typ == Blk {
		e.Rdev = RdevFromLinux(uint64(st.Rdev))
	}
	if typ == Dir {
		e.Size = 0
	}
	return e, nil
}

// readXattrs lists and reads every attribute of path (not following
// symlinks). A filesystem without xattr support yields none.
func readXattrs(path string) (map[string][]byte, error) {
	var names []byte
	for {
		n, err := unix.Llistxattr(path, nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		names = make([]byte, n)
		n, err = unix.Llistxattr(path, names)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		names = names[:n]
		break
	}
	m := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(names), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		m[name] = v
	}
	return m, nil
}

func getXattr(path, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, n)
		if n == 0 {
			return v, nil
		}
		n, err = unix.Lgetxattr(path, name, v)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return v[:n], nil
	}
}

// readFile fills e.Data and e.SHA256 for a regular file.
func readFile(full string, e *Entry, opts Options, buf, zero []byte) error {
	if opts.NoContent && opts.NoData {
		return nil
	}
	fd, err := openNoatime(full, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: full, Err: err}
	}
	if st.Ino != e.Ino || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: changed while taking the snapshot", full)
	}
	size := st.Size
	ranges, err := dataRanges(fd, size)
	if err != nil {
		return &os.PathError{Op: "seek", Path: full, Err: err}
	}
	if !opts.NoData {
		e.Data = ranges
	}
	if opts.NoContent {
		return nil
	}
	h := sha256.New()
	var pos int64
	for _, r := range ranges {
		hashZeros(h, r.Off-pos, zero)
		for off := r.Off; off < r.Off+r.Len; {
			n := min(int64(len(buf)), r.Off+r.Len-off)
			got, err := unix.Pread(fd, buf[:n], off)
			if err != nil {
				return &os.PathError{Op: "read", Path: full, Err: err}
			}
			if got == 0 {
				return fmt.Errorf("%s: file shrank while reading (at %d of %d)", full, off, size)
			}
			h.Write(buf[:got])
			off += int64(got)
		}
		pos = r.Off + r.Len
	}
	hashZeros(h, size-pos, zero)
	e.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

func hashZeros(h hash.Hash, n int64, zero []byte) {
	for n > 0 {
		k := min(n, int64(len(zero)))
		h.Write(zero[:k])
		n -= k
	}
}

// dataRanges finds the data of fd with SEEK_DATA/SEEK_HOLE; where those are
// unsupported the whole file counts as data.
func dataRanges(fd int, size int64) ([]Range, error) {
	out := []Range{}
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if errors.Is(err, unix.EINVAL) && off == 0 {
			return NormalizeRanges([]Range{{0, size}}, size), nil
		}
		if err != nil {
			return nil, err
		}
		hole, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		if hole <= d {
			return nil, fmt.Errorf("SEEK_HOLE from %d returned %d", d, hole)
		}
		out = append(out, Range{Off: d, Len: hole - d})
		off = hole
	}
	return NormalizeRanges(out, size), nil
}
