package check

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// dirIndex checks ip's index and returns the findings without touching the
// report, so it may run concurrently with other directories. Only I/O
// errors are returned.
func (c *checker) dirIndex(ip *xfs.Inode) (*idxFindings, error) {
	f := &idxFindings{ino: ip.Ino}
	ext, err := c.fs.Extents(ip, false)
	if err != nil {
		if isIOError(err) {
			return nil, err
		}
		f.addErr(-1, err)
		return f, nil
	}
	d := &dirIdx{c: c, ip: ip, f: f, m: &forkBlocks{ext}, g: ondisk.NewDirGeo(c.sb)}
	d.per = uint64(d.g.FSBPerBlock())
	d.leafDA, d.freeDA = d.g.DBToDA(d.g.LeafDB), d.g.DBToDA(d.g.FreeDB)
	if err := d.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// dirIdx is the state of one directory's index check.
type dirIdx struct {
	c              *checker
	ip             *xfs.Inode
	f              *idxFindings
	m              *forkBlocks
	g              ondisk.DirGeo
	per            uint64 // filesystem blocks per directory block
	leafDA, freeDA uint64 // logical blocks where the leaf and free spaces start

	// What the data blocks say: every live entry's leaf address
	// (ascending, as data blocks are read in order) and name hash, and
	// each data block's largest free region.
	addrs, hashes []uint32
	seen          []bool // addrs[i] has a leaf entry
	dbs           []uint32
	best          []uint16

	// nameAt cache: the last data block decoded for a message.
	nameDB   uint32
	nameData *ondisk.DirData
}

// where names a directory block by its logical block (xfs_db's dblock);
// findings carry the inode.
func (d *dirIdx) where(l uint64) string { return fmt.Sprintf("dir block %d", l) }

// read reads the directory block at logical block l. A mapping or range
// problem becomes a finding (ok false); an I/O error is returned.
func (d *dirIdx) read(l uint64, st string) (buf []byte, fsb uint64, ok bool, err error) {
	buf, fsb, err = d.c.readLogical(d.m, l, d.per, st, d.where(l))
	if err != nil {
		if isIOError(err) {
			return nil, 0, false, err
		}
		d.f.addErr(-1, err)
		return nil, 0, false, nil
	}
	if l >= d.leafDA {
		d.c.noteBlockLSN(d.ip.Ino, fsb, buf) // data blocks: the engine's ReadDir did
	}
	return buf, fsb, true, nil
}

func (d *dirIdx) check() error {
	// ReadDir read every data block, so listing them is cheap; the other
	// spaces are walked lazily.
	data := slices.Collect(d.m.starts(0, d.leafDA, d.per))
	if len(data) == 0 {
		return nil // ReadDir reports a directory without data blocks
	}
	buf, fsb, ok, err := d.read(data[0], ondisk.DirBlockName(ondisk.Dir3DataMagic))
	if !ok {
		return err
	}
	if data[0] == 0 && len(buf) >= 4 && binary.BigEndian.Uint32(buf) == ondisk.Dir3BlockMagic {
		d.checkBlockForm(buf, fsb)
		if l, ok := d.m.first(d.leafDA, math.MaxUint64, d.per); ok {
			d.f.add("directory", -1, "single-block directory also maps logical block %d in the leaf or free space", l)
		}
		return nil
	}
	for i, l := range data {
		if i > 0 {
			if buf, fsb, ok, err = d.read(l, ondisk.DirBlockName(ondisk.Dir3DataMagic)); !ok {
				return err
			}
		}
		dd, err := ondisk.DecodeDirData(buf, d.g.FType)
		if err != nil {
			// ReadDir verified this block: only a changing image gets here.
			d.f.addErr(int64(fsb), fmt.Errorf("%s: %w", d.where(l), err))
			return nil
		}
		db := uint32(d.g.DAToDB(l))
		d.dbs = append(d.dbs, db)
		d.best = append(d.best, dd.BestFree[0].Length)
		for _, e := range dd.Entries {
			d.addrs = append(d.addrs, d.g.Dataptr(db, e.Off))
			d.hashes = append(d.hashes, ondisk.DirHash(d.c.sb, e.Name))
		}
	}
	d.seen = make([]bool, len(d.addrs))
	if l, ok := d.m.first(d.leafDA, d.freeDA, d.per); !ok || l != d.leafDA {
		d.f.add("directory", -1, "no hash index block at logical block %d (%d data blocks need one)", d.leafDA, len(data))
		return nil
	}
	buf, fsb, ok, err = d.read(d.leafDA, "directory")
	if !ok {
		return err
	}
	switch ondisk.DAMagic(buf) {
	case ondisk.Dir3Leaf1Magic:
		if !d.checkLeaf1(buf, fsb) {
			return nil // an unreadable leaf indexes nothing: one finding is enough
		}
		if l, ok := d.m.first(d.leafDA+d.per, math.MaxUint64, d.per); ok {
			d.f.add(ondisk.DAName(ondisk.Dir3Leaf1Magic), int64(fsb), "%s: a leaf-form directory, but logical block %d in the leaf or free space is mapped too", d.where(d.leafDA), l)
		}
	case ondisk.DA3NodeMagic, ondisk.Dir3LeafNMagic:
		ok, err := d.checkNode(buf, fsb)
		if err != nil || !ok {
			return err
		}
		if err := d.checkFree(); err != nil {
			return err
		}
	default:
		d.f.add("directory", int64(fsb), "%s: magic 0x%04x at the leaf offset is not a leaf1, leafn or da3 node block", d.where(d.leafDA), ondisk.DAMagic(buf))
		return nil
	}
	d.reportUnindexed()
	return nil
}

// checkBlockForm adds to VerifyDirData (already passed) the one thing it
// cannot see: two live leaf entries naming the same data entry, which the
// matching counts would otherwise hide behind an unindexed entry.
func (d *dirIdx) checkBlockForm(buf []byte, fsb uint64) {
	n := len(buf)
	if n < ondisk.Dir3DataHdrSize+ondisk.DirBlockTailSize {
		return
	}
	count := uint64(binary.BigEndian.Uint32(buf[n-8:]))
	if count*ondisk.DirLeafEntrySize > uint64(n-ondisk.Dir3DataHdrSize-ondisk.DirBlockTailSize) {
		return // VerifyDirData reports it
	}
	start := n - ondisk.DirBlockTailSize - int(count)*ondisk.DirLeafEntrySize
	addrs := make([]uint32, 0, count)
	for p := start; p < n-ondisk.DirBlockTailSize; p += ondisk.DirLeafEntrySize {
		if a := binary.BigEndian.Uint32(buf[p+4:]); a != ondisk.DirNullDataptr {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	for i := 1; i < len(addrs); i++ {
		if addrs[i] == addrs[i-1] {
			d.f.add(ondisk.DirBlockName(ondisk.Dir3BlockMagic), int64(fsb), "%s: two leaf entries point at offset %d (%q); another entry has no leaf entry",
				d.where(0), d.g.DataptrToOff(addrs[i]), d.nameAt(addrs[i]))
			return
		}
	}
}

// see matches live leaf entry i (hash h, address addr) of the index block
// at logical block l against the data entries.
func (d *dirIdx) see(st string, l, fsb uint64, i int, h, addr uint32) {
	k := sort.Search(len(d.addrs), func(k int) bool { return d.addrs[k] >= addr })
	db, off := d.g.DataptrToDB(addr), d.g.DataptrToOff(addr)
	switch {
	case k == len(d.addrs) || d.addrs[k] != addr:
		d.f.add(st, int64(fsb), "%s: entry %d (hash 0x%08x) points at data block %d offset %d, where no entry starts", d.where(l), i, h, db, off)
	case d.seen[k]:
		d.f.add(st, int64(fsb), "%s: entry %d points at %q (data block %d offset %d), which another leaf entry already indexes", d.where(l), i, d.nameAt(addr), db, off)
	default:
		d.seen[k] = true
		if d.hashes[k] != h {
			d.f.add(st, int64(fsb), "%s: entry %d hash 0x%08x, but the name it points at, %q (data block %d offset %d), hashes to 0x%08x", d.where(l), i, h, d.nameAt(addr), db, off, d.hashes[k])
		}
	}
}

// reportUnindexed names live data entries no leaf entry points at.
func (d *dirIdx) reportUnindexed() {
	for k, s := range d.seen {
		if s {
			continue
		}
		if d.f.full() {
			d.f.dropped++
			continue
		}
		a := d.addrs[k]
		d.f.add("directory", -1, "entry %q (data block %d offset %d, hash 0x%08x) has no leaf entry", d.nameAt(a), d.g.DataptrToDB(a), d.g.DataptrToOff(a), d.hashes[k])
	}
}

// bestOf is the best free length of data block db, or DirNullDataOff when
// there is no such block; last is the number of data blocks the tables
// must cover (the last data block + 1).
func (d *dirIdx) bestOf(db uint64) (best uint16, k int) {
	k = sort.Search(len(d.dbs), func(k int) bool { return uint64(d.dbs[k]) >= db })
	if k == len(d.dbs) || uint64(d.dbs[k]) != db {
		return ondisk.DirNullDataOff, -1
	}
	return d.best[k], k
}

func (d *dirIdx) nents() uint64 { return uint64(d.dbs[len(d.dbs)-1]) + 1 }

func bestStr(b uint16) string {
	if b == ondisk.DirNullDataOff {
		return "none (0xffff)"
	}
	return fmt.Sprint(b)
}

// checkLeaf1 checks the single leaf of a leaf-form directory: entries
// against the data, and the bests table in its tail. ok is false when the
// block itself is broken.
func (d *dirIdx) checkLeaf1(buf []byte, fsb uint64) (ok bool) {
	st := ondisk.DAName(ondisk.Dir3Leaf1Magic)
	l, err := ondisk.VerifyDir3Leaf(buf, ondisk.Dir3Leaf1Magic, d.c.sb, d.c.sb.FSBToDaddr(fsb), d.ip.Ino, d.where(d.leafDA))
	if err != nil {
		d.f.addErr(int64(fsb), err)
		return false
	}
	if l.Info.Forw != 0 || l.Info.Back != 0 {
		d.f.add(st, int64(fsb), "%s: sibling links forw %d back %d in the only leaf", d.where(d.leafDA), l.Info.Forw, l.Info.Back)
	}
	for i, e := range l.Ents {
		if e.Address != ondisk.DirNullDataptr {
			d.see(st, d.leafDA, fsb, i, e.Hashval, e.Address)
		}
	}
	if n := d.nents(); uint64(len(l.Bests)) != n {
		d.f.add(st, int64(fsb), "%s: bestcount %d, but the directory's data blocks run to block %d (%d bests)", d.where(d.leafDA), len(l.Bests), n-1, n)
	}
	for i, b := range l.Bests {
		if want, _ := d.bestOf(uint64(i)); b != want {
			d.f.add(st, int64(fsb), "%s: bests[%d] is %s, but data block %d's largest free region is %s", d.where(d.leafDA), i, bestStr(b), i, bestStr(want))
		}
	}
	return true
}

// checkNode walks the da-btree of a node-form directory; ok false means
// the tree is too broken to judge the rest.
func (d *dirIdx) checkNode(root []byte, rootFSB uint64) (ok bool, err error) {
	st := ondisk.DAName(ondisk.Dir3LeafNMagic)
	w := &daWalk{
		c: d.c, ip: d.ip, f: d.f, m: d.m, per: d.per, leafMagic: ondisk.Dir3LeafNMagic, kind: "dir",
		first: root, firstFSB: rootFSB,
		link: func(b uint64) bool { return b >= d.leafDA && b < d.freeDA && b%d.per == 0 },
		leaf: func(blk uint64, buf []byte, fsb uint64) (uint32, uint32, int, bool) {
			l, err := ondisk.VerifyDir3Leaf(buf, ondisk.Dir3LeafNMagic, d.c.sb, d.c.sb.FSBToDaddr(fsb), d.ip.Ino, d.where(blk))
			if err != nil {
				d.f.addErr(int64(fsb), err)
				return 0, 0, 0, false
			}
			for i, e := range l.Ents {
				if e.Address != ondisk.DirNullDataptr {
					d.see(st, blk, fsb, i, e.Hashval, e.Address)
				}
			}
			if len(l.Ents) == 0 {
				return 0, 0, 0, true
			}
			return l.Ents[0].Hashval, l.Ents[len(l.Ents)-1].Hashval, len(l.Ents), true
		},
	}
	w.run(d.leafDA)
	if w.ioErr != nil {
		return false, w.ioErr
	}
	if w.failed {
		return false, nil
	}
	for b := range d.m.starts(d.leafDA, d.freeDA, d.per) {
		if d.f.full() {
			break
		}
		if !w.visited[b] {
			d.f.add("directory", -1, "logical block %d in the leaf space is not in the hash tree", b)
		}
	}
	return true, nil
}

// checkFree checks the free index blocks of a node-form directory: each
// one's bests against the data blocks' largest free regions, and every
// data block covered.
func (d *dirIdx) checkFree() error {
	st := ondisk.DirBlockName(ondisk.Dir3FreeMagic)
	covered := make([]bool, len(d.dbs))
	n := d.nents()
	blocks := 0
	for l := range d.m.starts(d.freeDA, math.MaxUint64, d.per) {
		if d.f.full() {
			break
		}
		blocks++
		buf, fsb, ok, err := d.read(l, st)
		if !ok {
			if err != nil {
				return err
			}
			continue
		}
		fdb := (l - d.freeDA) / d.per
		if fdb > math.MaxInt32 {
			d.f.add(st, int64(fsb), "%s: free index block %d is beyond any data block", d.where(l), fdb)
			continue
		}
		fr, err := ondisk.VerifyDir3Free(buf, d.c.sb, d.c.sb.FSBToDaddr(fsb), d.ip.Ino, int(fdb), d.where(l))
		if err != nil {
			d.f.addErr(int64(fsb), err)
			continue
		}
		for i, b := range fr.Bests {
			db := uint64(fr.FirstDB) + uint64(i)
			if db >= n {
				d.f.add(st, int64(fsb), "%s: nvalid %d reaches data block %d, past the last data block %d", d.where(l), fr.NValid, db, n-1)
				break
			}
			want, k := d.bestOf(db)
			if k >= 0 {
				covered[k] = true
			}
			if b != want {
				d.f.add(st, int64(fsb), "%s: bests[%d] (data block %d) is %s, but the block's largest free region is %s", d.where(l), i, db, bestStr(b), bestStr(want))
			}
		}
	}
	if blocks == 0 {
		d.f.add("directory", -1, "a node-form directory without free index blocks (logical block %d on)", d.freeDA)
		return nil
	}
	for k, c := range covered {
		if !c && !d.f.full() {
			d.f.add("directory", -1, "data block %d (largest free region %d) has no entry in any free index block", d.dbs[k], d.best[k])
		}
	}
	return nil
}

// nameAt returns the name of the data entry at leaf address addr, for
// messages ("?" when it cannot be read).
func (d *dirIdx) nameAt(addr uint32) string {
	db, off := d.g.DataptrToDB(addr), d.g.DataptrToOff(addr)
	if d.nameData == nil || d.nameDB != db {
		buf, _, err := d.c.readLogical(d.m, d.g.DBToDA(db), d.per, "directory", d.where(d.g.DBToDA(db)))
		if err != nil {
			return "?"
		}
		dd, err := ondisk.DecodeDirData(buf, d.g.FType)
		if err != nil {
			return "?"
		}
		d.nameDB, d.nameData = db, dd
	}
	for _, e := range d.nameData.Entries {
		if e.Off == off {
			return string(e.Name)
		}
	}
	return "?"
}
