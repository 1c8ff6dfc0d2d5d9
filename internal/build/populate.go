package build

import (
	"fmt"
	"io"
	"slices"
	"time"

	"xfskit/internal/image"
	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// PopulateOptions control how a tree is copied into a new filesystem.
type PopulateOptions struct {
	// RootOwner maps every owner to uid 0, gid 0; OwnerSet maps every
	// owner to UID, GID. Otherwise owners are copied.
	RootOwner bool
	OwnerSet  bool
	UID, GID  uint32
	// Clamp, when set (SOURCE_DATE_EPOCH), caps every timestamp.
	Clamp *time.Time
	// Now is the creation time of every inode, and all timestamps of a
	// prototype file's inodes.
	Now time.Time
	// Warn receives warnings (attributes XFS cannot hold, ...).
	Warn io.Writer

	// sim, when set, makes this a sizing run (sizing.go): space is
	// allocated and metadata packed as for real, but no file data is
	// read or written.
	sim *popSim
}

// PopulateStats summarises a populate run.
type PopulateStats struct {
	Inodes, Dirs, Files uint64
	DataBytes           uint64 // file data copied
	DataBlocks          uint64 // blocks of file data
	MetaBlocks          uint64 // directory, symlink, attribute and bmbt blocks
	Chunks              uint64 // inode chunks added
}

// popAG is the state of one AG while populating.
type popAG struct {
	agno         uint32
	agf          *ondisk.AGF
	agi          *ondisk.AGI
	agfBuf       []byte
	agiBuf       []byte
	inodes       []ondisk.InobtRec // existing records (updated) and new ones
	existing     map[uint32]bool   // start inodes of chunks format wrote
	written      map[uint32]bool   // chunks populate has written
	used         map[uint32]uint64 // inodes populate used, per chunk
	open         *popChunk         // chunk being filled
	rmaps        []ondisk.RmapRec
	slots        []uint64 // free inode numbers to hand out, in order
	oldFreeBlks  uint64
	oldBtreeBlks uint64
}

// populator copies a tree into a freshly formatted filesystem on dev.
type populator struct {
	dev   image.Device
	sb    *ondisk.Superblock
	space *pack.Space
	pk    *pack.Packer
	ags   []*popAG
	o     *PopulateOptions
	now   ondisk.Timestamp
	stats PopulateStats
	wb    []byte // file data waiting to be written at wbOff
	wbOff int64
	blks  [][2]int64 // placeData's block ranges, reused

	// Sizing runs only: the buffer of every new inode chunk, and a
	// dense file's data range.
	simChunk []byte
	simRange [1][2]int64
}

// Populate copies the tree t into the empty filesystem just written to
// dev: it places inodes in new chunks (directories rotating across AGs,
// files in their directory's AG), copies file data contiguously per file
// with holes kept, builds every inode with internal/pack, then rebuilds
// each AG's B-trees and the counters.
func populate(dev image.Device, t *popTree, o *PopulateOptions) (*PopulateStats, error) {
	p := &populator{dev: dev, o: o, wb: make([]byte, 0, popWriteBuf)}
	p.now = p.clamp(ondisk.TimestampOf(o.Now))
	if err := p.load(); err != nil {
		return nil, err
	}
	root := t.root
	root.ino = p.sb.RootIno
	need := p.assignAGs(root)
	if err := p.allocInodes(root, need); err != nil {
		return nil, err
	}
	if err := p.copyData(root); err != nil {
		return nil, err
	}
	if err := p.packTree(root); err != nil {
		return nil, err
	}
	if err := p.flushChunk(); err != nil {
		return nil, err
	}
	if err := p.finishAGs(); err != nil {
		return nil, err
	}
	for _, w := range t.warnings {
		if o.Warn != nil {
			fmt.Fprintln(o.Warn, "warning:", w)
		}
	}
	return &p.stats, dev.Sync()
}

func (p *populator) read(buf []byte, off int64) error {
	if _, err := p.dev.ReadAt(buf, off); err != nil {
		return fmt.Errorf("%s: reading %d bytes at %d: %w", p.dev.Name(), len(buf), off, err)
	}
	return nil
}

func (p *populator) write(buf []byte, off int64) error {
	if _, err := p.dev.WriteAt(buf, off); err != nil {
		return fmt.Errorf("%s: writing %d bytes at %d: %w", p.dev.Name(), len(buf), off, err)
	}
	return nil
}

func (p *populator) agbOff(agno, agbno uint32) int64 {
	return int64(p.sb.AGBToDaddr(agno, agbno)) << ondisk.BBShift
}

// leafRecords returns the records of a single-block B-tree root, which is
// all a freshly formatted filesystem has.
func (p *populator) leafRecords(agno, agbno uint32, magic uint32, recSize int) ([][]byte, error) {
	buf := make([]byte, p.sb.BlockSize)
	if err := p.read(buf, p.agbOff(agno, agbno)); err != nil {
		return nil, err
	}
	where := fmt.Sprintf("AG %d block %d", agno, agbno)
	h, err := ondisk.VerifyBtreeBlock(buf, magic, p.sb.MetaUUIDOrUUID(), p.sb.AGBToDaddr(agno, agbno), uint64(agno), 0, where)
	if err != nil {
		return nil, err
	}
	if ondisk.ShortHdrSize+int(h.NumRecs)*recSize > len(buf) {
		return nil, ondisk.Corrupt(ondisk.BtreeName(magic)+" block", where, "numrecs", "%d records do not fit", h.NumRecs)
	}
	out := make([][]byte, h.NumRecs)
	for i := range out {
		o := ondisk.ShortHdrSize + i*recSize
		out[i] = buf[o : o+recSize]
	}
	return out, nil
}

// load reads the superblock and every AG's headers and B-tree roots.
func (p *populator) load() error {
	sect := make([]byte, ondisk.BBSize)
	if err := p.read(sect, 0); err != nil {
		return err
	}
	sb, err := ondisk.DecodeSuperblock(sect)
	if err != nil {
		return err
	}
	if sb.MagicNum != ondisk.SBMagic || !sb.IsV5() {
		return fmt.Errorf("%s: not a freshly formatted XFS v5 filesystem", p.dev.Name())
	}
	p.sb = sb
	p.space = pack.NewSpace(sb)
	if p.pk, err = pack.New(sb, p.space, p.dev); err != nil {
		return err
	}
	ss := int64(sb.SectSize)
	for agno := uint32(0); agno < sb.AGCount; agno++ {
		a := &popAG{agno: agno, agfBuf: make([]byte, ss), agiBuf: make([]byte, ss), existing: map[uint32]bool{},
			written: map[uint32]bool{}, used: map[uint32]uint64{}}
		base := p.agbOff(agno, 0)
		if err := p.read(a.agfBuf, base+ss); err != nil {
			return err
		}
		if err := p.read(a.agiBuf, base+2*ss); err != nil {
			return err
		}
		if a.agf, err = ondisk.DecodeAGF(a.agfBuf); err != nil {
			return err
		}
		if err := a.agf.Verify(a.agfBuf, agno, sb); err != nil {
			return err
		}
		if a.agi, err = ondisk.DecodeAGI(a.agiBuf); err != nil {
			return err
		}
		if err := a.agi.Verify(a.agiBuf, agno, sb); err != nil {
			return err
		}
		if a.agf.BnoLevel != 1 || a.agi.Level != 1 || sb.HasRmapbt() && a.agf.RmapLevel != 1 {
			return fmt.Errorf("AG %d: B-trees deeper than one block; populate needs a freshly formatted filesystem", agno)
		}
		recs, err := p.leafRecords(agno, a.agf.BnoRoot, ondisk.BnobtMagic, ondisk.AllocRecSize)
		if err != nil {
			return err
		}
		var free []pack.AGExtent
		for _, r := range recs {
			x, _ := ondisk.DecodeAllocRec(r)
			free = append(free, pack.AGExtent{Bno: x.StartBlock, Len: x.BlockCount})
		}
		if err := p.space.SetFree(agno, free); err != nil {
			return err
		}
		a.oldFreeBlks, a.oldBtreeBlks = uint64(a.agf.FreeBlks), uint64(a.agf.BtreeBlks)
		recs, err = p.leafRecords(agno, a.agi.Root, ondisk.InobtMagic, ondisk.InobtRecSize)
		if err != nil {
			return err
		}
		for _, r := range recs {
			x, _ := ondisk.DecodeInobtRec(r, sb.HasSpinodes())
			a.inodes = append(a.inodes, x)
			a.existing[x.StartIno] = true
			for i := 0; i < ondisk.InodesPerChunk; i++ {
				if x.IsFree(i) && !x.IsHole(i) {
					a.slots = append(a.slots, sb.AGInoToIno(agno, x.StartIno+uint32(i)))
				}
			}
		}
		if sb.HasRmapbt() {
			recs, err = p.leafRecords(agno, a.agf.RmapRoot, ondisk.RmapbtMagic, ondisk.RmapRecSize)
			if err != nil {
				return err
			}
			for _, r := range recs {
				x, _ := ondisk.DecodeRmapRec(r)
				a.rmaps = append(a.rmaps, x)
			}
		}
		p.ags = append(p.ags, a)
	}
	return nil
}

// clamp caps a timestamp at SOURCE_DATE_EPOCH.
func (p *populator) clamp(t ondisk.Timestamp) ondisk.Timestamp {
	if c := p.o.Clamp; c != nil && (t.Sec > c.Unix() || t.Sec == c.Unix() && t.Nsec > 0) {
		return ondisk.Timestamp{Sec: c.Unix()}
	}
	return t
}

// walk visits every node in depth-first order, a directory before its
// entries, entries in name order.
func walkPop(n *popNode, fn func(n, parent *popNode) error) error {
	var rec func(n, parent *popNode) error
	rec = func(n, parent *popNode) error {
		if err := fn(n, parent); err != nil {
			return err
		}
		for _, k := range n.kids {
			if err := rec(k, n); err != nil {
				return err
			}
		}
		return nil
	}
	return rec(n, nil)
}

// assignAGs places directories on AGs in turn, as the kernel's inode
// allocator rotates new directories across AGs, and every other inode in
// its directory's AG. It returns the number of inodes (the root aside)
// placed in each AG. It also clears what an earlier run on the tree set
// (a sizing run's tree is populated again): inode numbers are all
// assigned afresh, mappings and inherited flags are not.
func (p *populator) assignAGs(root *popNode) []int {
	need := make([]int, p.sb.AGCount)
	rotor := uint32(0)
	root.agno, _ = p.sb.InoToAG(root.ino)
	walkPop(root, func(n, parent *popNode) error {
		if n.inode != nil {
			return nil
		}
		n.ext = n.ext[:0]
		n.flags, n.flags2, n.projid, n.extsize, n.cowextsize = 0, 0, 0, 0, 0
		if parent == nil {
			return nil
		}
		if n.isDir() {
			rotor = (rotor + 1) % p.sb.AGCount
			n.agno = rotor
		} else {
			n.agno = parent.agno
		}
		need[n.agno]++
		return nil
	})
	return need
}

// allocInodes allocates the inode chunks each AG needs (need inodes) at
// the start of its free space, then hands out inode numbers in tree order.
func (p *populator) allocInodes(root *popNode, need []int) error {
	perAlloc := max(1, int(p.sb.InoPBlock)/ondisk.InodesPerChunk) // chunks per allocation
	blocks := uint64(p.pk.ChunkBlocks())
	for agno, a := range p.ags {
		for want := need[agno] - len(a.slots); want > 0; want -= perAlloc * ondisk.InodesPerChunk {
			runs, err := p.space.Alloc(pack.Request{Len: blocks, Near: p.sb.AGToFSB(uint32(agno), 0), Align: p.pk.ChunkAlign(), Contig: true})
			if err != nil {
				return fmt.Errorf("allocating inode chunks: %w", err)
			}
			got, agbno := p.sb.FSBToAG(runs[0].FSB)
			ga := p.ags[got]
			for c := 0; c < perAlloc; c++ {
				start := p.sb.AGBToAGIno(agbno) + uint32(c*ondisk.InodesPerChunk)
				ga.inodes = append(ga.inodes, p.pk.ChunkRecord(start, 0))
				for i := 0; i < ondisk.InodesPerChunk; i++ {
					ga.slots = append(ga.slots, p.sb.AGInoToIno(got, start+uint32(i)))
				}
				p.stats.Chunks++
			}
			if p.sb.HasRmapbt() {
				ga.rmaps = append(ga.rmaps, ondisk.RmapRec{StartBlock: agbno, BlockCount: uint32(blocks), Owner: ondisk.RmapOwnInodes})
			}
		}
	}
	for _, a := range p.ags {
		slices.Sort(a.slots)
		slices.SortFunc(a.inodes, func(x, y ondisk.InobtRec) int { return int(x.StartIno) - int(y.StartIno) })
	}
	return walkPop(root, func(n, parent *popNode) error {
		if parent == nil || n.inode != nil {
			return nil
		}
		for i := uint32(0); i < p.sb.AGCount; i++ {
			a := p.ags[(n.agno+i)%p.sb.AGCount]
			if len(a.slots) > 0 {
				n.ino, a.slots = a.slots[0], a.slots[1:]
				n.agno = a.agno
				return nil
			}
		}
		return fmt.Errorf("out of inodes")
	})
}
