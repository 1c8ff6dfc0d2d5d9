package xfs

import (
	"bytes"
	"fmt"

	"xfskit/ondisk"
)

// Readlink returns the target of a symlink, stored inline in the inode
// (local format) or in remote blocks, each mapping starting with an XSLM
// header that is verified against the inode and the pieces read so far.
func (f *FS) Readlink(ip *Inode) (string, error) {
	where := fmt.Sprintf("inode %d", ip.Ino)
	c := func(field, format string, a ...any) error {
		return ondisk.Corrupt("symlink", where, field, format, a...)
	}
	if !ip.IsSymlink() {
		return "", fmt.Errorf("inode %d: not a symlink (mode 0%o)", ip.Ino, ip.Mode)
	}
	if ip.Size == 0 || ip.Size >= ondisk.SymlinkMaxLen {
		return "", c("size", "target length %d outside 1..%d", ip.Size, ondisk.SymlinkMaxLen-1)
	}
	size := int(ip.Size)
	switch ip.Format {
	case ondisk.FmtLocal:
		data, err := ip.LocalData()
		if err != nil {
			return "", err
		}
		if bytes.IndexByte(data, 0) >= 0 {
			return "", c("", "inline target contains a NUL byte")
		}
		return string(data), nil
	case ondisk.FmtExtents, ondisk.FmtBtree:
	default:
		return "", c("format", "symlink in %s format", ondisk.FormatName(ip.Format))
	}
	ext, err := f.Extents(ip, false)
	if err != nil {
		return "", err
	}
	sb := f.SB
	bs := int(sb.BlockSize)
	need := uint64(ondisk.SymlinkBlocks(bs, size))
	// Merge physically contiguous extents into the mappings the kernel
	// reads (and wrote) as one buffer with one header.
	type mapping struct{ off, fsb, n uint64 }
	var maps []mapping
	for _, e := range ext {
		if e.Offset >= need {
			break
		}
		if e.Unwritten {
			return "", c("", "unwritten extent %v in a remote symlink", e)
		}
		n := min(e.Length, need-e.Offset)
		if k := len(maps); k > 0 && maps[k-1].off+maps[k-1].n == e.Offset && maps[k-1].fsb+maps[k-1].n == e.StartBlock {
			maps[k-1].n += n
			continue
		}
		maps = append(maps, mapping{e.Offset, e.StartBlock, n})
	}
	target := make([]byte, 0, size)
	var next uint64 // next file block expected
	for _, m := range maps {
		if m.off != next {
			return "", c("", "remote target has a hole at file block %d", next)
		}
		next = m.off + m.n
		buf, err := f.ReadFSB(m.fsb, uint32(m.n))
		if err != nil {
			return "", fmt.Errorf("%s: symlink block %d: %w", where, m.fsb, err)
		}
		daddr := sb.FSBToDaddr(m.fsb)
		bwhere := fmt.Sprintf("%s block %d (daddr %d)", where, m.fsb, daddr)
		h, piece, err := ondisk.VerifySymlinkBlock(buf, sb.MetaUUIDOrUUID(), daddr, ip.Ino, bwhere)
		if err != nil {
			return "", err
		}
		f.noteLSN(ip.Ino, "symlink block", daddr, h.LSN)
		want := min(ondisk.SymlinkBufSpace(len(buf)), size-len(target))
		if int(h.Offset) != len(target) || int(h.Bytes) != want {
			return "", ondisk.Corrupt("symlink block", bwhere, "", "header covers bytes %d+%d, expected %d+%d", h.Offset, h.Bytes, len(target), want)
		}
		target = append(target, piece...)
		if len(target) == size {
			break
		}
	}
	if len(target) != size {
		return "", c("", "remote blocks hold %d of %d target bytes", len(target), size)
	}
	if bytes.IndexByte(target, 0) >= 0 {
		return "", c("", "remote target contains a NUL byte")
	}
	return string(target), nil
}
