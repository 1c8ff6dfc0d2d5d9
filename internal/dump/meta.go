package dump

import (
	"fmt"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// fsxattr flags (FS_XFLAG_*, linux/fs.h) that have no di_flags twin.
const (
	xflagDAX        = 0x00008000
	xflagCowExtSize = 0x00010000
)

// xflagsOf returns the fsxattr flags the kernel reports for an inode
// (xfs_ip2xflags): the di_flags bits share their FS_XFLAG_* values, except
// the internal realtime-bitmap flag, which is not exported; HASATTR is
// left out because nobody can set it.
func xflagsOf(d *ondisk.Dinode) uint32 {
	x := uint32(d.Flags) & ondisk.DiflagAny &^ ondisk.DiflagNewRTBM
	if d.Flags2&ondisk.Diflag2DAX != 0 {
		x |= xflagDAX
	}
	if d.Flags2&ondisk.Diflag2CowExtSize != 0 {
		x |= xflagCowExtSize
	}
	return x
}

func ts(t ondisk.Timestamp) stream.Timestamp { return stream.Timestamp{Sec: t.Sec, Nsec: t.Nsec} }

// notBefore reports t >= since.
func notBefore(t ondisk.Timestamp, since stream.Timestamp) bool {
	return t.Sec > since.Sec || (t.Sec == since.Sec && t.Nsec >= since.Nsec)
}

// blocksToBytes converts an extent size hint in filesystem blocks to the
// bytes fsxattr reports, saturating rather than wrapping.
func blocksToBytes(n uint32, blockLog uint8) uint32 {
	b := uint64(n) << blockLog
	if b > 0xffffffff {
		return 0xffffffff
	}
	return uint32(b)
}

// metaOf builds the stream metadata of an inode (without the symlink
// target, which costs a read for remote symlinks).
func metaOf(fs *xfs.FS, ip *xfs.Inode) (stream.FileMeta, error) {
	m := stream.FileMeta{
		Ino:        ip.Ino,
		Mode:       uint32(ip.Mode),
		UID:        ip.UID,
		GID:        ip.GID,
		Nlink:      ip.Links(),
		Size:       int64(ip.Size),
		Atime:      ts(ip.Atime),
		Mtime:      ts(ip.Mtime),
		Ctime:      ts(ip.Ctime),
		Crtime:     ts(ip.Crtime),
		ProjectID:  ip.ProjID(),
		XFlags:     xflagsOf(&ip.Dinode),
		ExtSize:    blocksToBytes(ip.ExtSize, fs.SB.BlockLog),
		CowExtSize: blocksToBytes(ip.CowExtSize, fs.SB.BlockLog),
		Gen:        ip.Gen,
	}
	if m.Size < 0 {
		return m, ondisk.Corrupt("inode", fmt.Sprintf("inode %d", ip.Ino), "size", "size %d does not fit a signed 64-bit offset", ip.Size)
	}
	if ip.IsDevice() {
		dev, err := ip.Rdev()
		if err != nil {
			return m, err
		}
		// Linux keeps 9 bits of the stored 14-bit major (xfs_to_linux_dev_t);
		// record the device the kernel shows.
		m.Rdev = unix.Mkdev(ondisk.DevMajor(dev)&0x1ff, ondisk.DevMinor(dev))
	}
	return m, nil
}

// Names Linux gives POSIX ACLs, without the "system." prefix; the stream
// carries them in the XattrRoot namespace.
const (
	aclAccessName  = "posix_acl_access"
	aclDefaultName = "posix_acl_default"
)

// xattrsOf reads an inode's attributes in stream form. User, trusted and
// security attributes keep their names and values. POSIX ACLs, which XFS
// keeps as trusted SGI_ACL_FILE/SGI_ACL_DEFAULT in its own format, become
// XattrRoot posix_acl_access/posix_acl_default in the Linux xattr format, so
// a restore can hand them to setxattr("system.…") on any filesystem.
// Parent pointers are filesystem-internal and are not dumped.
func xattrsOf(fs *xfs.FS, ip *xfs.Inode) ([]stream.Xattr, error) {
	var out []stream.Xattr
	err := fs.WalkXattrs(ip, func(x xfs.Xattr) error {
		sx := stream.Xattr{Name: string(x.Name)}
		switch x.Namespace {
		case ondisk.NSUser:
			sx.Namespace = stream.XattrUser
		case ondisk.NSSecurity:
			sx.Namespace = stream.XattrSecurity
		case ondisk.NSTrusted:
			sx.Namespace = stream.XattrTrusted
			if name, ok := ondisk.LinuxACLName(x.Namespace, x.Name); ok {
				ents, err := ondisk.DecodeXFSACL(x.Value)
				if err != nil {
					return fmt.Errorf("inode %d: attribute trusted.%s: %w", ip.Ino, x.Name, err)
				}
				sx.Namespace = stream.XattrRoot
				sx.Name = aclAccessName
				if name == "system.posix_acl_default" {
					sx.Name = aclDefaultName
				}
				sx.Value = ondisk.PosixACLXattr(ents)
				out = append(out, sx)
				return nil
			}
		case ondisk.NSParent:
			return nil
		default:
			return ondisk.Corrupt("attribute", fmt.Sprintf("inode %d", ip.Ino), "flags", "unknown namespace 0x%x of %q", uint8(x.Namespace), x.Name)
		}
		sx.Value = append([]byte(nil), x.Value...)
		out = append(out, sx)
		return nil
	})
	return out, err
}
