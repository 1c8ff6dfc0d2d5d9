package pack_test

import (
	"fmt"
	"slices"
	"testing"

	"xfskit/internal/image"
	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// testImage edits a freshly made filesystem just enough to receive what
// pack builds: it allocates from one AG's free space (optionally in
// fragments, to exercise multi-run mappings), then rewrites that AG's
// single-leaf free space and inode B-trees and the counters. It stands in
// for mkfs -p's AG accounting.
type testImage struct {
	t    testing.TB
	path string
	dev  *image.File
	sb   *ondisk.Superblock
	p    *pack.Packer
	agno uint32
	free []agExt // free extents before packing, by block
	fi   int     // free extent being consumed
	cur  uint32  // next block in it
	used []agExt
	frag uint64 // >0: runs of at most frag blocks, a free block between them
	// reverse: runs of frag blocks taken from one region in descending
	// order, so a mapping fragments without leaving free gaps.
	reverse bool
	chunks  []ondisk.InobtRec
	rmaps   []ondisk.RmapRec // mappings of what was packed and written
}

type agExt struct{ bno, len uint32 }

func openTestImage(t testing.TB, path string, agno uint32) *testImage {
	t.Helper()
	dev, err := image.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	ti := &testImage{t: t, path: path, dev: dev, agno: agno}
	sect := make([]byte, 512)
	ti.read(sect, 0)
	sb, err := ondisk.DecodeSuperblock(sect)
	if err != nil {
		t.Fatal(err)
	}
	ti.sb = sb
	agf := ti.agf()
	if agf.BnoLevel != 1 {
		t.Fatalf("AG %d bnobt has %d levels; the test harness handles a single leaf", agno, agf.BnoLevel)
	}
	for _, r := range ti.leafRecs(agf.BnoRoot, ondisk.AllocRecSize) {
		a, _ := ondisk.DecodeAllocRec(r)
		ti.free = append(ti.free, agExt{a.StartBlock, a.BlockCount})
	}
	if len(ti.free) == 0 {
		t.Fatalf("AG %d has no free space", agno)
	}
	ti.cur = ti.free[0].bno
	ti.p, err = pack.New(sb, pack.AllocFunc(ti.alloc), dev)
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

func (ti *testImage) read(buf []byte, off int64) {
	ti.t.Helper()
	if _, err := ti.dev.ReadAt(buf, off); err != nil {
		ti.t.Fatal(err)
	}
}

func (ti *testImage) writeAt(buf []byte, off int64) {
	ti.t.Helper()
	if _, err := ti.dev.WriteAt(buf, off); err != nil {
		ti.t.Fatal(err)
	}
}

func (ti *testImage) agHeader(n int) ([]byte, int64) {
	ss := int(ti.sb.SectSize)
	off := int64(ti.sb.AGBToDaddr(ti.agno, 0))<<ondisk.BBShift + int64(n*ss)
	buf := make([]byte, ss)
	ti.read(buf, off)
	return buf, off
}

func (ti *testImage) agf() *ondisk.AGF {
	buf, _ := ti.agHeader(1)
	a, err := ondisk.DecodeAGF(buf)
	if err != nil {
		ti.t.Fatal(err)
	}
	return a
}

func (ti *testImage) blockOff(agbno uint32) int64 {
	return int64(ti.sb.AGBToDaddr(ti.agno, agbno)) << ondisk.BBShift
}

func (ti *testImage) leafRecs(agbno uint32, recSize int) [][]byte {
	buf := make([]byte, ti.sb.BlockSize)
	ti.read(buf, ti.blockOff(agbno))
	h, err := ondisk.DecodeBtreeHeader(buf, false)
	if err != nil || h.Level != 0 {
		ti.t.Fatalf("AG %d block %d: not a B-tree leaf (%v)", ti.agno, agbno, err)
	}
	var out [][]byte
	for i := 0; i < int(h.NumRecs); i++ {
		o := ondisk.ShortHdrSize + i*recSize
		out = append(out, slices.Clone(buf[o:o+recSize]))
	}
	return out
}

// alloc is the pack.Allocator: a bump allocator over the AG's free
// extents, honouring alignment and contiguity requests.
func (ti *testImage) alloc(r pack.Request) ([]pack.Run, error) {
	if ti.reverse && ti.frag > 0 && !r.Contig {
		whole, err := ti.alloc(pack.Request{Len: r.Len, Contig: true})
		if err != nil {
			return nil, err
		}
		var runs []pack.Run
		for end := whole[0].Len; end > 0; {
			n := min(end, ti.frag)
			end -= n
			runs = append(runs, pack.Run{FSB: whole[0].FSB + end, Len: n})
		}
		return runs, nil
	}
	var runs []pack.Run
	need := r.Len
	for need > 0 {
		if ti.fi >= len(ti.free) {
			return nil, fmt.Errorf("test AG %d is full", ti.agno)
		}
		f := ti.free[ti.fi]
		end := f.bno + f.len
		start := ti.cur
		if r.Align > 1 {
			start = (start + r.Align - 1) / r.Align * r.Align
		}
		n := uint64(end) - uint64(min(start, end))
		if r.Contig && n < need || n == 0 {
			ti.fi++
			if ti.fi < len(ti.free) {
				ti.cur = ti.free[ti.fi].bno
			}
			continue
		}
		n = min(n, need)
		gaps := ti.frag > 0 && !r.Contig && !ti.reverse
		if gaps {
			n = min(n, ti.frag)
		}
		runs = append(runs, pack.Run{FSB: ti.sb.AGToFSB(ti.agno, start), Len: n})
		ti.used = append(ti.used, agExt{start, uint32(n)})
		ti.cur = start + uint32(n)
		if gaps {
			ti.cur++ // leave a free block between fragments
		}
		need -= n
	}
	return runs, nil
}

// allocChunk allocates an aligned inode chunk and returns its first inode.
func (ti *testImage) allocChunk() uint64 {
	ti.t.Helper()
	runs, err := ti.alloc(pack.Request{Len: uint64(ti.p.ChunkBlocks()), Align: ti.p.ChunkAlign(), Contig: true})
	if err != nil {
		ti.t.Fatal(err)
	}
	_, agbno := ti.sb.FSBToAG(runs[0].FSB)
	return ti.sb.AGInoToIno(ti.agno, ti.sb.AGBToAGIno(agbno))
}

// writeChunk writes the 64 inodes of the chunk starting at first: the
// given encoded inodes, free inodes elsewhere; it records the inobt entry.
func (ti *testImage) writeChunk(first uint64, inodes map[uint64][]byte) {
	ti.t.Helper()
	isz := int(ti.sb.InodeSize)
	buf := make([]byte, ondisk.InodesPerChunk*isz)
	var used uint64
	for i := 0; i < ondisk.InodesPerChunk; i++ {
		ino := first + uint64(i)
		b := buf[i*isz : (i+1)*isz]
		if raw, ok := inodes[ino]; ok {
			copy(b, raw)
			used |= 1 << i
		} else {
			ti.p.FreeInode(b, ino)
		}
	}
	daddr, _ := ti.sb.InoToDaddr(first)
	ti.writeAt(buf, int64(daddr)<<ondisk.BBShift)
	_, agino := ti.sb.InoToAG(first)
	ti.chunks = append(ti.chunks, ti.p.ChunkRecord(agino, used))
}

// writeInode writes one encoded inode in place (for the root).
func (ti *testImage) writeInode(ino uint64, raw []byte) {
	daddr, off := ti.sb.InoToDaddr(ino)
	ti.writeAt(raw, int64(daddr)<<ondisk.BBShift+int64(off))
}

func (ti *testImage) readInode(ino uint64) *ondisk.Dinode {
	daddr, off := ti.sb.InoToDaddr(ino)
	raw := make([]byte, ti.sb.InodeSize)
	ti.read(raw, int64(daddr)<<ondisk.BBShift+int64(off))
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		ti.t.Fatal(err)
	}
	return d
}

// addRmaps records the reverse mappings of what Pack built for ino.
func (ti *testImage) addRmaps(ino uint64, res *pack.Result) {
	add := func(fsb, n, off uint64, attr, bmbt bool) {
		agno, agbno := ti.sb.FSBToAG(fsb)
		if agno != ti.agno {
			ti.t.Fatalf("inode %d: block %d outside test AG %d", ino, fsb, ti.agno)
		}
		ti.rmaps = append(ti.rmaps, ondisk.RmapRec{StartBlock: agbno, BlockCount: uint32(n), Owner: ino, Offset: off, AttrFork: attr, BmbtBlock: bmbt})
	}
	for _, e := range res.Data {
		add(e.StartBlock, e.Length, e.Offset, false, false)
	}
	for _, e := range res.Attr {
		add(e.StartBlock, e.Length, e.Offset, true, false)
	}
	for _, r := range res.DataBmbt {
		add(r.FSB, r.Len, 0, false, true)
	}
	for _, r := range res.AttrBmbt {
		add(r.FSB, r.Len, 0, true, true)
	}
}

// finish rebuilds the AG's B-trees with pack.WriteAGTrees and updates the
// AGF, AGI and superblock counters.
func (ti *testImage) finish() {
	ti.t.Helper()
	used := slices.Clone(ti.used)
	slices.SortFunc(used, func(a, b agExt) int { return int(a.bno) - int(b.bno) })
	var free []pack.AGExtent
	ui := 0
	for _, f := range ti.free {
		pos, end := f.bno, f.bno+f.len
		for ui < len(used) && used[ui].bno < end {
			u := used[ui]
			if u.bno < pos || u.bno+u.len > end {
				ti.t.Fatalf("allocated %d+%d outside free extent %d+%d", u.bno, u.len, f.bno, f.len)
			}
			if u.bno > pos {
				free = append(free, pack.AGExtent{Bno: pos, Len: u.bno - pos})
			}
			pos = u.bno + u.len
			ui++
		}
		if pos < end {
			free = append(free, pack.AGExtent{Bno: pos, Len: end - pos})
		}
	}
	if ui != len(used) {
		ti.t.Fatalf("%d allocations outside the free space", len(used)-ui)
	}
	agfBuf, agfOff := ti.agHeader(1)
	agf, err := ondisk.DecodeAGF(agfBuf)
	if err != nil {
		ti.t.Fatal(err)
	}
	agiBuf, agiOff := ti.agHeader(2)
	agi, err := ondisk.DecodeAGI(agiBuf)
	if err != nil {
		ti.t.Fatal(err)
	}
	if agi.Level != 1 || (ti.sb.HasRmapbt() && agf.RmapLevel != 1) {
		ti.t.Fatalf("AG %d trees already have several levels", ti.agno)
	}
	sparse := ti.sb.HasSpinodes()
	in := &pack.AGTrees{AGNo: ti.agno, Free: free, BnoRoot: agf.BnoRoot, CntRoot: agf.CntRoot, InoRoot: agi.Root}
	for _, r := range ti.leafRecs(agi.Root, ondisk.InobtRecSize) {
		x, _ := ondisk.DecodeInobtRec(r, sparse)
		in.Inodes = append(in.Inodes, x)
	}
	in.Inodes = append(in.Inodes, ti.chunks...)
	if ti.sb.HasFinobt() {
		in.FinoRoot = agi.FreeRoot
	}
	if ti.sb.HasReflink() {
		in.RefcRoot = agf.RefcountRoot
	}
	if ti.sb.HasRmapbt() {
		in.RmapRoot = agf.RmapRoot
		for _, r := range ti.leafRecs(agf.RmapRoot, ondisk.RmapRecSize) {
			x, _ := ondisk.DecodeRmapRec(r)
			in.Rmaps = append(in.Rmaps, x)
		}
		in.Rmaps = append(in.Rmaps, ti.rmaps...)
		for _, c := range ti.chunks {
			in.Rmaps = append(in.Rmaps, ondisk.RmapRec{StartBlock: c.StartIno >> ti.sb.InoPBLog, BlockCount: ti.p.ChunkBlocks(), Owner: ondisk.RmapOwnInodes})
		}
	}
	res, err := pack.WriteAGTrees(ti.sb, ti.dev, in)
	if err != nil {
		ti.t.Fatal(err)
	}
	oldFree := uint64(agf.FreeBlks) + uint64(agf.BtreeBlks)
	oldICount, oldIFree := agi.Count, agi.FreeCount
	agf.FreeBlks, agf.Longest, agf.BtreeBlks = res.FreeBlks, res.Longest, res.BtreeBlks
	agf.BnoLevel, agf.CntLevel = res.BnoLevel, res.CntLevel
	if ti.sb.HasRmapbt() {
		agf.RmapLevel, agf.RmapBlocks = res.RmapLevel, res.RmapBlocks
	}
	agf.Encode(agfBuf)
	ti.writeAt(agfBuf, agfOff)
	agi.Count, agi.FreeCount, agi.NewIno = res.Count, res.FreeCount, res.NewIno
	agi.Level, agi.FreeLevel = res.InoLevel, res.FinoLevel
	if ti.sb.HasInobtCnt() {
		agi.IBlocks, agi.FBlocks = res.IBlocks, res.FBlocks
	}
	agi.Encode(agiBuf)
	ti.writeAt(agiBuf, agiOff)

	sbBuf := make([]byte, ti.sb.SectSize)
	ti.read(sbBuf, 0)
	sb, err := ondisk.DecodeSuperblock(sbBuf)
	if err != nil {
		ti.t.Fatal(err)
	}
	sb.ICount += uint64(agi.Count - oldICount)
	sb.IFree = sb.IFree - uint64(oldIFree) + uint64(agi.FreeCount)
	sb.FDBlocks = sb.FDBlocks - oldFree + uint64(res.FreeBlks) + uint64(res.BtreeBlks)
	sb.Encode(sbBuf)
	ti.writeAt(sbBuf, 0)
	if err := ti.dev.Sync(); err != nil {
		ti.t.Fatal(err)
	}
}
