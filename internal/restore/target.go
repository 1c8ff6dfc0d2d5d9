package restore

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// target is the destination directory and the policies for writing to it.
type target struct {
	root       int  // descriptor of the destination directory
	asRoot     bool // running with euid 0
	chown      bool // restore owners
	uid, gid   int  // forced owner (-1: from the dump)
	euid, egid int  // who new files belong to
	umask      int  // the process umask (-1: unknown)
}

// readUmask returns the process umask without changing it (-1 if unknown).
func readUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// createMode is the mode to create a regular file with: its permissions
// when the directory is fresh (made by this restore, so without a default
// ACL or setgid bit) and the umask lets them through, so that fchmod can
// be skipped; else owner-only until fchmod.
func (t *target) createMode(m *stream.FileMeta, fresh bool) (mode uint32, final bool) {
	perm := permBits(m.Mode)
	if fresh && t.umask >= 0 && perm&^0o777 == 0 && perm&uint32(t.umask) == 0 {
		return perm, true
	}
	return 0o600, false
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// procPath names a descriptor (and optionally a name in it, for a
// directory descriptor) through /proc/self/fd, for the calls that have no
// descriptor-relative form.
func procPath(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

// locator says where a directory inode is: its parent directory and name.
type locator func(ino uint64) (parent uint64, name string, ok bool)

// dirCache keeps descriptors of recently used directories. A descriptor
// follows its directory when it is renamed, so entries stay valid while
// a cumulative restore moves directories around. Directories are opened
// one component at a time with O_NOFOLLOW, so no symlink is ever followed.
type dirCache struct {
	t       *target
	rootIno uint64
	loc     locator
	max     int
	m       map[uint64]*list.Element
	lru     list.List
	pinned  map[uint64]int // descriptors owned by the caller
}

type cent struct {
	ino uint64
	fd  int
}

func newDirCache(t *target, rootIno uint64, loc locator) *dirCache {
	return &dirCache{t: t, rootIno: rootIno, loc: loc, max: 64, m: map[uint64]*list.Element{}}
}

// open returns a descriptor of directory ino, owned by the cache: valid
// until the next call to open.
func (c *dirCache) open(ino uint64) (int, error) { return c.openDepth(ino, 0) }

func (c *dirCache) openDepth(ino uint64, depth int) (int, error) {
	if ino == c.rootIno {
		return c.t.root, nil
	}
	if fd, ok := c.pinned[ino]; ok {
		return fd, nil
	}
	if e, ok := c.m[ino]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cent).fd, nil
	}
	if depth > 1<<16 {
		return -1, errors.New("directory nesting too deep (loop?)")
	}
	parent, name, ok := c.loc(ino)
	if !ok {
		return -1, fmt.Errorf("directory inode %d has no place in the tree", ino)
	}
	pfd, err := c.openDepth(parent, depth+1)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat(pfd, name, dirFlags, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return -1, fmt.Errorf("open directory %q: not a directory (symlinks are not followed)", name)
		}
		return -1, fmt.Errorf("open directory %q: %w", name, err)
	}
	c.m[ino] = c.lru.PushFront(&cent{ino, fd})
	for c.lru.Len() > c.max {
		e := c.lru.Back()
		ce := e.Value.(*cent)
		unix.Close(ce.fd)
		delete(c.m, ce.ino)
		c.lru.Remove(e)
	}
	return fd, nil
}

// pin makes open return fd (owned by the caller) for ino.
func (c *dirCache) pin(ino uint64, fd int) {
	if c.pinned == nil {
		c.pinned = map[uint64]int{}
	}
	c.forget(ino)
	c.pinned[ino] = fd
}

func (c *dirCache) unpin(ino uint64) { delete(c.pinned, ino) }

// forget drops a directory from the cache.
func (c *dirCache) forget(ino uint64) {
	if e, ok := c.m[ino]; ok {
		unix.Close(e.Value.(*cent).fd)
		delete(c.m, ino)
		c.lru.Remove(e)
	}
}

func (c *dirCache) close() {
	for _, e := range c.m {
		unix.Close(e.Value.(*cent).fd)
	}
	c.m = map[uint64]*list.Element{}
	c.lru.Init()
}

// ---- creating things ----

// clearName removes a non-directory at name so that something new can be
// created there (restore replaces what it restores, like xfsrestore).
func clearName(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	switch err {
	case nil, unix.ENOENT:
		return nil
	case unix.EISDIR, unix.EPERM:
		var st unix.Stat_t
		if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return errors.New("a directory is in the way")
		}
	}
	return fmt.Errorf("remove existing entry: %w", err)
}

// mkdirAt makes sure name in pfd is a directory, made with mode (0700
// while restoring, or its final mode); created tells whether this call
// made it.
func mkdirAt(pfd int, name string, mode uint32) (created bool, err error) {
	err = unix.Mkdirat(pfd, name, mode)
	if err != unix.EEXIST {
		if err != nil {
			return false, fmt.Errorf("mkdir: %w", err)
		}
		return true, nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, fmt.Errorf("mkdir: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return false, nil
	}
	if err := clearName(pfd, name); err != nil {
		return false, err
	}
	if err := unix.Mkdirat(pfd, name, mode); err != nil {
		return false, fmt.Errorf("mkdir: %w", err)
	}
	return true, nil
}

// dirMode is the mode to make a directory with: its final permissions
// when running as root (who needs no write permission to fill it), the
// directory will be fresh, and mkdir can give them (no setuid or setgid
// bit, nothing the umask takes away), so that neither fchmod nor (when
// the owner is the caller's) fchown is needed; else 0700 until the end.
func (t *target) dirMode(m *stream.FileMeta, fresh bool) (mode uint32, final bool) {
	if m == nil || !fresh || !t.asRoot {
		return 0o700, false
	}
	perm := permBits(m.Mode)
	if t.umask < 0 || perm&^0o1777 != 0 || perm&uint32(t.umask) != 0 {
		return 0o700, false
	}
	return perm, true
}

// retryExist runs create, and once more after clearing the name if it
// already exists.
func retryExist(pfd int, name string, create func() error) error {
	err := create()
	if err == unix.EEXIST {
		if err := clearName(pfd, name); err != nil {
			return err
		}
		err = create()
	}
	return err
}

// createFile creates an empty regular file, never through a symlink and
// never reusing an existing inode (which could be a hard link to a file
// outside the destination).
func createFile(pfd int, name string, mode uint32) (int, error) {
	var fd int
	err := retryExist(pfd, name, func() (err error) {
		fd, err = unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("create: %w", err)
	}
	return fd, nil
}

func symlinkAt(pfd int, name, target string) error {
	if err := retryExist(pfd, name, func() error { return unix.Symlinkat(target, pfd, name) }); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return nil
}

func mknodAt(pfd int, name string, mode uint32, dev uint64) error {
	if err := retryExist(pfd, name, func() error { return unix.Mknodat(pfd, name, mode, int(dev)) }); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return nil
}

// linkAt gives the inode at (spfd, sname) the name (dpfd, dname). linkat
// without AT_SYMLINK_FOLLOW links a symlink itself, never its target.
func linkAt(spfd int, sname string, dpfd int, dname string) error {
	err := unix.Linkat(spfd, sname, dpfd, dname, 0)
	if err == unix.EEXIST {
		var a, b unix.Stat_t
		if unix.Fstatat(spfd, sname, &a, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			unix.Fstatat(dpfd, dname, &b, unix.AT_SYMLINK_NOFOLLOW) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
			return nil
		}
		if err := clearName(dpfd, dname); err != nil {
			return err
		}
		err = unix.Linkat(spfd, sname, dpfd, dname, 0)
	}
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

// ---- metadata ----

// xattrName returns the Linux name of a stream attribute.
func xattrName(x *stream.Xattr) (string, error) {
	switch x.Namespace {
	case stream.XattrUser:
		return "user." + x.Name, nil
	case stream.XattrTrusted:
		return "trusted." + x.Name, nil
	case stream.XattrSecurity:
		return "security." + x.Name, nil
	case stream.XattrRoot:
		// The stream carries POSIX ACLs already in the Linux format as
		// posix_acl_access/posix_acl_default.
		return "system." + x.Name, nil
	}
	return "", fmt.Errorf("attribute %q: unknown namespace %d", x.Name, uint8(x.Namespace))
}

func xattrErr(name string, size int, err error) error {
	switch err {
	case unix.EOPNOTSUPP:
		ns := name
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				ns = name[:i]
				break
			}
		}
		return fmt.Errorf("attribute %s: the destination filesystem does not support %s.* attributes here", name, ns)
	case unix.EPERM, unix.EACCES:
		return fmt.Errorf("attribute %s: not permitted (%v)", name, err)
	case unix.ENOSPC, unix.E2BIG, unix.ERANGE:
		return fmt.Errorf("attribute %s (%d bytes): the destination filesystem has no room for it (%v)", name, size, err)
	}
	return fmt.Errorf("attribute %s: %w", name, err)
}

// setXattrs applies xattrs with set (fsetxattr on a descriptor or lsetxattr
// on a /proc path) and returns one error per attribute that failed.
func setXattrs(xs []stream.Xattr, set func(name string, value []byte) error) []error {
	var errs []error
	for i := range xs {
		name, err := xattrName(&xs[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := set(name, xs[i].Value); err != nil {
			errs = append(errs, xattrErr(name, len(xs[i].Value), err))
		}
	}
	return errs
}

func (t *target) owner(m *stream.FileMeta) (uid, gid int, do bool) {
	if !t.chown && t.uid < 0 && t.gid < 0 {
		return 0, 0, false
	}
	uid, gid = int(m.UID), int(m.GID)
	if !t.chown {
		uid, gid = -1, -1
	}
	if t.uid >= 0 {
		uid = t.uid
	}
	if t.gid >= 0 {
		gid = t.gid
	}
	return uid, gid, true
}

// ownerGiven reports whether what the caller creates already has the
// owner and group m should get.
func (t *target) ownerGiven(m *stream.FileMeta) bool {
	uid, gid, ok := t.owner(m)
	return !ok || (uid == -1 || uid == t.euid) && (gid == -1 || gid == t.egid)
}

func timespecs(m *stream.FileMeta) [2]unix.Timespec {
	return [2]unix.Timespec{
		{Sec: m.Atime.Sec, Nsec: int64(m.Atime.Nsec)},
		{Sec: m.Mtime.Sec, Nsec: int64(m.Mtime.Nsec)},
	}
}

// permBits are the mode bits chmod sets.
func permBits(mode uint32) uint32 { return mode & 0o7777 }

// setIDBits returns the mode bits for the open file fd: m's, less the
// set-user-ID (set-group-ID) bit of a regular file that did not get the
// dumped owner (group) — restored by a user, with --no-owner, or chown
// failed — since it would run as whoever restored it, not as the dump
// says (cp -p does the same). An owner or group forced with --owner or
// --group is the caller's choice and keeps the bits.
func (t *target) setIDBits(fd int, m *stream.FileMeta) uint32 {
	mode := permBits(m.Mode)
	if m.Type() != stream.TypeRegular || mode&(unix.S_ISUID|unix.S_ISGID) == 0 {
		return mode
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return mode &^ (unix.S_ISUID | unix.S_ISGID)
	}
	if t.uid < 0 && st.Uid != m.UID {
		mode &^= unix.S_ISUID
	}
	if t.gid < 0 && st.Gid != m.GID {
		mode &^= unix.S_ISGID
	}
	return mode
}

// hasACL reports whether xs holds the named POSIX ACL.
func hasACL(xs []stream.Xattr, name string) bool {
	for i := range xs {
		if xs[i].Namespace == stream.XattrRoot && xs[i].Name == name {
			return true
		}
	}
	return false
}

// inheritedACL removes an access ACL a new file inherited from a default
// ACL of its directory when the dumped file has none.
func inheritedACL(xs []stream.Xattr, remove func(string) error) error {
	if hasACL(xs, "posix_acl_access") {
		return nil
	}
	if err := remove("system.posix_acl_access"); err != nil && err != unix.ENODATA && err != unix.EOPNOTSUPP {
		return fmt.Errorf("inherited ACL not removed: %w", err)
	}
	return nil
}

// setFdMeta sets owner, xattrs, mode and times of an open regular file or
// directory. Owner goes first (chown clears setuid bits and file
// capabilities), times last. With modeSet, the file was created with its
// final mode in a fresh directory: mode and owner are only changed where
// they differ.
func (t *target) setFdMeta(fd int, m *stream.FileMeta, xs []stream.Xattr, modeSet bool) []error {
	var errs []error
	if uid, gid, ok := t.owner(m); ok && !(modeSet && t.ownerGiven(m)) {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			errs = append(errs, fmt.Errorf("owner %d:%d: %w", uid, gid, err))
		}
	}
	if len(xs) > 0 {
		errs = append(errs, setXattrs(xs, func(n string, v []byte) error { return unix.Fsetxattr(fd, n, v, 0) })...)
	}
	if modeSet {
		for i := range xs {
			if xs[i].Namespace == stream.XattrRoot {
				modeSet = false // setting an ACL changes the mode
			}
		}
	}
	if !modeSet {
		mode := t.setIDBits(fd, m)
		if err := unix.Fchmod(fd, mode); err != nil {
			errs = append(errs, fmt.Errorf("mode %o: %w", mode, err))
		}
	}
	if err := futimens(fd, timespecs(m)); err != nil {
		errs = append(errs, fmt.Errorf("times: %w", err))
	}
	return errs
}

// futimens sets the times of the open file fd: utimensat with a NULL
// path, which is how the C library's futimens reaches the descriptor
// itself (no path lookup, unlike an empty path with AT_EMPTY_PATH).
func futimens(fd int, ts [2]unix.Timespec) error {
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// setNameMeta sets owner, xattrs, mode and times of a symlink, device,
// fifo or socket by name in directory pfd, without following symlinks.
func (t *target) setNameMeta(pfd int, name string, m *stream.FileMeta) []error {
	var errs []error
	if uid, gid, ok := t.owner(m); ok {
		if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, fmt.Errorf("owner %d:%d: %w", uid, gid, err))
		}
	}
	return errs
}

// setSpecialMeta finishes a symlink, device node, fifo or socket; fresh
// tells that its directory cannot have a default ACL.
func (t *target) setSpecialMeta(pfd int, name string, m *stream.FileMeta, xs []stream.Xattr, fresh bool) []error {
	errs := t.setNameMeta(pfd, name, m)
	if !fresh && m.Type() != stream.TypeSymlink {
		p := procPath(pfd, name)
		if err := inheritedACL(xs, func(n string) error { return unix.Lremovexattr(p, n) }); err != nil {
			errs = append(errs, err)
		}
	}
	if len(xs) > 0 {
		// lsetxattr does not follow the last component; the directory is
		// reached through its descriptor's magic link.
		p := procPath(pfd, name)
		errs = append(errs, setXattrs(xs, func(n string, v []byte) error { return unix.Lsetxattr(p, n, v, 0) })...)
	}
	if m.Type() != stream.TypeSymlink {
		// chmod through an O_PATH descriptor of the node itself: opening
		// a device or fifo for real could block or have side effects.
		fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = errors.New("replaced by a symlink")
			}
			if err == nil {
				err = unix.Fchmodat(unix.AT_FDCWD, procPath(fd, ""), permBits(m.Mode), 0)
			}
			unix.Close(fd)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mode %o: %w", permBits(m.Mode), err))
		}
	}
	ts := timespecs(m)
	if err := unix.UtimesNanoAt(pfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		errs = append(errs, fmt.Errorf("times: %w", err))
	}
	return errs
}
