package restore

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// XFS inode attributes: the FS_XFLAG_* flags, the project id and the
// extent size hints, as FS_IOC_FSGETXATTR/FS_IOC_FSSETXATTR (and the
// file_getattr/file_setattr system calls) show them. This file reads and
// sets them and says precisely what a destination did not take; when and
// on what restore applies them is in xflags_run.go.

// FS_XFLAG_* (linux/fs.h).
const (
	xfRealtime     = 0x00000001
	xfPrealloc     = 0x00000002
	xfImmutable    = 0x00000008
	xfAppend       = 0x00000010
	xfSync         = 0x00000020
	xfNoatime      = 0x00000040
	xfNodump       = 0x00000080
	xfRTInherit    = 0x00000100
	xfProjInherit  = 0x00000200
	xfNoSymlinks   = 0x00000400
	xfExtSize      = 0x00000800
	xfExtSzInherit = 0x00001000
	xfNoDefrag     = 0x00002000
	xfFilestream   = 0x00004000
	xfDAX          = 0x00008000
	xfCowExtSize   = 0x00010000
	xfHasAttr      = 0x80000000
)

const (
	// xfLock flags forbid changing the inode (data, metadata, names):
	// set after everything else, cleared before anything is changed.
	xfLock = xfImmutable | xfAppend
	// xfLate flags are set once the data is written: sync would make
	// every write of the restore synchronous.
	xfLate = xfLock | xfSync
	// xfKernel flags are kept by the kernel itself; FSSETXATTR ignores
	// them (prealloc: the file has preallocated extents, which the
	// stream does not carry; has-xattr: the inode has an attribute fork).
	xfKernel = xfPrealloc | xfHasAttr
	// xfAll is every flag bit restore sets.
	xfAll = ^uint32(xfKernel)
)

// xflagNames are xfs_io's names (lsattr -v), for messages.
var xflagNames = []struct {
	bit  uint32
	name string
}{
	{xfRealtime, "realtime"}, {xfPrealloc, "prealloc"}, {xfImmutable, "immutable"},
	{xfAppend, "append-only"}, {xfSync, "sync"}, {xfNoatime, "no-atime"}, {xfNodump, "no-dump"},
	{xfRTInherit, "rt-inherit"}, {xfProjInherit, "proj-inherit"}, {xfNoSymlinks, "nosymlinks"},
	{xfExtSize, "extsize"}, {xfExtSzInherit, "extsz-inherit"}, {xfNoDefrag, "no-defrag"},
	{xfFilestream, "filestream"}, {xfDAX, "dax"}, {xfCowExtSize, "cowextsize"}, {xfHasAttr, "has-xattr"},
}

func xflagName(bit uint32) string {
	for _, f := range xflagNames {
		if f.bit == bit {
			return f.name
		}
	}
	return fmt.Sprintf("0x%x", bit)
}

// xflagsString lists the flags of x by name ("" for none).
func xflagsString(x uint32) string {
	var names []string
	for b := uint32(1); b != 0; b <<= 1 {
		if x&b != 0 {
			names = append(names, xflagName(b))
		}
	}
	return strings.Join(names, ",")
}

// fsAttr is what restore reads and sets of an inode (the extent count
// that fsxattr also reports is not an attribute).
type fsAttr struct {
	XFlags     uint32
	ExtSize    uint32 // bytes
	ProjID     uint32
	CowExtSize uint32 // bytes
}

// wantAttr is what an inode of the dump should get. A hint without its
// flag, or a hint flag without a size, is not an attribute the kernel
// can hold (FSSETXATTR drops either): both are left out.
func wantAttr(m *stream.FileMeta) fsAttr {
	a := fsAttr{XFlags: m.XFlags & xfAll, ProjID: m.ProjectID}
	if a.XFlags&(xfExtSize|xfExtSzInherit) != 0 {
		a.ExtSize = m.ExtSize
	}
	if a.XFlags&xfCowExtSize != 0 {
		a.CowExtSize = m.CowExtSize
	}
	if a.ExtSize == 0 {
		a.XFlags &^= xfExtSize | xfExtSzInherit
	}
	if a.CowExtSize == 0 {
		a.XFlags &^= xfCowExtSize
	}
	return a
}

// attrIO reads and sets the attributes of one inode.
type attrIO interface {
	get() (fsAttr, error)
	set(fsAttr) error
}

// ---- FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR on a descriptor ----

// rawFsxattr is struct fsxattr (28 bytes).
type rawFsxattr struct {
	XFlags, ExtSize, NExtents, ProjID, CowExtSize uint32
	_                                             [8]byte
}

// _IOR('X', 31, struct fsxattr) and _IOW('X', 32, struct fsxattr).
const (
	fsIocFsGetXattr = 0x801c581f
	fsIocFsSetXattr = 0x401c5820
)

// FS_*_FL (linux/fs.h): the chattr flags that have an XFS twin, for
// filesystems that only know FS_IOC_GETFLAGS/SETFLAGS.
var fsFlagTwins = []struct{ fl, xf uint32 }{
	{0x00000008, xfSync}, {0x00000010, xfImmutable}, {0x00000020, xfAppend},
	{0x00000040, xfNodump}, {0x00000080, xfNoatime}, {0x02000000, xfDAX}, {0x20000000, xfProjInherit},
}

// xfCommon are the flags FS_IOC_SETFLAGS can carry.
const xfCommon = xfSync | xfImmutable | xfAppend | xfNodump | xfNoatime | xfDAX | xfProjInherit

// unsupported reports errors that mean "no such request here".
func unsupported(err error) bool {
	return err == unix.ENOTTY || err == unix.EOPNOTSUPP || err == unix.ENOSYS
}

// fdAttrs works on an open file or directory: FSGETXATTR/FSSETXATTR, or,
// where the filesystem lacks them, GETFLAGS/SETFLAGS for the flags that
// have a chattr twin.
type fdAttrs struct {
	fd     int
	legacy bool
}

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p)); e != 0 {
		return e
	}
	return nil
}

func (a *fdAttrs) get() (fsAttr, error) {
	if !a.legacy {
		var x rawFsxattr
		err := ioctlPtr(a.fd, fsIocFsGetXattr, unsafe.Pointer(&x))
		if err == nil {
			return fsAttr{XFlags: x.XFlags, ExtSize: x.ExtSize, ProjID: x.ProjID, CowExtSize: x.CowExtSize}, nil
		}
		if !unsupported(err) {
			return fsAttr{}, err
		}
		a.legacy = true
	}
	fl, err := unix.IoctlGetUint32(a.fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return fsAttr{}, err
	}
	var x uint32
	for _, t := range fsFlagTwins {
		if fl&t.fl != 0 {
			x |= t.xf
		}
	}
	return fsAttr{XFlags: x}, nil
}

func (a *fdAttrs) set(v fsAttr) error {
	if !a.legacy {
		x := rawFsxattr{XFlags: v.XFlags, ExtSize: v.ExtSize, ProjID: v.ProjID, CowExtSize: v.CowExtSize}
		err := ioctlPtr(a.fd, fsIocFsSetXattr, unsafe.Pointer(&x))
		if err == nil || !unsupported(err) {
			return err
		}
		a.legacy = true
	}
	if v.XFlags&^xfCommon != 0 || v.ExtSize != 0 || v.ProjID != 0 || v.CowExtSize != 0 {
		return unix.EOPNOTSUPP
	}
	fl, err := unix.IoctlGetUint32(a.fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	for _, t := range fsFlagTwins {
		fl &^= t.fl
		if v.XFlags&t.xf != 0 {
			fl |= t.fl
		}
	}
	return unix.IoctlSetPointerInt(a.fd, unix.FS_IOC_SETFLAGS, int(fl))
}

// ---- file_getattr / file_setattr (Linux 6.17) on a name ----

// rawFileAttr is struct file_attr (FILE_ATTR_SIZE_VER0, 24 bytes).
type rawFileAttr struct {
	XFlags                                uint64
	ExtSize, NExtents, ProjID, CowExtSize uint32
}

// pathAttrs works on name in directory dirfd without following a
// symlink and without opening the inode, so it reaches symlinks, devices,
// fifos and sockets too.
type pathAttrs struct {
	dirfd int
	name  string
}

func fileAttrCall(nr uintptr, dirfd int, name string, fa *rawFileAttr) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(nr, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(fa)),
		unsafe.Sizeof(*fa), unix.AT_SYMLINK_NOFOLLOW, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (a *pathAttrs) get() (fsAttr, error) {
	var fa rawFileAttr
	if err := fileAttrCall(unix.SYS_FILE_GETATTR, a.dirfd, a.name, &fa); err != nil {
		return fsAttr{}, err
	}
	return fsAttr{XFlags: uint32(fa.XFlags), ExtSize: fa.ExtSize, ProjID: fa.ProjID, CowExtSize: fa.CowExtSize}, nil
}

func (a *pathAttrs) set(v fsAttr) error {
	fa := rawFileAttr{XFlags: uint64(v.XFlags), ExtSize: v.ExtSize, ProjID: v.ProjID, CowExtSize: v.CowExtSize}
	return fileAttrCall(unix.SYS_FILE_SETATTR, a.dirfd, a.name, &fa)
}

// ---- applying ----

// errNoAttrCall: the inode cannot be reached without file_setattr.
var errNoAttrCall = errors.New("this kernel sets them on symlinks, devices and sockets only with file_setattr (Linux 6.17 or later)")

// merge returns cur with the flags under mask (and, with fields, the
// project id and hints) taken from want.
func merge(cur, want fsAttr, mask uint32, fields bool) fsAttr {
	n := cur
	n.XFlags = cur.XFlags&^mask | want.XFlags&mask
	if fields {
		n.ProjID, n.ExtSize, n.CowExtSize = want.ProjID, want.ExtSize, want.CowExtSize
	}
	return n
}

// same compares what restore sets.
func same(a, b fsAttr, mask uint32, fields bool) bool {
	if (a.XFlags^b.XFlags)&mask&xfAll != 0 {
		return false
	}
	return !fields || (a.ProjID == b.ProjID && a.ExtSize == b.ExtSize && a.CowExtSize == b.CowExtSize)
}

// attrPiece is one thing to set on its own when setting everything at
// once fails, so that one refused flag does not cost the others.
type attrPiece struct {
	what  string
	apply func(fsAttr) fsAttr
}

func pieces(cur, target fsAttr, mask uint32, fields bool) []attrPiece {
	var out []attrPiece
	flag := func(b uint32) attrPiece {
		on := target.XFlags&b != 0
		what := xflagName(b) + " flag"
		if !on {
			what = "removing the " + what
		}
		return attrPiece{what, func(a fsAttr) fsAttr {
			a.XFlags &^= b
			if on {
				a.XFlags |= b
			}
			return a
		}}
	}
	diff := (cur.XFlags ^ target.XFlags) & mask & xfAll
	hints := uint32(xfExtSize | xfExtSzInherit | xfCowExtSize)
	if fields {
		diff &^= hints // set together with their sizes below
	}
	// Lock flags are cleared first and set last: nothing else could be
	// changed after them on some filesystems.
	for b := uint32(1); b != 0; b <<= 1 {
		if diff&b&xfLock != 0 && target.XFlags&b == 0 {
			out = append(out, flag(b))
		}
	}
	for b := uint32(1); b != 0; b <<= 1 {
		if diff&b&^xfLock != 0 {
			out = append(out, flag(b))
		}
	}
	if fields {
		if cur.ProjID != target.ProjID {
			p := target.ProjID
			out = append(out, attrPiece{fmt.Sprintf("project id %d", p), func(a fsAttr) fsAttr { a.ProjID = p; return a }})
		}
		eb := uint32(xfExtSize | xfExtSzInherit)
		if cur.ExtSize != target.ExtSize || (cur.XFlags^target.XFlags)&eb != 0 {
			s, f := target.ExtSize, target.XFlags&eb
			what := fmt.Sprintf("extent size hint %d", s)
			if s == 0 {
				what = "removing the extent size hint"
			}
			out = append(out, attrPiece{what, func(a fsAttr) fsAttr { a.ExtSize, a.XFlags = s, a.XFlags&^eb|f; return a }})
		}
		if cur.CowExtSize != target.CowExtSize || (cur.XFlags^target.XFlags)&xfCowExtSize != 0 {
			s, f := target.CowExtSize, target.XFlags&xfCowExtSize
			what := fmt.Sprintf("CoW extent size hint %d", s)
			if s == 0 {
				what = "removing the CoW extent size hint"
			}
			out = append(out, attrPiece{what, func(a fsAttr) fsAttr {
				a.CowExtSize, a.XFlags = s, a.XFlags&^xfCowExtSize|f
				return a
			}})
		}
	}
	for b := uint32(1); b != 0; b <<= 1 {
		if diff&b&xfLock != 0 && target.XFlags&b != 0 {
			out = append(out, flag(b))
		}
	}
	return out
}

// differences names what got lacks of target.
func differences(got, target fsAttr, mask uint32, fields bool) []string {
	var out []string
	for _, p := range pieces(got, target, mask, fields) {
		out = append(out, p.what+": not kept by the destination filesystem")
	}
	return out
}

func attrErr(err error) string {
	switch err {
	case unix.EOPNOTSUPP, unix.ENOTTY:
		return "not supported by the destination filesystem"
	case unix.EINVAL:
		return "refused by the destination filesystem (invalid argument)"
	case unix.EPERM:
		return "not permitted"
	}
	return err.Error()
}

// applyAttrs changes the inode behind io from cur (nil: read it) to want
// under mask (and fields). It returns the attributes the inode has after
// (known false when they could not be read) and what was not applied.
func applyAttrs(io attrIO, cur *fsAttr, want fsAttr, mask uint32, fields bool) (got fsAttr, known bool, fails []string) {
	var c fsAttr
	if cur != nil {
		c = *cur
	} else {
		var err error
		if c, err = io.get(); err != nil {
			// Nothing to read: nothing is set either, unless asked.
			if same(fsAttr{}, want, mask, fields) {
				return c, false, nil
			}
			for _, p := range pieces(fsAttr{}, want, mask, fields) {
				fails = append(fails, p.what+": "+attrErr(err))
			}
			return c, false, fails
		}
	}
	target := merge(c, want, mask, fields)
	if same(c, target, mask, fields) {
		return c, true, nil
	}
	applied := target
	if err := io.set(target); err != nil {
		// One piece at a time, to apply what can be and name the rest.
		applied = c
		for _, p := range pieces(c, target, mask, fields) {
			trial := p.apply(applied)
			if err := io.set(trial); err != nil {
				fails = append(fails, p.what+": "+attrErr(err))
				continue
			}
			applied = trial
		}
	}
	// Some filesystems take what they cannot keep without a word (ext4
	// drops XFS-only flags and hints): read back what stuck.
	after, err := io.get()
	if err != nil {
		return applied, false, fails
	}
	return after, true, append(fails, differences(after, applied, mask, fields)...)
}

// attrError is the one error an inode gets for everything not applied.
func attrError(fails []string) error {
	if len(fails) == 0 {
		return nil
	}
	return fmt.Errorf("XFS attributes not restored: %s", strings.Join(fails, "; "))
}
