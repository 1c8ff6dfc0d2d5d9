package xfs

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"sort"
	"syscall"

	"xfskit/ondisk"
)

// DirEntry is one directory entry. Type is an ondisk.DirFT* value.
type DirEntry struct {
	Name []byte
	Ino  uint64
	Type uint8
}

// errDirStop ends an internal extent walk early.
var errDirStop = errors.New("directory walk stopped")

// ReadDir returns every entry of a directory, "." and ".." first, then the
// rest in on-disk order (shortform order, or data blocks in logical order).
// Every block read is verified. Names are copies.
func (f *FS) ReadDir(ip *Inode) ([]DirEntry, error) {
	var out []DirEntry
	err := f.WalkDir(ip, func(e DirEntry) error {
		e.Name = bytes.Clone(e.Name)
		out = append(out, e)
		return nil
	})
	return out, err
}

// DirSeq iterates a directory's entries with bounded memory (one directory
// block at a time). A walk error is yielded once, with a zero entry, and
// ends the sequence. Names alias a block buffer: copy them to keep them.
func (f *FS) DirSeq(ip *Inode) iter.Seq2[DirEntry, error] {
	return func(yield func(DirEntry, error) bool) {
		err := f.WalkDir(ip, func(e DirEntry) error {
			if !yield(e, nil) {
				return errDirStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errDirStop) {
			yield(DirEntry{}, err)
		}
	}
}

// WalkDir calls fn for each entry of a directory, like ReadDir, holding
// one directory block at a time; entry names alias that block and are
// valid only during the call. An error from fn stops the walk and is
// returned as is.
func (f *FS) WalkDir(ip *Inode, fn func(DirEntry) error) error {
	if !ip.IsDir() {
		return fmt.Errorf("inode %d: not a directory (mode 0%o): %w", ip.Ino, ip.Mode, syscall.ENOTDIR)
	}
	switch ip.Format {
	case ondisk.FmtLocal:
		sf, err := f.dirSF(ip)
		if err != nil {
			return err
		}
		if err := fn(DirEntry{Name: []byte("."), Ino: ip.Ino, Type: ondisk.DirFTDir}); err != nil {
			return err
		}
		if err := fn(DirEntry{Name: []byte(".."), Ino: sf.Parent, Type: ondisk.DirFTDir}); err != nil {
			return err
		}
		for _, e := range sf.Entries {
			if err := fn(DirEntry{Name: e.Name, Ino: e.Ino, Type: f.dirFType(e.FType)}); err != nil {
				return err
			}
		}
		return nil
	case ondisk.FmtExtents, ondisk.FmtBtree:
		return f.walkDirBlocks(ip, fn)
	}
	return ondisk.Corrupt("directory", fmt.Sprintf("inode %d", ip.Ino), "format", "data fork in %s format", ondisk.FormatName(ip.Format))
}

func (f *FS) dirFType(ft uint8) uint8 {
	if !f.SB.HasFType() {
		return ondisk.DirFTUnknown
	}
	return ft
}

func (f *FS) dirSF(ip *Inode) (*ondisk.DirSF, error) {
	data, err := ip.LocalData()
	if err != nil {
		return nil, err
	}
	return ondisk.VerifyDirSF(data, f.SB, fmt.Sprintf("inode %d", ip.Ino))
}

// dirPiece is a run of filesystem blocks holding part of a directory (or
// attribute) block.
type dirPiece struct{ fsb, n uint64 }

// readPieces reads the pieces of one logical block in order and returns
// the bytes with the daddr of the first filesystem block.
func (f *FS) readPieces(pieces []dirPiece) ([]byte, uint64, error) {
	bs := uint64(f.SB.BlockSize)
	var total uint64
	for _, p := range pieces {
		total += p.n
	}
	buf := make([]byte, 0, total*bs)
	for _, p := range pieces {
		b, err := f.ReadFSB(p.fsb, uint32(p.n))
		if err != nil {
			return nil, 0, err
		}
		buf = append(buf, b...)
	}
	return buf, f.SB.FSBToDaddr(pieces[0].fsb), nil
}

// walkDirBlocks streams the data space of a block, leaf or node directory
// through the extent map, one directory block at a time.
func (f *FS) walkDirBlocks(ip *Inode, fn func(DirEntry) error) error {
	g := ondisk.NewDirGeo(f.SB)
	where := fmt.Sprintf("inode %d", ip.Ino)
	c := func(field, format string, a ...any) error {
		return ondisk.Corrupt("directory", where, field, format, a...)
	}
	leafDA := g.DBToDA(g.LeafDB)
	per := uint64(g.FSBPerBlock())
	var (
		pieces    []dirPiece
		curDB     uint64
		have      uint64
		blockForm bool
		nblocks   int
		fnErr     error
	)
	process := func(db uint64) error {
		buf, daddr, err := f.readPieces(pieces)
		if err != nil {
			return err
		}
		magic := uint32(ondisk.Dir3DataMagic)
		if db == 0 && len(buf) >= 4 && uint32(buf[0])<<24|uint32(buf[1])<<16|uint32(buf[2])<<8|uint32(buf[3]) == ondisk.Dir3BlockMagic {
			magic, blockForm = ondisk.Dir3BlockMagic, true
		} else if blockForm {
			return c("format", "single-block directory also maps data block %d", db)
		}
		if db*uint64(g.BlkSize) >= ip.Size {
			return c("size", "data block %d lies beyond the directory size %d", db, ip.Size)
		}
		d, err := ondisk.VerifyDirData(buf, magic, f.SB, daddr, ip.Ino, fmt.Sprintf("%s dir block %d", where, db))
		if err != nil {
			return err
		}
		f.noteLSN(ip.Ino, "directory block", daddr, d.Hdr.LSN)
		nblocks++
		for _, e := range d.Entries {
			if err := fn(DirEntry{Name: e.Name, Ino: e.Ino, Type: f.dirFType(e.FType)}); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	}
	err := f.WalkExtents(ip, false, func(e ondisk.Extent) error {
		if e.Offset >= leafDA {
			return errDirStop
		}
		if e.Unwritten {
			return c("extent", "unwritten extent %v in a directory", e)
		}
		end := min(e.End(), leafDA)
		for off := e.Offset; off < end; {
			db := off / per
			if have != 0 && db != curDB {
				return c("extent", "directory block %d is only partly mapped (%d of %d blocks)", curDB, have, per)
			}
			if have == 0 {
				if off != db*per {
					return c("extent", "directory block %d is mapped from its block %d on", db, off-db*per)
				}
				curDB, pieces = db, pieces[:0]
			}
			n := min(end, (db+1)*per) - off
			fsb := e.StartBlock + (off - e.Offset)
			if k := len(pieces); k > 0 && pieces[k-1].fsb+pieces[k-1].n == fsb {
				pieces[k-1].n += n
			} else {
				pieces = append(pieces, dirPiece{fsb, n})
			}
			have += n
			off += n
			if have == per {
				have = 0
				if err := process(db); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil && !errors.Is(err, errDirStop) {
		return err
	}
	if have != 0 {
		return c("extent", "directory block %d is only partly mapped (%d of %d blocks)", curDB, have, per)
	}
	if nblocks == 0 {
		return c("format", "no data blocks in a %s-format directory", ondisk.FormatName(ip.Format))
	}
	return nil
}

// forkMap resolves logical blocks of a fork through its extent list.
type forkMap struct {
	ext []ondisk.Extent
}

func (f *FS) newForkMap(ip *Inode, attr bool) (*forkMap, error) {
	ext, err := f.Extents(ip, attr)
	if err != nil {
		return nil, err
	}
	return &forkMap{ext}, nil
}

// blocks is the number of mapped filesystem blocks, a bound for walks.
func (m *forkMap) blocks() uint64 {
	var n uint64
	for _, e := range m.ext {
		n += e.Length
	}
	return n
}

// pieces maps n logical blocks from lblk, or reports the first hole.
func (m *forkMap) pieces(lblk, n uint64) ([]dirPiece, error) {
	var out []dirPiece
	for l := lblk; l < lblk+n; {
		i := sort.Search(len(m.ext), func(i int) bool { return m.ext[i].End() > l })
		if i == len(m.ext) || m.ext[i].Offset > l {
			return nil, fmt.Errorf("logical block %d is not mapped", l)
		}
		e := m.ext[i]
		if e.Unwritten {
			return nil, fmt.Errorf("logical block %d lies in unwritten extent %v", l, e)
		}
		k := min(e.End(), lblk+n) - l
		fsb := e.StartBlock + l - e.Offset
		if j := len(out); j > 0 && out[j-1].fsb+out[j-1].n == fsb {
			out[j-1].n += k
		} else {
			out = append(out, dirPiece{fsb, k})
		}
		l += k
	}
	return out, nil
}

// readLogical reads n filesystem blocks of a fork from logical block lblk.
func (f *FS) readLogical(m *forkMap, lblk, n uint64, what string) ([]byte, uint64, error) {
	p, err := m.pieces(lblk, n)
	if err != nil {
		return nil, 0, ondisk.Corrupt(what, "", "bmap", "%v", err)
	}
	return f.readPieces(p)
}

// dirLookupStats counts the blocks a lookup read, so tests can show that
// the hash index was used rather than a scan.
type dirLookupStats struct {
	blocks int
	path   string // "shortform", "block", "leaf" or "node"
}

// Lookup finds name in a directory, using the hash index of block, leaf
// and node directories. The returned entry carries the stored name. A
// missing name gives an error wrapping syscall.ENOENT, so errors.Is with
// fs.ErrNotExist holds.
func (f *FS) Lookup(dir *Inode, name []byte) (DirEntry, error) {
	return f.dirLookup(dir, name, nil)
}

func (f *FS) dirNameEq(a, b []byte) bool {
	if ondisk.IsASCIICI(f.SB) {
		return ondisk.EqualASCIICI(a, b)
	}
	return bytes.Equal(a, b)
}

func (f *FS) dirLookup(dir *Inode, name []byte, st *dirLookupStats) (DirEntry, error) {
	if st == nil {
		st = &dirLookupStats{}
	}
	where := fmt.Sprintf("inode %d", dir.Ino)
	notFound := func() (DirEntry, error) {
		return DirEntry{}, fmt.Errorf("%s: directory has no entry %q: %w", where, name, syscall.ENOENT)
	}
	if !dir.IsDir() {
		return DirEntry{}, fmt.Errorf("%s: not a directory (mode 0%o): %w", where, dir.Mode, syscall.ENOTDIR)
	}
	if len(name) == 0 || len(name) > ondisk.DirMaxNameLen {
		return DirEntry{}, fmt.Errorf("%s: lookup of a %d-byte name: %w", where, len(name), syscall.ENAMETOOLONG)
	}
	if dir.Format == ondisk.FmtLocal {
		st.path = "shortform"
		sf, err := f.dirSF(dir)
		if err != nil {
			return DirEntry{}, err
		}
		switch string(name) {
		case ".":
			return DirEntry{Name: []byte("."), Ino: dir.Ino, Type: ondisk.DirFTDir}, nil
		case "..":
			return DirEntry{Name: []byte(".."), Ino: sf.Parent, Type: ondisk.DirFTDir}, nil
		}
		for _, e := range sf.Entries {
			if f.dirNameEq(e.Name, name) {
				return DirEntry{Name: bytes.Clone(e.Name), Ino: e.Ino, Type: f.dirFType(e.FType)}, nil
			}
		}
		return notFound()
	}
	if dir.Format != ondisk.FmtExtents && dir.Format != ondisk.FmtBtree {
		return DirEntry{}, ondisk.Corrupt("directory", where, "format", "data fork in %s format", ondisk.FormatName(dir.Format))
	}
	m, err := f.newForkMap(dir, false)
	if err != nil {
		return DirEntry{}, err
	}
	g := ondisk.NewDirGeo(f.SB)
	per := uint64(g.FSBPerBlock())
	hash := ondisk.DirHash(f.SB, name)
	c := func(field, format string, a ...any) error {
		return ondisk.Corrupt("directory", where, field, format, a...)
	}
	if len(m.ext) == 0 {
		return DirEntry{}, c("format", "no blocks in a %s-format directory", ondisk.FormatName(dir.Format))
	}

	// Data blocks are read at most once per lookup.
	datas := map[uint32]*ondisk.DirData{}
	readData := func(db uint32, magic uint32) (*ondisk.DirData, error) {
		if d := datas[db]; d != nil {
			return d, nil
		}
		buf, daddr, err := f.readLogical(m, g.DBToDA(db), per, fmt.Sprintf("%s dir block %d", where, db))
		if err != nil {
			return nil, withWhereErr(err, where)
		}
		st.blocks++
		d, err := ondisk.VerifyDirData(buf, magic, f.SB, daddr, dir.Ino, fmt.Sprintf("%s dir block %d", where, db))
		if err != nil {
			return nil, err
		}
		datas[db] = d
		return d, nil
	}
	// try resolves one leaf address; ok reports a name match.
	try := func(addr uint32, magic uint32) (DirEntry, bool, error) {
		db, off := g.DataptrToDB(addr), g.DataptrToOff(addr)
		if db >= g.LeafDB {
			return DirEntry{}, false, c("leaf", "address 0x%x lies outside the data space", addr)
		}
		d, err := readData(db, magic)
		if err != nil {
			return DirEntry{}, false, err
		}
		i := sort.Search(len(d.Entries), func(i int) bool { return d.Entries[i].Off >= off })
		if i == len(d.Entries) || d.Entries[i].Off != off {
			return DirEntry{}, false, c("leaf", "address 0x%x names no entry of data block %d", addr, db)
		}
		e := d.Entries[i]
		if !f.dirNameEq(e.Name, name) {
			return DirEntry{}, false, nil
		}
		return DirEntry{Name: bytes.Clone(e.Name), Ino: e.Ino, Type: f.dirFType(e.FType)}, true, nil
	}
	// scan looks through hash-ordered leaf entries; more reports that the
	// run of matching hashes reached the end and may continue in the next
	// leaf.
	scan := func(ents []ondisk.DirLeafEntry, magic uint32) (DirEntry, bool, bool, error) {
		i := sort.Search(len(ents), func(i int) bool { return ents[i].Hashval >= hash })
		for ; i < len(ents) && ents[i].Hashval == hash; i++ {
			if ents[i].Address == ondisk.DirNullDataptr {
				continue
			}
			e, ok, err := try(ents[i].Address, magic)
			if err != nil || ok {
				return e, ok, false, err
			}
		}
		return DirEntry{}, false, i == len(ents), nil
	}

	if last := m.ext[len(m.ext)-1]; last.End() == per && m.ext[0].Offset == 0 {
		// Single-block form: the leaf is at the end of block 0.
		st.path = "block"
		d, err := readData(0, ondisk.Dir3BlockMagic)
		if err != nil {
			return DirEntry{}, err
		}
		e, ok, _, err := scan(d.Leaf, ondisk.Dir3BlockMagic)
		if err != nil {
			return DirEntry{}, err
		}
		if !ok {
			return notFound()
		}
		return e, nil
	}

	leafDA := g.DBToDA(g.LeafDB)
	readDA := func(da uint64) ([]byte, uint64, error) {
		if da < leafDA || da >= g.DBToDA(g.FreeDB) || (da-leafDA)%per != 0 {
			return nil, 0, c("node", "link to logical block %d outside the leaf space", da)
		}
		buf, daddr, err := f.readLogical(m, da, per, fmt.Sprintf("%s dir block %d", where, da))
		if err != nil {
			return nil, 0, withWhereErr(err, where)
		}
		st.blocks++
		return buf, daddr, nil
	}
	da := leafDA
	buf, daddr, err := readDA(da)
	if err != nil {
		return DirEntry{}, err
	}
	if ondisk.DAMagic(buf) == ondisk.Dir3Leaf1Magic {
		st.path = "leaf"
		l, err := ondisk.VerifyDir3Leaf(buf, ondisk.Dir3Leaf1Magic, f.SB, daddr, dir.Ino, fmt.Sprintf("%s dir block %d", where, da))
		if err != nil {
			return DirEntry{}, err
		}
		e, ok, _, err := scan(l.Ents, ondisk.Dir3DataMagic)
		if err != nil {
			return DirEntry{}, err
		}
		if !ok {
			return notFound()
		}
		return e, nil
	}
	st.path = "node"
	// Descend the da-btree to the leftmost leaf that may hold hash.
	level := -1
	for depth := 0; ondisk.DAMagic(buf) == ondisk.DA3NodeMagic; depth++ {
		bw := fmt.Sprintf("%s dir block %d", where, da)
		n, err := ondisk.VerifyDA3Node(buf, f.SB.MetaUUIDOrUUID(), daddr, dir.Ino, bw)
		if err != nil {
			return DirEntry{}, err
		}
		if level >= 0 && int(n.Level) != level-1 || depth >= ondisk.DANodeMaxDepth {
			return DirEntry{}, ondisk.Corrupt("da3 node block", bw, "level", "level %d below a level-%d node (depth %d)", n.Level, level, depth)
		}
		level = int(n.Level)
		da = uint64(n.Entries[n.Lookup(hash)].Before)
		if buf, daddr, err = readDA(da); err != nil {
			return DirEntry{}, err
		}
	}
	if level > 1 {
		return DirEntry{}, c("node", "level-%d node points at a leaf", level)
	}
	// Scan leaves, following forward links while the hash run continues.
	for hops := 0; ; hops++ {
		bw := fmt.Sprintf("%s dir block %d", where, da)
		l, err := ondisk.VerifyDir3Leaf(buf, ondisk.Dir3LeafNMagic, f.SB, daddr, dir.Ino, bw)
		if err != nil {
			return DirEntry{}, err
		}
		e, ok, more, err := scan(l.Ents, ondisk.Dir3DataMagic)
		if err != nil {
			return DirEntry{}, err
		}
		if ok {
			return e, nil
		}
		if !more || l.Info.Forw == 0 {
			return notFound()
		}
		if uint64(hops) > m.blocks() {
			return DirEntry{}, c("leaf", "forward links loop")
		}
		prev := da
		da = uint64(l.Info.Forw)
		if buf, daddr, err = readDA(da); err != nil {
			return DirEntry{}, err
		}
		if next, _ := ondisk.DecodeDA3BlkInfo(buf); uint64(next.Back) != prev {
			return DirEntry{}, ondisk.Corrupt(ondisk.DAName(next.Magic), fmt.Sprintf("%s dir block %d", where, da), "back", "%d, but reached from block %d", next.Back, prev)
		}
	}
}

// withWhereErr names the location in a CorruptError that lacks one.
func withWhereErr(err error, where string) error {
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) && ce.Where == "" {
		ce.Where = where
	}
	return err
}
