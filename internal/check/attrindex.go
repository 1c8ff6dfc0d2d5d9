package check

import (
	"fmt"
	"sort"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// checkAttrIndex verifies the structure of a leaf or node attribute fork:
// da-node blocks (levels, keys equal to their children's last hashes,
// sibling links, no block reached twice), hash order within and across
// leaves, firstused and non-overlapping name structs, no incomplete
// entries, no name twice in a namespace, and remote values mapped block
// for block without sharing blocks with the tree or each other.
//
// It runs after the engine's ListXattrs succeeded, which verified the
// leaves of the forward chain (CRC, entries, hashes, usedbytes) and read
// every remote value through its block headers.
func (c *checker) checkAttrIndex(ip *xfs.Inode) error {
	f, err := c.attrIndex(ip)
	if err != nil {
		return err
	}
	f.report(c.r)
	return nil
}

// attrIndex checks ip's attribute fork and returns the findings without
// touching the report. Only I/O errors are returned.
func (c *checker) attrIndex(ip *xfs.Inode) (*idxFindings, error) {
	f := &idxFindings{ino: ip.Ino}
	if ip.AFormat == ondisk.FmtExtents && ip.ForkNextents(true) == 0 {
		return f, nil // the empty fork an LSM leaves on every inode
	}
	ext, err := c.fs.Extents(ip, true)
	if err != nil {
		if isIOError(err) {
			return nil, err
		}
		f.addErr(-1, err)
		return f, nil
	}
	if len(ext) == 0 {
		return f, nil
	}
	a := &attrIdx{c: c, ip: ip, f: f, m: &forkBlocks{ext}, names: map[string]bool{}}
	return f, a.check()
}

// attrIdx is the state of one attribute fork's check.
type attrIdx struct {
	c     *checker
	ip    *xfs.Inode
	f     *idxFindings
	m     *forkBlocks
	names map[string]bool // namespace byte + name of every complete entry
	// remote value block ranges, to find blocks used twice
	claims []attrClaim
}

type attrClaim struct {
	start, n uint64
	what     string
}

// where names an attribute block by its logical block (xfs_db's ablock).
func (a *attrIdx) where(blk uint64) string { return fmt.Sprintf("attr block %d", blk) }

func (a *attrIdx) check() error {
	const st = "attr fork"
	buf, fsb, err := a.c.readLogical(a.m, 0, 1, st, a.where(0))
	if err != nil {
		if isIOError(err) {
			return err
		}
		a.f.addErr(-1, err)
		return nil
	}
	if m := ondisk.DAMagic(buf); m != ondisk.Attr3LeafMagic && m != ondisk.DA3NodeMagic {
		a.f.add(st, int64(fsb), "%s: magic 0x%04x is neither an attr3 leaf nor a da3 node", a.where(0), m)
		return nil
	}
	w := &daWalk{
		c: a.c, ip: a.ip, f: a.f, m: a.m, per: 1, leafMagic: ondisk.Attr3LeafMagic, kind: "attr",
		first: buf, firstFSB: fsb,
		// Block 0 is the root: no pointer may lead back to it.
		link: func(b uint64) bool { return b != 0 },
		leaf: a.leaf,
	}
	w.run(0)
	if w.ioErr != nil {
		return w.ioErr
	}
	if w.failed {
		return nil
	}
	for b := range w.visited {
		a.claims = append(a.claims, attrClaim{b, 1, "hash tree block"})
	}
	a.checkClaims()
	return nil
}

// leaf checks one attribute leaf (the walker checks order across leaves).
func (a *attrIdx) leaf(blk uint64, buf []byte, fsb uint64) (first, last uint32, count int, ok bool) {
	const st = "attr3 leaf block"
	sb := a.c.sb
	l, err := ondisk.VerifyAttr3Leaf(buf, sb.MetaUUIDOrUUID(), sb.FSBToDaddr(fsb), a.ip.Ino, a.where(blk))
	if err != nil {
		a.f.addErr(int64(fsb), err)
		return 0, 0, 0, false
	}
	if len(l.Entries) == 0 {
		// Only the root may be empty (an interrupted first set).
		if blk != 0 {
			a.f.add(st, int64(fsb), "%s: a leaf with no entries", a.where(blk))
		}
		return 0, 0, 0, true
	}
	type span struct{ off, end, i int }
	spans := make([]span, 0, len(l.Entries))
	minIdx := uint32(len(buf))
	for i := range l.Entries {
		e := &l.Entries[i]
		spans = append(spans, span{int(e.NameIdx), int(e.NameIdx) + e.EntSize(), i})
		minIdx = min(minIdx, uint32(e.NameIdx))
		ns := ondisk.AttrNamespaceOf(e.Flags)
		if e.Flags&ondisk.AttrIncomplete != 0 {
			a.f.add(st, int64(fsb), "%s: entry %d %s is incomplete (an interrupted set or remove)", a.where(blk), i, ondisk.LinuxXattrName(ns, e.Name))
			continue
		}
		key := string(rune(ns)) + string(e.Name)
		if ns == ondisk.NSParent {
			// Parent pointers repeat names; the value tells them apart.
			key += "\x00" + string(e.Value)
		}
		if a.names[key] {
			a.f.add(st, int64(fsb), "%s: entry %d: attribute %s appears twice", a.where(blk), i, ondisk.LinuxXattrName(ns, e.Name))
		}
		a.names[key] = true
		if !e.IsLocal() {
			a.remote(blk, fsb, i, e)
		}
	}
	h := &l.Hdr
	if h.Holes == 0 && h.FirstUsed != minIdx || h.FirstUsed > minIdx {
		a.f.add(st, int64(fsb), "%s: firstused %d, but the lowest name struct starts at %d (holes %d)", a.where(blk), h.FirstUsed, minIdx, h.Holes)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	for j := 1; j < len(spans); j++ {
		if p, q := spans[j-1], spans[j]; q.off < p.end {
			a.f.add(st, int64(fsb), "%s: name structs of entries %d (%d..%d) and %d (%d..%d) overlap", a.where(blk), p.i, p.off, p.end, q.i, q.off, q.end)
		}
	}
	return l.Entries[0].Hashval, l.Entries[len(l.Entries)-1].Hashval, len(l.Entries), true
}

// remote checks that a remote value's blocks are mapped: as many as its
// length needs, each carrying its own header.
func (a *attrIdx) remote(blk, fsb uint64, i int, e *ondisk.AttrLeafEntry) {
	const st = "attr3 leaf block"
	name := ondisk.LinuxXattrName(ondisk.AttrNamespaceOf(e.Flags), e.Name)
	n := uint64(ondisk.AttrRmtBlocks(int(a.c.sb.BlockSize), int(e.ValueLen)))
	if n == 0 {
		return
	}
	if _, err := a.m.runs(uint64(e.ValueBlk), n); err != nil {
		a.f.add(st, int64(fsb), "%s: entry %d %s: a remote value of %d bytes needs %d blocks from logical block %d, but %v", a.where(blk), i, name, e.ValueLen, n, e.ValueBlk, err)
		return
	}
	a.claims = append(a.claims, attrClaim{uint64(e.ValueBlk), n, "the remote value of " + name})
}

// checkClaims reports attribute fork blocks used by two things.
func (a *attrIdx) checkClaims() {
	cl := a.claims
	sort.Slice(cl, func(i, j int) bool { return cl[i].start < cl[j].start })
	far := 0 // the claim reaching furthest so far
	for i := 1; i < len(cl); i++ {
		if p := cl[far]; cl[i].start < p.start+p.n {
			a.f.add("attr fork", -1, "logical blocks %d..%d (%s) overlap blocks %d..%d (%s)",
				cl[i].start, cl[i].start+cl[i].n-1, cl[i].what, p.start, p.start+p.n-1, p.what)
		}
		if cl[i].start+cl[i].n > cl[far].start+cl[far].n {
			far = i
		}
	}
}
