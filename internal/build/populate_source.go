package build

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// popNode is one entry of the tree to copy into the new filesystem.
type popNode struct {
	name     string
	src      string // file to read data from ("" for none)
	mode     uint32 // Linux st_mode: type and permission bits
	uid, gid uint32
	atime    ondisk.Timestamp
	mtime    ondisk.Timestamp
	ctime    ondisk.Timestamp
	rdev     uint32 // XFS device number
	target   string // symlink target
	xattrs   []pack.Xattr
	kids     []*popNode // directories, sorted by name
	inode    *popNode   // hard links: the entry that owns the inode (nil: itself)
	nlink    uint32     // links to this inode found in the tree
	subdirs  uint32     // directories among kids
	size     int64      // size at scan time (data is measured again when copied)
	blocks   int64      // allocated bytes at scan time, for sizing
	reserve  int64      // protofile 'r': bytes of unwritten preallocation
	resSpec  string     // its size as written (b/s suffixes need the geometry)
	ino      uint64     // XFS inode number, once assigned
	agno     uint32     // AG the inode and its data go to

	// Set while copying and packing.
	ext        []ondisk.Extent // file data mapping
	flags      uint16          // di_flags, for inheritance
	flags2     uint64          // di_flags2 inheritable bits
	projid     uint32
	extsize    uint32
	cowextsize uint32
}

func (n *popNode) isDir() bool { return n.mode&unix.S_IFMT == unix.S_IFDIR }
func (n *popNode) isReg() bool { return n.mode&unix.S_IFMT == unix.S_IFREG }

// owner returns the node owning the inode of a (possibly hard-linked) entry.
func (n *popNode) owner() *popNode {
	if n.inode != nil {
		return n.inode
	}
	return n
}

// popTree is a scanned source tree.
type popTree struct {
	root     *popNode
	inodes   int   // distinct inodes, root included
	dirs     int   // directories
	entries  int   // directory entries
	dataSize int64 // allocated data bytes, for sizing
	meta     int64 // bytes of directories, symlinks and attributes, for sizing
	warnings []string
	now      time.Time // creation time of the new inodes
}

// popScanDir reads the directory tree rooted at dir: names, metadata,
// symlink targets and extended attributes (file data is read later,
// while it is copied). Hard links are found by device and inode number.
// The reading runs on every core (populate_scan.go).
func popScanDir(dir string, skip *[2]uint64) (*popTree, error) {
	return popScanSkip(dir, popScanWorkers(), skip)
}

// popReadDirNames lists a directory's names sorted bytewise, and
// returns the directory still open (the caller closes the descriptor)
// so that its entries can be looked up by name alone.
func popReadDirNames(dir string, b *popScanBufs) ([]string, int, error) {
	// O_NOATIME where permitted: reading the source must not change it.
	fd, err := popOpen(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC)
	if err != nil {
		return nil, -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	if b.dirents == nil {
		b.dirents = make([]byte, 64<<10) // most directories in one call
		b.name = make([]byte, 0, 256)
	}
	var names []string
	for {
		n, err := unix.Getdents(fd, b.dirents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return nil, -1, fmt.Errorf("%s: %w", dir, &os.PathError{Op: "readdirent", Path: dir, Err: err})
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(b.dirents[:n], -1, names) // without "." and ".."
	}
	slices.Sort(names)
	return names, fd, nil
}

// popDirBytes estimates a directory's size on disk.
func popDirBytes(n *popNode) int64 {
	var b int64
	for _, k := range n.kids {
		b += int64(ondisk.DirDataEntSize(len(k.name), true)) + 8
	}
	return b
}

func popTimestamp(ts unix.Timespec) ondisk.Timestamp {
	return ondisk.Timestamp{Sec: ts.Sec, Nsec: uint32(ts.Nsec)}
}

// popReadEntry reads one entry into n: its stat fields, symlink target,
// device number and extended attributes, with warnings for attributes
// XFS cannot hold. Hard links and counts are resolved by the caller.
// The entry is path, and name in the directory open as dirfd.
func popReadEntry(n *popNode, dirfd int, path, name string, st *unix.Stat_t, b *popScanBufs) ([]string, error) {
	*n = popNode{name: name, src: path, mode: st.Mode, uid: st.Uid, gid: st.Gid,
		atime: popTimestamp(st.Atim), mtime: popTimestamp(st.Mtim), ctime: popTimestamp(st.Ctim),
		size: st.Size, blocks: st.Blocks * 512, nlink: 1}
	typ := st.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFDIR, unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
	case unix.S_IFLNK:
		target, err := popReadlink(dirfd, name, path)
		if err != nil {
			return nil, err
		}
		n.target = target
	case unix.S_IFCHR, unix.S_IFBLK:
		dev, ok := ondisk.MakeDev(unix.Major(st.Rdev), unix.Minor(st.Rdev))
		if !ok {
			return nil, fmt.Errorf("%s: device %d:%d cannot be stored by XFS", path, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		n.rdev = dev
	default:
		return nil, fmt.Errorf("%s: unsupported file type 0%o", path, typ)
	}
	if name == "" {
		dirfd, name = unix.AT_FDCWD, path
	}
	xs, warns, err := popReadXattrs(dirfd, name, path, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n.xattrs = xs
	return warns, nil
}

// popReadXattrs reads every extended attribute of path (name in the
// directory open as dirfd) without following symlinks, in name order,
// converted to XFS's form. Attributes XFS cannot hold are reported as
// warnings and skipped.
func popReadXattrs(dirfd int, entry, path string, b *popScanBufs) ([]pack.Xattr, []string, error) {
	var names []byte
	// Asking for the size first costs nothing for the many entries
	// without attributes (no buffer to allocate and clear).
	size, err := popListXattrs(dirfd, entry, path, nil, b)
	for err == nil && size > 0 {
		var buf []byte
		if b != nil && size <= 64<<10 {
			if len(b.xattrs) < size {
				b.xattrs = make([]byte, max(size, 4096))
			}
			buf = b.xattrs[:size]
		} else {
			buf = make([]byte, size)
		}
		var n int
		n, err = popListXattrs(dirfd, entry, path, buf, b)
		if errors.Is(err, unix.ERANGE) && size < 1<<24 {
			size, err = size*2, nil // grown meanwhile
			continue
		}
		names = buf[:n]
		break
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing xattrs: %w", err)
	}
	if len(names) == 0 {
		return nil, nil, nil
	}
	var list []string
	for _, s := range bytes.Split(names, []byte{0}) {
		if len(s) > 0 {
			list = append(list, string(s))
		}
	}
	sort.Strings(list)
	have := map[string]bool{}
	for _, s := range list {
		have[s] = true
	}
	var out []pack.Xattr
	var warns []string
	for _, name := range list {
		// An XFS source shows ACLs both ways (as root); keep one.
		if name == "trusted."+ondisk.SGIACLFile && have["system.posix_acl_access"] ||
			name == "trusted."+ondisk.SGIACLDefault && have["system.posix_acl_default"] {
			continue
		}
		v, err := popGetXattr(popEntryPath(dirfd, entry, path), name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		x, err := pack.XattrFromLinux(name, v)
		if err != nil {
			warns = append(warns, err.Error()+"; not copied")
			continue
		}
		out = append(out, x)
	}
	return out, warns, nil
}

// popListXattrs is llistxattr(path), asked by name in the open
// directory where the kernel can (listxattrat, Linux 6.13): the path is
// then not walked again for every entry.
func popListXattrs(dirfd int, name, path string, buf []byte, b *popScanBufs) (int, error) {
	var cname []byte
	if b != nil {
		cname = b.name
	}
	n, err := popListxattrat(dirfd, name, buf, cname)
	if err == nil || errors.Is(err, unix.ERANGE) || errors.Is(err, unix.ENOTSUP) {
		return n, err
	}
	// Older kernels (ENOSYS), seccomp filters, or a real error, which
	// llistxattr reports again.
	return unix.Llistxattr(popEntryPath(dirfd, name, path), buf)
}

// popListxattrat calls listxattrat(2) without following a final symlink;
// the name is made a C string in cname's array when it has room.
func popListxattrat(dirfd int, name string, buf, cname []byte) (int, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return 0, unix.EINVAL
	}
	cname = append(append(cname[:0], name...), 0)
	p := &cname[0]
	var bp unsafe.Pointer
	if len(buf) > 0 {
		bp = unsafe.Pointer(&buf[0])
	}
	r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(bp), uintptr(len(buf)), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func popGetXattr(path, name string) ([]byte, error) {
	for size := 1024; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) && size <= ondisk.AttrMaxValueSize {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// popParseProto reads an mkfs.xfs prototype file: a boot image name and
// two numbers (ignored), then the root directory's "mode uid gid" and,
// for each directory, entries "name mode uid gid [args]" up to "$". mode
// is a type letter (- regular, r reserved space, b, c, d, l, p), a
// setuid (u/-) and a setgid (g/-) letter and three octal digits. ':'
// starts a comment. Every inode is stamped with now.
func popParseProto(path string, now time.Time) (*popTree, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		return nil, fmt.Errorf("%s: proto file premature EOF (no final newline)", path)
	}
	p := &protoParser{path: path, toks: popProtoTokens(string(raw)), now: ondisk.TimestampOf(now), t: &popTree{}}
	for i := 0; i < 3; i++ {
		if _, err := p.next(); err != nil {
			return nil, err
		}
	}
	root, err := p.entry("")
	if err != nil {
		return nil, err
	}
	if !root.isDir() {
		return nil, fmt.Errorf("%s: the root entry must be a directory", path)
	}
	p.t.root = root
	return p.t, nil
}

// popProtoTokens splits a prototype file at blanks, dropping ':' comments.
func popProtoTokens(s string) []string {
	var out []string
	for _, line := range strings.SplitAfter(s, "\n") {
		for {
			line = strings.TrimLeft(line, " \t\n")
			if line == "" {
				break
			}
			if line[0] == ':' {
				break // comment to the end of the line
			}
			end := strings.IndexAny(line, " \t\n")
			if end < 0 {
				end = len(line)
			}
			out = append(out, line[:end])
			line = line[end:]
		}
	}
	return out
}

type protoParser struct {
	path string
	toks []string
	pos  int
	now  ondisk.Timestamp
	t    *popTree
}

func (p *protoParser) next() (string, error) {
	if p.pos >= len(p.toks) {
		return "", fmt.Errorf("%s: premature EOF in prototype file", p.path)
	}
	p.pos++
	return p.toks[p.pos-1], nil
}

func (p *protoParser) num(what string) (int64, error) {
	s, err := p.next()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: bad %s %q", p.path, what, s)
	}
	return v, nil
}

func (p *protoParser) entry(name string) (*popNode, error) {
	ms, err := p.next()
	if err != nil {
		return nil, err
	}
	bad := fmt.Errorf("%s: bad format string %s", p.path, ms)
	if len(ms) != 6 {
		return nil, bad
	}
	var mode uint32
	switch ms[1] {
	case '-':
	case 'u':
		mode |= unix.S_ISUID
	default:
		return nil, bad
	}
	switch ms[2] {
	case '-':
	case 'g':
		mode |= unix.S_ISGID
	default:
		return nil, bad
	}
	perm, err := strconv.ParseUint(ms[3:], 8, 32)
	if err != nil {
		return nil, bad
	}
	mode |= uint32(perm)
	uid, err := p.num("uid")
	if err != nil {
		return nil, err
	}
	gid, err := p.num("gid")
	if err != nil {
		return nil, err
	}
	n := &popNode{name: name, uid: uint32(uid), gid: uint32(gid), atime: p.now, mtime: p.now, ctime: p.now, nlink: 1}
	p.t.inodes++
	switch ms[0] {
	case '-':
		n.mode = mode | unix.S_IFREG
		if n.src, err = p.next(); err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Stat(n.src, &st); err != nil {
			return nil, fmt.Errorf("%s: cannot open %s: %w", p.path, n.src, err)
		}
		n.size, n.blocks = st.Size, st.Blocks*512
		p.t.dataSize += n.blocks
	case 'r':
		n.mode = mode | unix.S_IFREG
		spec, err := p.next()
		if err != nil {
			return nil, err
		}
		v, ok := cvtnum(4096, 512, spec)
		if !ok || v < 0 {
			return nil, fmt.Errorf("%s: bad value %s for proto file %s", p.path, spec, name)
		}
		n.reserve, n.size, n.resSpec = v, v, spec
		p.t.dataSize += v
	case 'b', 'c':
		n.mode = mode | unix.S_IFBLK
		if ms[0] == 'c' {
			n.mode = mode | unix.S_IFCHR
		}
		maj, err := p.num("major")
		if err != nil {
			return nil, err
		}
		minor, err := p.num("minor")
		if err != nil {
			return nil, err
		}
		dev, ok := ondisk.MakeDev(uint32(maj), uint32(minor))
		if maj < 0 || minor < 0 || !ok {
			return nil, fmt.Errorf("%s: device %d:%d of %s cannot be stored", p.path, maj, minor, name)
		}
		n.rdev = dev
	case 'p':
		n.mode = mode | unix.S_IFIFO
	case 'l':
		n.mode = mode | unix.S_IFLNK
		if n.target, err = p.next(); err != nil {
			return nil, err
		}
		p.t.meta += int64(len(n.target))
	case 'd':
		n.mode = mode | unix.S_IFDIR
		p.t.dirs++
		seen := map[string]bool{}
		for {
			cname, err := p.next()
			if err != nil {
				return nil, err
			}
			if cname == "$" {
				break
			}
			if seen[cname] {
				return nil, fmt.Errorf("%s: duplicate entry %q", p.path, cname)
			}
			seen[cname] = true
			c, err := p.entry(cname)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, c)
			p.t.entries++
			if c.isDir() {
				n.subdirs++
			}
		}
		sort.Slice(n.kids, func(i, j int) bool { return n.kids[i].name < n.kids[j].name })
		p.t.meta += popDirBytes(n)
	default:
		return nil, bad
	}
	return n, nil
}
