package build

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// copyData copies every regular file's data, in tree order, each file's
// blocks allocated in one request so they are contiguous when the AG
// allows.
func (p *populator) copyData(root *popNode) error {
	err := walkPop(root, func(n, parent *popNode) error {
		if !n.isReg() || n.inode != nil {
			return nil
		}
		return p.copyFile(n)
	})
	if err != nil {
		return err
	}
	return p.flushData()
}

// popDataRanges lists the byte ranges of fd holding data, found with
// SEEK_DATA/SEEK_HOLE (the whole file where those are unsupported).
func popDataRanges(fd int, size int64) ([][2]int64, error) {
	var out [][2]int64
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return [][2]int64{{0, size}}, nil
		}
		if err != nil {
			return nil, err
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		h = min(h, size)
		if h > d {
			out = append(out, [2]int64{d, h})
		}
		off = h
	}
	return out, nil
}

func (p *populator) copyFile(n *popNode) error {
	bs := int64(p.sb.BlockSize)
	near := p.sb.AGToFSB(n.agno, 0)
	if n.resSpec != "" {
		n.reserve, _ = cvtnum(int(p.sb.BlockSize), int(p.sb.SectSize), n.resSpec)
	}
	if n.reserve > 0 {
		// Prototype "r" entries: unwritten preallocation.
		blocks := uint64((n.reserve + bs - 1) / bs)
		runs, err := p.space.Alloc(pack.Request{Len: blocks, Near: near})
		if err != nil {
			return fmt.Errorf("reserving %d bytes for %s: %w", n.reserve, n.name, err)
		}
		var off uint64
		for _, r := range runs {
			n.ext = append(n.ext, ondisk.Extent{Offset: off, StartBlock: r.FSB, Length: r.Len, Unwritten: true})
			off += r.Len
		}
		n.size = n.reserve
		n.flags |= ondisk.DiflagPrealloc
		p.stats.DataBlocks += blocks
		return nil
	}
	if n.src == "" {
		n.size = 0
		return nil
	}
	if p.o.sim != nil {
		// A sizing run (estimate): place the data found at scan time,
		// read nothing (sizing.go).
		return p.placeData(n, p.o.sim.ranges(n, &p.simRange), nil)
	}
	// Raw descriptors: os.File would register each with the poller.
	fd, err := popOpen(n.src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open", Path: n.src, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: n.src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: no longer a regular file", n.src)
	}
	n.size = st.Size
	var ranges [][2]int64
	if n.size <= bs && st.Blocks > 0 {
		ranges = [][2]int64{{0, n.size}} // one allocated block: data
	} else if ranges, err = popDataRanges(fd, n.size); err != nil {
		return fmt.Errorf("%s: finding data: %w", n.src, err)
	}
	// Allocation and mapping are shared with sizing runs (populate_place.go).
	return p.placeData(n, ranges, func(off int64, length int, fsb uint64) error {
		return p.copyBlocks(fd, off, length, fsb)
	})
}

// copyBlocks copies length bytes of fd at off (zeros past its end) to
// filesystem block fsb, through the write-behind buffer.
func (p *populator) copyBlocks(fd int, off int64, length int, fsb uint64) error {
	buf, err := p.dataSlice(int64(p.sb.FSBToDaddr(fsb))<<ondisk.BBShift, length)
	if err != nil {
		return err
	}
	got := 0
	for got < length {
		n, err := unix.Pread(fd, buf[got:], off+int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			break // the file shrank: zeros
		}
		got += n
	}
	clear(buf[got:])
	return nil
}

// popWriteBuf is the size of the write-behind buffer for file data: data
// of consecutive files lands in consecutive blocks, so most small files
// share one large write.
const popWriteBuf = 4 << 20

// dataSlice returns the buffer to fill with n bytes destined for device
// offset off, flushing the pending write first unless off continues it.
func (p *populator) dataSlice(off int64, n int) ([]byte, error) {
	if n > popWriteBuf {
		return nil, fmt.Errorf("data write of %d bytes exceeds the %d-byte buffer", n, popWriteBuf)
	}
	if len(p.wb) > 0 && (off != p.wbOff+int64(len(p.wb)) || len(p.wb)+n > popWriteBuf) {
		if err := p.flushData(); err != nil {
			return nil, err
		}
	}
	if len(p.wb) == 0 {
		p.wbOff = off
	}
	start := len(p.wb)
	p.wb = p.wb[:start+n]
	return p.wb[start:], nil
}

// flushData writes the pending file data.
func (p *populator) flushData() error {
	if len(p.wb) == 0 {
		return nil
	}
	err := p.write(p.wb, p.wbOff)
	p.wb = p.wb[:0]
	return err
}

// popChunk is an inode chunk being filled.
type popChunk struct {
	agno  uint32
	start uint32 // first AG inode
	buf   []byte
}

// chunkFor returns the slot of ino in its chunk buffer, loading the chunk
// (or initialising a new one with free inodes) when needed. One chunk per
// AG is kept open; inodes are packed in the order they were handed out,
// which is sequential within each AG.
func (p *populator) chunkFor(ino uint64) ([]byte, error) {
	agno, agino := p.sb.InoToAG(ino)
	a := p.ags[agno]
	// Chunks start on aligned blocks, not necessarily at multiples of 64.
	i, found := slices.BinarySearchFunc(a.inodes, agino, func(r ondisk.InobtRec, v uint32) int { return cmp.Compare(r.StartIno, v) })
	if !found {
		i--
	}
	if i < 0 || agino-a.inodes[i].StartIno >= ondisk.InodesPerChunk {
		return nil, fmt.Errorf("inode %d lies in no inode chunk", ino)
	}
	start := a.inodes[i].StartIno
	c := a.open
	if c == nil || c.start != start {
		if c != nil {
			if err := p.writeChunk(c); err != nil {
				return nil, err
			}
		}
		isz := int(p.sb.InodeSize)
		c = &popChunk{agno: agno, start: start}
		switch {
		case p.o.sim != nil && !a.existing[start]:
			// A sizing run's device drops this chunk's write and nothing
			// reads the inodes back: one scratch buffer, not initialised.
			if p.simChunk == nil {
				p.simChunk = make([]byte, ondisk.InodesPerChunk*isz)
			}
			c.buf = p.simChunk
		case a.existing[start] || a.written[start]:
			c.buf = make([]byte, ondisk.InodesPerChunk*isz)
			if err := p.read(c.buf, p.inoOff(agno, start)); err != nil {
				return nil, err
			}
		default:
			c.buf = make([]byte, ondisk.InodesPerChunk*isz)
			for i := 0; i < ondisk.InodesPerChunk; i++ {
				p.pk.FreeInode(c.buf[i*isz:(i+1)*isz], p.sb.AGInoToIno(agno, start+uint32(i)))
			}
		}
		a.open = c
	}
	isz := int(p.sb.InodeSize)
	slot := int(agino - start)
	a.used[start] |= 1 << slot
	return c.buf[slot*isz : (slot+1)*isz], nil
}

func (p *populator) inoOff(agno, agino uint32) int64 {
	daddr, off := p.sb.InoToDaddr(p.sb.AGInoToIno(agno, agino))
	return int64(daddr)<<ondisk.BBShift + int64(off)
}

func (p *populator) writeChunk(c *popChunk) error {
	p.ags[c.agno].written[c.start] = true
	return p.write(c.buf, p.inoOff(c.agno, c.start))
}

// flushChunk writes the open chunks, and initialises any new chunk no
// inode went to.
func (p *populator) flushChunk() error {
	isz := int(p.sb.InodeSize)
	for _, a := range p.ags {
		if a.open != nil {
			if err := p.writeChunk(a.open); err != nil {
				return err
			}
			a.open = nil
		}
		for _, r := range a.inodes {
			if a.existing[r.StartIno] || a.written[r.StartIno] || p.o.sim != nil {
				continue // (a sizing run would drop the write)
			}
			c := &popChunk{agno: a.agno, start: r.StartIno, buf: make([]byte, ondisk.InodesPerChunk*isz)}
			for i := 0; i < ondisk.InodesPerChunk; i++ {
				p.pk.FreeInode(c.buf[i*isz:(i+1)*isz], p.sb.AGInoToIno(a.agno, r.StartIno+uint32(i)))
			}
			if err := p.writeChunk(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapOwner applies the owner options.
func (p *populator) mapOwner(uid, gid uint32) (uint32, uint32) {
	switch {
	case p.o.RootOwner:
		return 0, 0
	case p.o.OwnerSet:
		return p.o.UID, p.o.GID
	}
	return uid, gid
}

// popInherit gives n the flags a new inode gets from its parent directory
// (xfs_inode_inherit_flags and _flags2).
func popInherit(n, parent *popNode) {
	dir, reg := n.isDir(), n.isReg()
	pf := parent.flags
	if pf&ondisk.DiflagProjInherit != 0 {
		n.projid = parent.projid
		if dir {
			n.flags |= ondisk.DiflagProjInherit
		}
	}
	if dir && pf&ondisk.DiflagRTInherit != 0 {
		n.flags |= ondisk.DiflagRTInherit
	}
	if pf&ondisk.DiflagExtSzInherit != 0 && parent.extsize != 0 {
		switch {
		case dir:
			n.flags |= ondisk.DiflagExtSzInherit
			n.extsize = parent.extsize
		case reg:
			n.flags |= ondisk.DiflagExtSize
			n.extsize = parent.extsize
		}
	}
	const passOn = ondisk.DiflagNoatime | ondisk.DiflagNodump | ondisk.DiflagSync | ondisk.DiflagNoDefrag
	n.flags |= pf & passOn
	if dir {
		n.flags |= pf & ondisk.DiflagNoSymlinks
	}
	if parent.flags2&ondisk.Diflag2CowExtSize != 0 && (dir || reg) {
		n.flags2 |= ondisk.Diflag2CowExtSize
		n.cowextsize = parent.cowextsize
	}
	n.flags2 |= parent.flags2 & ondisk.Diflag2DAX
}

// packTree builds every inode, in the order the inodes were handed out.
func (p *populator) packTree(root *popNode) error {
	// The root keeps the attributes the formatter gave it (-d options).
	rootBuf, err := p.chunkFor(root.ino)
	if err != nil {
		return err
	}
	d, err := ondisk.DecodeDinode(rootBuf)
	if err != nil {
		return err
	}
	root.flags, root.flags2 = d.Flags, d.Flags2&(ondisk.Diflag2CowExtSize|ondisk.Diflag2DAX)
	root.projid, root.extsize, root.cowextsize = d.ProjID(), d.ExtSize, d.CowExtSize
	in := &pack.Inode{} // reused: Pack keeps nothing of it
	var ents []pack.DirEntry
	return walkPop(root, func(n, parent *popNode) error {
		if n.inode != nil {
			return nil
		}
		ents = p.inodeFor(in, ents[:0], n, parent)
		buf, err := p.chunkFor(n.ino)
		if err != nil {
			return err
		}
		res, err := p.pk.Pack(in, buf)
		return p.packed(n, res, err)
	})
}

// inodeFor fills in with what Pack needs of n (first inheriting its
// parent's flags, in walk order); a directory's entries are appended to
// ents, which is returned.
func (p *populator) inodeFor(in *pack.Inode, ents []pack.DirEntry, n, parent *popNode) []pack.DirEntry {
	if parent != nil {
		popInherit(n, parent)
	}
	uid, gid := p.mapOwner(n.uid, n.gid)
	// The root keeps generation 0 as mkfs.xfs and the kernel make it:
	// xfsrestore assumes it and otherwise orphans the whole tree.
	var gen uint32
	if parent != nil && p.o.sim == nil { // (a sizing run keeps no inode)
		gen = pack.Generation(p.sb.MetaUUIDOrUUID(), n.ino)
	}
	*in = pack.Inode{
		Ino: n.ino, Mode: uint16(n.mode), UID: uid, GID: gid, NLink: n.nlink,
		ProjID: n.projid, Flags: n.flags, Flags2: n.flags2, ExtSize: n.extsize, CowExtSize: n.cowextsize,
		Gen: gen, Atime: p.clamp(n.atime), Mtime: p.clamp(n.mtime), Ctime: p.clamp(n.ctime),
		Crtime: p.now, Xattrs: n.xattrs,
	}
	switch n.mode & unix.S_IFMT {
	case unix.S_IFDIR:
		in.NLink = 2 + n.subdirs
		in.Parent = n.ino
		if parent != nil {
			in.Parent = parent.ino
		}
		for _, k := range n.kids {
			o := k.owner()
			// The name's bytes, not a copy: Pack only reads them.
			name := unsafe.Slice(unsafe.StringData(k.name), len(k.name))
			ents = append(ents, pack.DirEntry{Name: name, Ino: o.ino, FType: ondisk.DirFTypeFromMode(uint16(o.mode))})
		}
		in.Entries = ents
	case unix.S_IFREG:
		in.Size, in.Extents = uint64(n.size), n.ext
	case unix.S_IFLNK:
		in.Target = unsafe.Slice(unsafe.StringData(n.target), len(n.target))
	case unix.S_IFCHR, unix.S_IFBLK:
		in.Rdev = n.rdev
	}
	return ents
}

// packed accounts for n's inode, just packed with the result res.
func (p *populator) packed(n *popNode, res *pack.Result, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", p.describe(n), err)
	}
	switch {
	case n.isDir():
		p.stats.Dirs++
	case n.isReg():
		p.stats.Files++
	}
	p.stats.Inodes++
	p.stats.MetaBlocks += res.NBlocks
	if n.isReg() { // data blocks are counted separately
		for _, e := range n.ext {
			p.stats.MetaBlocks -= e.Length
		}
	}
	if p.sb.HasRmapbt() {
		p.addRmaps(n.ino, res)
	}
	if p.o.sim == nil { // sizing runs pack the same tree again
		n.xattrs = nil // no longer needed
	}
	return nil
}

func (p *populator) describe(n *popNode) string {
	if n.src != "" {
		return n.src
	}
	return n.name
}

// addRmaps records the reverse mappings of one inode's blocks.
func (p *populator) addRmaps(ino uint64, res *pack.Result) {
	add := func(fsb, length, off uint64, attr, bmbt, unwritten bool) {
		agno, agbno := p.sb.FSBToAG(fsb)
		p.ags[agno].rmaps = append(p.ags[agno].rmaps, ondisk.RmapRec{StartBlock: agbno, BlockCount: uint32(length),
			Owner: ino, Offset: off, AttrFork: attr, BmbtBlock: bmbt, Unwritten: unwritten})
	}
	for _, e := range res.Data {
		add(e.StartBlock, e.Length, e.Offset, false, false, e.Unwritten)
	}
	for _, e := range res.Attr {
		add(e.StartBlock, e.Length, e.Offset, true, false, false)
	}
	for _, r := range res.DataBmbt {
		add(r.FSB, r.Len, 0, false, true, false)
	}
	for _, r := range res.AttrBmbt {
		add(r.FSB, r.Len, 0, true, true, false)
	}
}

// finishAGs rebuilds every AG's B-trees over the final free space, inode
// chunks and mappings, and updates the AGF, AGI and superblock counters.
func (p *populator) finishAGs() error {
	var icount, ifree uint64
	var oldFree, newFree int64
	for _, a := range p.ags {
		for i := range a.inodes {
			r := &a.inodes[i]
			r.Free &^= a.used[r.StartIno]
			r.FreeCount = uint32(bits.OnesCount64(r.Free &^ r.HoleInodes()))
		}
		t := &pack.AGTrees{AGNo: a.agno, Free: p.space.Free(a.agno), Inodes: a.inodes, Rmaps: a.rmaps,
			BnoRoot: a.agf.BnoRoot, CntRoot: a.agf.CntRoot, InoRoot: a.agi.Root}
		if p.sb.HasFinobt() {
			t.FinoRoot = a.agi.FreeRoot
		}
		if p.sb.HasRmapbt() {
			t.RmapRoot = a.agf.RmapRoot
		}
		if p.sb.HasReflink() {
			t.RefcRoot = a.agf.RefcountRoot
		}
		res, err := pack.WriteAGTrees(p.sb, p.dev, t)
		if err != nil {
			return err
		}
		agf := a.agf
		agf.FreeBlks, agf.Longest, agf.BtreeBlks = res.FreeBlks, res.Longest, res.BtreeBlks
		agf.BnoLevel, agf.CntLevel = res.BnoLevel, res.CntLevel
		if p.sb.HasRmapbt() {
			agf.RmapLevel, agf.RmapBlocks = res.RmapLevel, res.RmapBlocks
		}
		agf.Encode(a.agfBuf)
		ss := int64(p.sb.SectSize)
		if err := p.write(a.agfBuf, p.agbOff(a.agno, 0)+ss); err != nil {
			return err
		}
		agi := a.agi
		agi.Count, agi.FreeCount, agi.NewIno = res.Count, res.FreeCount, res.NewIno
		agi.Level, agi.FreeLevel = res.InoLevel, res.FinoLevel
		if p.sb.HasInobtCnt() {
			agi.IBlocks, agi.FBlocks = res.IBlocks, res.FBlocks
		}
		agi.Encode(a.agiBuf)
		if err := p.write(a.agiBuf, p.agbOff(a.agno, 0)+2*ss); err != nil {
			return err
		}
		icount += uint64(res.Count)
		ifree += uint64(res.FreeCount)
		oldFree += int64(a.oldFreeBlks + a.oldBtreeBlks)
		newFree += int64(res.FreeBlks) + int64(res.BtreeBlks)
	}
	sect := make([]byte, p.sb.SectSize)
	if err := p.read(sect, 0); err != nil {
		return err
	}
	sb, err := ondisk.DecodeSuperblock(sect)
	if err != nil {
		return err
	}
	sb.ICount, sb.IFree = icount, ifree
	sb.FDBlocks = uint64(int64(sb.FDBlocks) - oldFree + newFree)
	sb.Encode(sect)
	return p.write(sect, 0)
}
