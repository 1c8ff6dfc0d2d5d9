package pack

import (
	"bytes"
	"fmt"

	"xfskit/ondisk"
)

// buildSymlink stores the target inline when it fits the data fork, else
// in remote blocks with one XSLM header per contiguous run, as the kernel
// writes (and xfs_repair reads) them.
func (p *Packer) buildSymlink(in *Inode, dsize int, out *forkContent) (uint64, error) {
	t := in.Target
	if len(t) == 0 || len(t) >= ondisk.SymlinkMaxLen || bytes.IndexByte(t, 0) >= 0 {
		return 0, fmt.Errorf("%s: symlink target of %d bytes (1..%d without NUL allowed)", where(in.Ino), len(t), ondisk.SymlinkMaxLen-1)
	}
	if len(t) <= dsize {
		out.local, out.isLocal = t, true
		return uint64(len(t)), nil
	}
	n := uint64(ondisk.SymlinkBlocks(p.bs, len(t)))
	runs, err := p.allocate(in.Ino, "symlink", n, p.inodeFSB(in.Ino))
	if err != nil {
		return 0, err
	}
	m := &mapper{p: p}
	var off, lblk uint64
	for _, r := range runs {
		buf := make([]byte, int(r.Len)*p.bs)
		k := min(len(buf)-ondisk.SymlinkHdrSize, len(t)-int(off))
		h := ondisk.SymlinkHeader{Magic: ondisk.SymlinkMagic, Offset: uint32(off), Bytes: uint32(k),
			UUID: p.uuid, Owner: in.Ino, Blkno: p.sb.FSBToDaddr(r.FSB)}
		copy(buf[ondisk.SymlinkHdrSize:], t[off:int(off)+k])
		h.Encode(buf, true)
		if err := p.write(buf, r.FSB); err != nil {
			return 0, fmt.Errorf("%s: symlink: %w", where(in.Ino), err)
		}
		m.addExtent(lblk, r.FSB, r.Len)
		off += uint64(k)
		lblk += r.Len
	}
	out.ext, out.blocks = m.ext, n
	return uint64(len(t)), nil
}
