package check

import (
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// checkInodeFields checks what the core verifier leaves to repair: flags
// that only make sense on some file types, timestamps, and the unlinked
// list pointer (the same rules xfs_repair applies to each inode).
func (c *checker) checkInodeFields(ip *xfs.Inode) {
	ino, sb := ip.Ino, c.sb
	isDir, isReg := ip.IsDir(), ip.IsReg()
	f := func(format string, a ...any) { c.r.inof(ino, "inode", format, a...) }

	const dirOnly = ondisk.DiflagRTInherit | ondisk.DiflagProjInherit | ondisk.DiflagNoSymlinks | ondisk.DiflagExtSzInherit
	if ip.Flags&dirOnly != 0 && !isDir {
		f("directory-only flags %#x set on a %s", ip.Flags&dirOnly, typeWord(ip.Mode))
	}
	if ip.Flags&(ondisk.DiflagRealtime|ondisk.DiflagExtSize) != 0 && !isReg {
		f("regular-file-only flags %#x set on a %s", ip.Flags&(ondisk.DiflagRealtime|ondisk.DiflagExtSize), typeWord(ip.Mode))
	}
	if ip.Flags&ondisk.DiflagRealtime != 0 && sb.RBlocks == 0 {
		f("realtime flag set, but the filesystem has no realtime device")
	}
	if ip.Flags&ondisk.DiflagNewRTBM != 0 && ino != sb.RBMIno {
		f("realtime bitmap flag (NEWRTBM) set on an inode that is not the realtime bitmap")
	}
	if ip.Version >= 3 {
		if ip.Flags2&ondisk.Diflag2DAX != 0 && !isReg && !isDir {
			f("DAX flag set on a %s", typeWord(ip.Mode))
		}
		if ip.Flags2&ondisk.Diflag2Reflink != 0 {
			switch {
			case !sb.HasReflink():
				f("reflink flag set, but the filesystem has no reflink feature")
			case !isReg:
				f("reflink flag set on a %s", typeWord(ip.Mode))
			case ip.Flags&ondisk.DiflagRealtime != 0:
				f("reflink flag set on a realtime file")
			}
		}
		if ip.Flags2&ondisk.Diflag2CowExtSize != 0 && !isReg && !isDir {
			f("copy-on-write extent size hint set on a %s", typeWord(ip.Mode))
		}
	}
	if ip.ExtSize != 0 && ip.Flags&(ondisk.DiflagExtSize|ondisk.DiflagExtSzInherit) == 0 {
		f("extent size hint %d without the flag that enables it", ip.ExtSize)
	}
	if ip.Version >= 3 && ip.CowExtSize != 0 && ip.Flags2&ondisk.Diflag2CowExtSize == 0 {
		f("copy-on-write extent size hint %d without the flag that enables it", ip.CowExtSize)
	}
	// Classic timestamps store nanoseconds directly; bigtime ones cannot
	// overflow.
	if !ip.HasBigtime() {
		for _, ts := range []struct {
			name string
			t    ondisk.Timestamp
		}{{"atime", ip.Atime}, {"mtime", ip.Mtime}, {"ctime", ip.Ctime}, {"crtime", ip.Crtime}} {
			if ts.name == "crtime" && ip.Version < 3 {
				continue
			}
			if ts.t.Nsec >= 1e9 {
				f("%s nanoseconds %d are not below one second", ts.name, ts.t.Nsec)
			}
		}
	}
	// With a clean log no inode is on an unlinked list (checkUnlinkedLists
	// judges them when they are allowed).
	if ip.NextUnlinked != ondisk.NullAGIno && !c.opts.UnlinkedLists {
		f("next_unlinked is %d, but the inode is on no unlinked list", ip.NextUnlinked)
	}
}

func typeWord(mode uint16) string {
	switch mode & ondisk.ModeTypeMask {
	case ondisk.ModeDir:
		return "directory"
	case ondisk.ModeReg:
		return "regular file"
	case ondisk.ModeSymlink:
		return "symlink"
	case ondisk.ModeChar, ondisk.ModeBlock:
		return "device"
	case ondisk.ModeFIFO:
		return "fifo"
	case ondisk.ModeSocket:
		return "socket"
	}
	return "file"
}
