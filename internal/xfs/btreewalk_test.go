package xfs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// bwTrees lists the AG B-trees of a filesystem with their xfs_db root
// addresses.
func bwTrees(sb *ondisk.Superblock) []struct {
	geom       ondisk.BtreeGeometry
	hdr, field string
} {
	type tr = struct {
		geom       ondisk.BtreeGeometry
		hdr, field string
	}
	out := []tr{{ondisk.BnobtGeom, "agf", "bnoroot"}, {ondisk.CntbtGeom, "agf", "cntroot"}, {ondisk.InobtGeom, "agi", "root"}}
	if sb.HasFinobt() {
		out = append(out, tr{ondisk.FinobtGeom, "agi", "free_root"})
	}
	if sb.HasRmapbt() {
		out = append(out, tr{ondisk.RmapbtGeom, "agf", "rmaproot"})
	}
	if sb.HasReflink() {
		out = append(out, tr{ondisk.RefcbtGeom, "agf", "refcntroot"})
	}
	return out
}

// bwImage builds a 1k-block image with rmapbt and reflink whose AG B-trees
// are several levels deep: thousands of small files in one directory, every
// other one deleted to fragment free space, and a few reflinked copies.
func bwImage(t *testing.T) string {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "600m", "-b", "size=1024", "-m", "rmapbt=1,reflink=1", "-d", "agcount=4")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	d := filepath.Join(mnt, "many")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 9000; i++ {
		if err := os.WriteFile(filepath.Join(d, strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Allocate the blocks now: files deleted while still delayed-allocation
	// would leave no holes behind.
	syscall.Sync()
	for i := 0; i < 9000; i += 2 {
		if err := os.Remove(filepath.Join(d, strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 40; i += 2 {
		big := filepath.Join(mnt, fmt.Sprintf("big%d", i))
		if err := os.WriteFile(big, make([]byte, 20000+i*1000), 0o644); err != nil {
			t.Fatal(err)
		}
		oracle.Run(t, "cp", "--reflink=always", big, big+".clone")
	}
	oracle.Unmount(t, mnt)
	return img
}

// TestWalkAGBtree runs the walker tests on one shared deep-tree image.
func TestWalkAGBtree(t *testing.T) {
	img := bwImage(t)
	t.Run("xfs_db", func(t *testing.T) { testWalkAGBtreesAgainstXfsDB(t, img) })
	t.Run("corruption", func(t *testing.T) { testWalkAGBtreeCorruption(t, img) })
	t.Run("mutations", func(t *testing.T) { testWalkAGBtreeMutations(t, img) })
	t.Run("inobt lookup", func(t *testing.T) { testLookupInobt(t, img) })
}

// testLookupInobt looks up every chunk of a two-level inode B-tree by its
// first and last inode, and inode numbers between chunks.
func testLookupInobt(t *testing.T, img string) {
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	recs := map[uint32][]ondisk.InobtRec{}
	if err := fs.WalkInodeChunks(context.Background(), func(ag uint32, r ondisk.InobtRec) error {
		recs[ag] = append(recs[ag], r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deep, gaps := false, 0
	for ag, rs := range recs {
		if _, levels, _ := fs.AGBtreeRoot(ag, ondisk.InobtMagic); levels > 1 {
			deep = true
		}
		for i, r := range rs {
			for _, off := range []uint32{0, 17, 63} {
				got, found, err := fs.LookupInobt(ag, r.StartIno+off)
				if err != nil || !found || got != r {
					t.Fatalf("AG %d lookup of %d: %+v found %v err %v, want %+v", ag, r.StartIno+off, got, found, err, r)
				}
			}
			if i+1 < len(rs) && rs[i+1].StartIno > r.StartIno+64 {
				gaps++
				if _, found, err := fs.LookupInobt(ag, r.StartIno+64); found || err != nil {
					t.Errorf("AG %d: inode %d between chunks found (%v)", ag, r.StartIno+64, err)
				}
			}
		}
		if len(rs) > 0 && rs[0].StartIno > 0 {
			if _, found, err := fs.LookupInobt(ag, rs[0].StartIno-1); found || err != nil {
				t.Errorf("AG %d: inode before the first chunk found (%v)", ag, err)
			}
		}
	}
	if !deep || gaps == 0 {
		t.Errorf("image has no multi-level inobt (%v) or no gaps between chunks (%d)", deep, gaps)
	}
}

// bwDBBlock is one block as `btdump -i` prints it.
type bwDBBlock struct {
	level   int
	daddr   uint64
	names   []string
	entries [][]string
	ptrs    []string
}

func bwParseBtdump(t *testing.T, out string) []bwDBBlock {
	t.Helper()
	var blocks []bwDBBlock
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 7 && f[1] == "level" && f[5] == "daddr":
			lv, _ := strconv.Atoi(f[2])
			da, _ := strconv.ParseUint(f[6], 10, 64)
			blocks = append(blocks, bwDBBlock{level: lv, daddr: da})
		case len(blocks) == 0:
		case strings.HasPrefix(line, "recs[") || strings.HasPrefix(line, "keys["):
			_, v, _ := strings.Cut(line, "=")
			blocks[len(blocks)-1].names = strings.Split(strings.Trim(strings.TrimSpace(v), "[]"), ",")
		case strings.HasPrefix(line, "ptrs["):
			_, v, _ := strings.Cut(line, "=")
			for _, tok := range strings.Fields(v) {
				_, p, _ := strings.Cut(tok, ":")
				blocks[len(blocks)-1].ptrs = append(blocks[len(blocks)-1].ptrs, p)
			}
		case strings.Contains(line, ":["):
			_, v, _ := strings.Cut(line, ":[")
			b := &blocks[len(blocks)-1]
			b.entries = append(b.entries, strings.Split(strings.TrimSuffix(strings.TrimSpace(v), "]"), ","))
		}
	}
	return blocks
}

func bwBool(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// bwFields gives the named fields of a record or key as xfs_db names them.
func bwFields(t *testing.T, sb *ondisk.Superblock, magic uint32, leaf bool, raw []byte) map[string]uint64 {
	t.Helper()
	switch magic {
	case ondisk.BnobtMagic, ondisk.CntbtMagic:
		r, _ := ondisk.DecodeAllocRec(raw)
		return map[string]uint64{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount)}
	case ondisk.InobtMagic, ondisk.FinobtMagic:
		if !leaf {
			k, _ := ondisk.DecodeInobtKey(raw)
			return map[string]uint64{"startino": uint64(k.StartIno)}
		}
		r, _ := ondisk.DecodeInobtRec(raw, sb.HasSpinodes())
		return map[string]uint64{"startino": uint64(r.StartIno), "holemask": uint64(r.HoleMask), "count": uint64(r.Count),
			"freecount": uint64(r.FreeCount), "free": r.Free}
	case ondisk.RmapbtMagic:
		if leaf {
			r, _ := ondisk.DecodeRmapRec(raw)
			return map[string]uint64{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount), "owner": r.Owner,
				"offset": r.Offset, "extentflag": bwBool(r.Unwritten), "attrfork": bwBool(r.AttrFork), "bmbtblock": bwBool(r.BmbtBlock)}
		}
		lo, hi, _ := ondisk.DecodeRmapKeyPair(raw)
		return map[string]uint64{"startblock": uint64(lo.StartBlock), "owner": lo.Owner, "offset": lo.Offset,
			"attrfork": bwBool(lo.AttrFork), "bmbtblock": bwBool(lo.BmbtBlock),
			"startblock_hi": uint64(hi.StartBlock), "owner_hi": hi.Owner, "offset_hi": hi.Offset,
			"attrfork_hi": bwBool(hi.AttrFork), "bmbtblock_hi": bwBool(hi.BmbtBlock)}
	case ondisk.RefcbtMagic:
		if leaf {
			r, _ := ondisk.DecodeRefcountRec(raw)
			return map[string]uint64{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount),
				"refcount": uint64(r.RefCount), "cowflag": bwBool(r.COW)}
		}
		k, _ := ondisk.DecodeRefcountKey(raw)
		return map[string]uint64{"startblock": uint64(k.StartBlock), "cowflag": bwBool(k.COW)}
	}
	t.Fatalf("no fields for %s", ondisk.BtreeName(magic))
	return nil
}

func bwParse(t *testing.T, s string) uint64 {
	t.Helper()
	if s == "null" {
		return uint64(ondisk.NullAGBno)
	}
	if strings.HasPrefix(s, "-") {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(n)
	}
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestWalkAGBtreesAgainstXfsDB walks every AG B-tree of a multi-level image
// and compares each level's blocks, in order, entry by entry with xfs_db's
// btdump, and the record iterator with the leaves.
func testWalkAGBtreesAgainstXfsDB(t *testing.T, img string) {
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	sb := fs.SB
	maxLevels := map[string]int{}
	for agno := uint32(0); agno < sb.AGCount; agno++ {
		for _, tr := range bwTrees(sb) {
			name := ondisk.BtreeName(tr.geom.Magic)
			root, levels, err := fs.AGBtreeRoot(agno, tr.geom.Magic)
			if err != nil {
				t.Fatal(err)
			}
			// Blocks per level, left to right, as the walk saw them.
			type seenBlock struct {
				daddr   uint64
				entries []map[string]uint64
				ptrs    []uint64
			}
			got := make([][]seenBlock, levels)
			var leafRecs [][]byte
			err = fs.WalkAGBtree(agno, root, levels, tr.geom, func(b *xfs.BtreeBlock) error {
				sbk := seenBlock{daddr: sb.AGBToDaddr(agno, b.AGBno)}
				for i := 0; i < b.NumRecs(); i++ {
					if b.IsLeaf() {
						sbk.entries = append(sbk.entries, bwFields(t, sb, tr.geom.Magic, true, b.Rec(i)))
						leafRecs = append(leafRecs, append([]byte(nil), b.Rec(i)...))
					} else {
						sbk.entries = append(sbk.entries, bwFields(t, sb, tr.geom.Magic, false, b.Key(i)))
						sbk.ptrs = append(sbk.ptrs, uint64(b.Ptr(i)))
					}
				}
				got[b.Level] = append(got[b.Level], sbk)
				return nil
			})
			if err != nil {
				t.Fatalf("AG %d %s: %v", agno, name, err)
			}
			if levels > maxLevels[name] {
				maxLevels[name] = levels
			}
			db := bwParseBtdump(t, oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("%s %d", tr.hdr, agno), "addr "+tr.field, "btdump -i"))
			var want = make([][]bwDBBlock, levels)
			for _, b := range db {
				if b.level >= levels {
					t.Fatalf("AG %d %s: xfs_db shows level %d in a %d-level tree", agno, name, b.level, levels)
				}
				want[b.level] = append(want[b.level], b)
			}
			for l := 0; l < levels; l++ {
				if len(got[l]) != len(want[l]) {
					t.Fatalf("AG %d %s level %d: walked %d blocks, xfs_db %d", agno, name, l, len(got[l]), len(want[l]))
				}
				for i, g := range got[l] {
					w := want[l][i]
					if g.daddr != w.daddr {
						t.Fatalf("AG %d %s level %d block %d: daddr %d, xfs_db %d", agno, name, l, i, g.daddr, w.daddr)
					}
					if len(g.entries) != len(w.entries) {
						t.Fatalf("AG %d %s daddr %d: %d entries, xfs_db %d", agno, name, g.daddr, len(g.entries), len(w.entries))
					}
					for j, e := range g.entries {
						for k, fname := range w.names {
							v, ok := e[fname]
							if !ok {
								t.Fatalf("%s: no decoded field %q", name, fname)
							}
							if dv := bwParse(t, w.entries[j][k]); dv != v {
								t.Errorf("AG %d %s daddr %d entry %d %s: walked %d, xfs_db %d", agno, name, g.daddr, j+1, fname, v, dv)
							}
						}
					}
					for j, p := range g.ptrs {
						if j >= len(w.ptrs) || bwParse(t, w.ptrs[j]) != p {
							t.Errorf("AG %d %s daddr %d ptr %d: walked %d, xfs_db %v", agno, name, g.daddr, j+1, p, w.ptrs)
						}
					}
				}
			}
			// The record iterator yields the leaves' records in the same order.
			n := 0
			err = fs.WalkAGRecords(agno, root, levels, tr.geom, func(rec []byte) error {
				if n >= len(leafRecs) || string(rec) != string(leafRecs[n]) {
					return fmt.Errorf("record %d differs from the walk's", n)
				}
				n++
				return nil
			})
			if err != nil || n != len(leafRecs) {
				t.Errorf("AG %d %s: record iterator: %d records, %v", agno, name, n, err)
			}
		}
	}
	// The image is only useful if it really has deep trees.
	for name, min := range map[string]int{"bnobt": 2, "cntbt": 2, "inobt": 2, "finobt": 2, "rmapbt": 3} {
		if maxLevels[name] < min {
			t.Errorf("%s is at most %d levels deep in this image; the test needs %d", name, maxLevels[name], min)
		}
	}
}

// bwCopy copies img to a fresh sparse file.
func bwCopy(t *testing.T, img string) string {
	t.Helper()
	c := filepath.Join(t.TempDir(), "c.img")
	oracle.Run(t, "cp", "--sparse=always", img, c)
	return c
}

// bwPatch rewrites one block of img with mut and reseals its CRC, so that
// checks other than the CRC are what is tested.
func bwPatch(t *testing.T, img string, sb *ondisk.Superblock, agno, agbno uint32, mut func(b []byte)) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(sb.AGBToDaddr(agno, agbno)) << ondisk.BBShift
	b := make([]byte, sb.BlockSize)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	mut(b)
	ondisk.SealBtreeBlock(b, false)
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// bwShape records a tree's blocks: root, per-level block lists.
type bwShape struct {
	root   uint32
	levels int
	byLvl  [][]uint32
	ptrs   map[uint32][]uint32
}

func bwGetShape(t *testing.T, fs *xfs.FS, agno uint32, geom ondisk.BtreeGeometry) bwShape {
	t.Helper()
	root, levels, err := fs.AGBtreeRoot(agno, geom.Magic)
	if err != nil {
		t.Fatal(err)
	}
	s := bwShape{root: root, levels: levels, byLvl: make([][]uint32, levels), ptrs: map[uint32][]uint32{}}
	err = fs.WalkAGBtree(agno, root, levels, geom, func(b *xfs.BtreeBlock) error {
		s.byLvl[b.Level] = append(s.byLvl[b.Level], b.AGBno)
		for i := 0; i < b.NumRecs() && !b.IsLeaf(); i++ {
			s.ptrs[b.AGBno] = append(s.ptrs[b.AGBno], b.Ptr(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testWalkAGBtreeCorruption damages real multi-level trees and checks that
// the walk names the problem, the field and the block, in stop mode, and
// that report mode finds it and carries on with the rest of the tree.
func testWalkAGBtreeCorruption(t *testing.T, img string) {
	fs0, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := fs0.SB
	geom := ondisk.BnobtGeom
	ag := bwDeepestAG(t, fs0)
	shape := bwGetShape(t, fs0, ag, geom)
	rmShape := bwGetShape(t, fs0, ag, ondisk.RmapbtGeom)
	var leaf0Last []byte
	fs0.WalkAGBtree(ag, shape.root, shape.levels, geom, func(b *xfs.BtreeBlock) error {
		if b.IsLeaf() && leaf0Last == nil {
			leaf0Last = append([]byte(nil), b.Rec(b.NumRecs()-1)...)
		}
		return nil
	})
	fs0.Close()
	if shape.levels != 2 || len(shape.byLvl[0]) < 3 || rmShape.levels < 3 || len(rmShape.ptrs[rmShape.root]) < 2 {
		t.Fatalf("AG %d trees do not have the shape the test needs: bnobt %d levels, %d leaves; rmapbt %d levels", ag,
			shape.levels, len(shape.byLvl[0]), rmShape.levels)
	}
	leaves := shape.byLvl[0]
	root := shape.root
	total := len(leaves) + 1
	hdr := ondisk.ShortHdrSize
	be := func(b []byte, off int) uint32 {
		return uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3])
	}
	put32 := func(b []byte, off int, v uint32) {
		b[off], b[off+1], b[off+2], b[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	ptrOff := func(g ondisk.BtreeGeometry, i int) int {
		return hdr + g.MaxRecs(int(sb.BlockSize), false)*g.KeySize + i*g.PtrSize
	}
	rmRoot := rmShape.root
	rmKids := rmShape.ptrs[rmRoot]
	type patch struct {
		agbno uint32
		mut   func(b []byte)
	}
	cases := []struct {
		name    string
		geom    ondisk.BtreeGeometry
		patches []patch
		block   uint32 // block the error must name
		field   string
		reason  string
	}{
		{"duplicate child", geom, []patch{{root, func(b []byte) { put32(b, ptrOff(geom, 1), leaves[0]) }}},
			root, "ptr[1]", "already in the tree"},
		{"child outside AG", geom, []patch{{root, func(b []byte) { put32(b, ptrOff(geom, 0), sb.AGBlocks+5) }}},
			root, "ptr[0]", "outside AG blocks"},
		{"child in AG headers", geom, []patch{{root, func(b []byte) { put32(b, ptrOff(geom, 0), 0) }}},
			root, "ptr[0]", "outside AG blocks"},
		{"child is the root", geom, []patch{{root, func(b []byte) { put32(b, ptrOff(geom, 1), root) }}},
			root, "ptr[1]", "already in the tree"},
		{"left sibling", geom, []patch{{leaves[1], func(b []byte) { put32(b, 8, leaves[1]) }}},
			leaves[1], "leftsib", "left sibling"},
		{"right sibling", geom, []patch{{leaves[1], func(b []byte) { put32(b, 12, leaves[0]) }}},
			leaves[1], "rightsib", "right sibling"},
		{"last right sibling", geom, []patch{{leaves[len(leaves)-1], func(b []byte) { put32(b, 12, leaves[0]) }}},
			leaves[len(leaves)-1], "rightsib", "last block of level 0"},
		{"root with siblings", geom, []patch{{root, func(b []byte) { put32(b, 12, leaves[0]) }}},
			root, "rightsib", "root block has a right sibling"},
		{"record order", geom, []patch{{leaves[1], func(b []byte) { put32(b, hdr+2*8, 1) }}},
			leaves[1], "recs[2]", "out of order with rec 1"},
		{"overlapping free extents", geom, []patch{{leaves[1], func(b []byte) { put32(b, hdr+4, 1<<20) }}},
			leaves[1], "recs[1]", "out of order with rec 0"},
		{"parent key", geom, []patch{{root, func(b []byte) { put32(b, hdr+8, be(b, hdr+8)+1) }}},
			leaves[1], "keys[0]", "differs from the parent"},
		{"node key order", geom, []patch{{root, func(b []byte) { put32(b, hdr+2*8, 0) }}},
			root, "keys[2]", "out of order with key 1"},
		{"order across leaves", geom, []patch{
			// Leaf 1 starts inside leaf 0's last extent; its parent key
			// follows, so only the cross-block check can see it.
			{leaves[1], func(b []byte) { copy(b[hdr:hdr+8], leaf0Last) }},
			{root, func(b []byte) { copy(b[hdr+8:hdr+16], leaf0Last) }},
		}, leaves[1], "recs[0]", "last of the previous block"},
		{"level", geom, []patch{{leaves[2], func(b []byte) { b[5] = 1 }}}, leaves[2], "level", "expected 0"},
		{"owner", geom, []patch{{leaves[2], func(b []byte) { put32(b, 48, 3) }}}, leaves[2], "owner", "expected 0"},
		{"magic", geom, []patch{{leaves[2], func(b []byte) { put32(b, 0, ondisk.CntbtMagic) }}}, leaves[2], "magic", "bad magic"},
		{"self address", geom, []patch{{leaves[2], func(b []byte) { b[23]++ }}}, leaves[2], "blkno", "claims daddr"},
		{"crc", geom, []patch{{leaves[2], nil}}, leaves[2], "crc", "checksum"},
		{"numrecs", geom, []patch{{leaves[2], func(b []byte) { b[6], b[7] = 0xff, 0xff }}}, leaves[2], "numrecs", "at most"},
		{"empty leaf", geom, []patch{{leaves[2], func(b []byte) { b[6], b[7] = 0, 0 }}}, leaves[2], "numrecs", "empty leaf"},
		{"rmap high key", ondisk.RmapbtGeom, []patch{{rmRoot, func(b []byte) {
			// Entry 0's high key starts RmapKeySize bytes into the pair.
			put32(b, hdr+ondisk.RmapKeySize, 7)
		}}}, rmKids[0], "keys", "high key"},
		{"rmap low key", ondisk.RmapbtGeom, []patch{{rmRoot, func(b []byte) {
			off := hdr + 2*ondisk.RmapKeySize // entry 1's low key
			put32(b, off, be(b, off)-1)
		}}}, rmKids[1], "keys[0]", "differs from the parent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := bwCopy(t, img)
			for _, p := range tc.patches {
				if p.mut == nil {
					bwFlip(t, c, sb, ag, p.agbno)
					continue
				}
				bwPatch(t, c, sb, ag, p.agbno, p.mut)
			}
			fs, err := xfs.Open(c)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			root, levels, err := fs.AGBtreeRoot(ag, tc.geom.Magic)
			if err != nil {
				t.Fatal(err)
			}
			err = fs.WalkAGBtree(ag, root, levels, tc.geom, nil)
			var ce *ondisk.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("stop mode: %v, want a corruption error", err)
			}
			if ce.Field != tc.field || !strings.Contains(ce.Reason, tc.reason) || ce.Where != fmt.Sprintf("AG %d block %d", ag, tc.block) {
				t.Errorf("stop mode: %q (where %q field %q), want block %d field %s reason ~%q", err, ce.Where, ce.Field, tc.block, tc.field, tc.reason)
			}
			var reports []error
			visited := 0
			err = fs.WalkAGBtreeReport(ag, root, levels, tc.geom, func(*xfs.BtreeBlock) error { visited++; return nil },
				func(e error) error { reports = append(reports, e); return nil })
			if err != nil || len(reports) == 0 || reports[0].Error() != ce.Error() {
				t.Fatalf("report mode: %v, reports %v; first should be %v", err, reports, ce)
			}
			if tc.geom.Magic == geom.Magic && visited < total/2 {
				t.Errorf("report mode visited only %d of %d blocks", visited, total)
			}
			// A reporter that says stop ends the walk with its error.
			stop := errors.New("enough")
			if err := fs.WalkAGBtreeReport(ag, root, levels, tc.geom, nil, func(error) error { return stop }); err != stop {
				t.Errorf("reporter's stop: %v", err)
			}
		})
	}
}

// bwDeepestAG is the AG whose bnobt is deepest (the one holding the many
// small files).
func bwDeepestAG(t *testing.T, fs *xfs.FS) uint32 {
	t.Helper()
	best, bestLevels := uint32(0), 0
	for ag := uint32(0); ag < fs.SB.AGCount; ag++ {
		_, levels, err := fs.AGBtreeRoot(ag, ondisk.BnobtMagic)
		if err != nil {
			t.Fatal(err)
		}
		if levels > bestLevels {
			best, bestLevels = ag, levels
		}
	}
	return best
}

// bwFlip flips one bit in a block without resealing the CRC.
func bwFlip(t *testing.T, img string, sb *ondisk.Superblock, agno, agbno uint32) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(sb.AGBToDaddr(agno, agbno))<<ondisk.BBShift + 100
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 4
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// bwOverlay is a Device over a read-only base with some blocks replaced in
// memory, for mutation tests that must not touch the image.
type bwOverlay struct {
	image.Device
	bs   int64
	over map[int64][]byte
}

func (o *bwOverlay) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.Device.ReadAt(p, off)
	if err != nil {
		return n, err
	}
	for blk := off / o.bs; blk*o.bs < off+int64(len(p)); blk++ {
		if b, ok := o.over[blk]; ok {
			s := blk * o.bs
			lo, hi := max(s, off), min(s+o.bs, off+int64(len(p)))
			copy(p[lo-off:hi-off], b[lo-s:hi-s])
		}
	}
	return n, nil
}

// TestWalkAGBtreeMutations mutates random bytes of random B-tree blocks
// (resealing the CRC so the structure checks see them) and walks the trees
// in report mode: no walk may panic, hang, or visit a block twice.
func testWalkAGBtreeMutations(t *testing.T, img string) {
	base, err := image.Open(img, false)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	fs0, err := xfs.OpenDevice(base)
	if err != nil {
		t.Fatal(err)
	}
	sb := fs0.SB
	ag := bwDeepestAG(t, fs0)
	type treeBlocks struct {
		geom   ondisk.BtreeGeometry
		blocks []uint32
	}
	var trees []treeBlocks
	for _, tr := range bwTrees(sb) {
		s := bwGetShape(t, fs0, ag, tr.geom)
		var all []uint32
		for _, l := range s.byLvl {
			all = append(all, l...)
		}
		trees = append(trees, treeBlocks{tr.geom, all})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bs := int64(sb.BlockSize)
	deadline := time.Now().Add(8 * time.Second)
	found := 0
	iters := 0
	for ; iters < 3000 && time.Now().Before(deadline); iters++ {
		tr := trees[rng.IntN(len(trees))]
		ov := &bwOverlay{Device: base, bs: bs, over: map[int64][]byte{}}
		for k := 0; k < 1+rng.IntN(3); k++ {
			agbno := tr.blocks[rng.IntN(len(tr.blocks))]
			daddr := int64(sb.AGBToDaddr(ag, agbno)) << ondisk.BBShift
			blk := daddr / bs
			b, ok := ov.over[blk]
			if !ok {
				b = make([]byte, bs)
				if _, err := base.ReadAt(b, blk*bs); err != nil {
					t.Fatal(err)
				}
			}
			for m := 0; m < 1+rng.IntN(4); m++ {
				// Mostly the header and the first entries, where damage
				// changes structure rather than just data.
				pos := rng.IntN(min(len(b), 200))
				if rng.IntN(4) == 0 {
					pos = rng.IntN(len(b))
				}
				b[pos] ^= byte(1 << rng.IntN(8))
			}
			ondisk.SealBtreeBlock(b, false)
			ov.over[blk] = b
		}
		fs, err := xfs.OpenDevice(ov)
		if err != nil {
			t.Fatal(err)
		}
		root, levels, err := fs.AGBtreeRoot(ag, tr.geom.Magic)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint32]bool{}
		reports := 0
		err = fs.WalkAGBtreeReport(ag, root, levels, tr.geom, func(b *xfs.BtreeBlock) error {
			if seen[b.AGBno] {
				return fmt.Errorf("block %d visited twice", b.AGBno)
			}
			seen[b.AGBno] = true
			return nil
		}, func(e error) error {
			var ce *ondisk.CorruptError
			if !errors.As(e, &ce) {
				return fmt.Errorf("report of a non-corruption error: %w", e)
			}
			reports++
			return nil
		})
		if err != nil {
			t.Fatalf("iteration %d (%s): %v", iters, ondisk.BtreeName(tr.geom.Magic), err)
		}
		if reports > 0 {
			found++
		}
	}
	t.Logf("%d mutated trees walked, %d with corruption reported", iters, found)
	if found < iters/2 {
		t.Errorf("only %d of %d mutated trees reported corruption", found, iters)
	}
}
