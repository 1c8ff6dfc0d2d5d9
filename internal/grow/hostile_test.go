package grow

import (
	"cmp"
	"fmt"
	"io"
	"math/rand"
	"os"
	"slices"
	"testing"

	"xfskit/internal/pack"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// memDev is a copy-on-write in-memory Device over a base image: writes and
// mutations land in a sector overlay.
type memDev struct {
	base []byte
	over map[int64][]byte // 512-byte sectors
	size int64
}

func newMemDev(base []byte) *memDev {
	return &memDev{base: base, over: map[int64][]byte{}, size: int64(len(base))}
}

func (m *memDev) sector(s int64) []byte {
	if b, ok := m.over[s]; ok {
		return b
	}
	b := make([]byte, 512)
	if off := s * 512; off < int64(len(m.base)) {
		copy(b, m.base[off:])
	}
	return b
}

func (m *memDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= m.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), m.size-off))
	for i := 0; i < n; {
		s, o := (off+int64(i))/512, int((off+int64(i))%512)
		i += copy(p[i:n], m.sector(s)[o:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memDev) WriteAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); {
		s, o := (off+int64(i))/512, int((off+int64(i))%512)
		b := m.sector(s)
		i += copy(b[o:], p[i:])
		m.over[s] = b
	}
	m.size = max(m.size, off+int64(len(p)))
	return len(p), nil
}

func (m *memDev) Sync() error  { return nil }
func (m *memDev) Size() int64  { return m.size }
func (m *memDev) Close() error { return nil }
func (m *memDev) Name() string { return "mem" }

// TestHostileImages grows images whose last AG headers and free space tree
// roots carry random damage with valid CRCs, so that the structural checks
// (not just the checksums) see it: Grow must return an error or a result,
// never panic or hang.
func TestHostileImages(t *testing.T) {
	img := mkfs(t, 64<<20, "-m", "rmapbt=1", "-d", "agsize=24m")
	base, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := superblock(t, img)
	last := sb.AGCount - 1
	agStart := int64(sb.AGBToDaddr(last, 0)) << ondisk.BBShift
	ss, bs := int64(sb.SectSize), int64(sb.BlockSize)
	agf := dbFields(t, img, fmt.Sprintf("agf %d", last))
	var bnoRoot, cntRoot int64
	fmt.Sscan(agf["bnoroot"], &bnoRoot)
	fmt.Sscan(agf["cntroot"], &cntRoot)
	type region struct {
		off, n int64
		seal   func([]byte)
	}
	regions := []region{
		{agStart + ss, ss, func(b []byte) { ondisk.SetCRC(b, ondisk.AGFCRCOff) }},
		{agStart + 2*ss, ss, func(b []byte) { ondisk.SetCRC(b, ondisk.AGICRCOff) }},
		{agStart + 3*ss, ss, func(b []byte) { ondisk.SetCRC(b, ondisk.AGFLCRCOff) }},
		{agStart + bnoRoot*bs, bs, func(b []byte) { ondisk.SealBtreeBlock(b, false) }},
		{agStart + cntRoot*bs, bs, func(b []byte) { ondisk.SealBtreeBlock(b, false) }},
		{0, ss, func(b []byte) { ondisk.SetCRC(b, ondisk.SBCRCOff) }},
	}
	opts := Options{Data: true, ExtendTo: int64(sb.DBlocks+3*uint64(sb.AGBlocks)/2) * bs, IMaxPct: -1}
	if _, err := Grow(newMemDev(base), opts); err != nil {
		t.Fatalf("undamaged image: %v", err)
	}
	rnd := rand.New(rand.NewSource(1))
	outcomes := map[string]int{}
	for i := range 600 {
		dev := newMemDev(base)
		r := regions[i%len(regions)]
		buf := make([]byte, r.n)
		dev.ReadAt(buf, r.off)
		for range 1 + rnd.Intn(3) {
			// Mostly header fields and the first records, where the
			// numbers that matter live.
			k := rnd.Intn(min(int(r.n), 128))
			buf[k] ^= byte(1 << rnd.Intn(8))
		}
		r.seal(buf)
		dev.WriteAt(buf, r.off)
		_, err := Grow(dev, opts)
		if err == nil {
			outcomes["grown"]++
		} else {
			outcomes["refused"]++
		}
	}
	t.Logf("outcomes: %v", outcomes)
	if outcomes["refused"] == 0 || outcomes["grown"] == 0 {
		t.Error("the damage should be refused sometimes and harmless sometimes")
	}
}

// TestRebuildTakesFromFreeList extends a last AG whose free space tree
// roots are full leaves and whose end is in use: the added extent needs a
// new record, the rebuilt trees grow a level, and the blocks they need come
// off the AGFL. The trees and counters after growing must describe exactly
// the old extents plus the new one.
func TestRebuildTakesFromFreeList(t *testing.T) {
	img := mkfs(t, 64<<20, "-b", "size=1024", "-m", "reflink=0,rmapbt=0", "-d", "agsize=24m")
	base, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	dev := newMemDev(base)
	fs, err := xfs.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	sb := fs.SB
	last := sb.AGCount - 1
	agf, err := fs.AGF(last)
	if err != nil {
		t.Fatal(err)
	}
	// Fill both roots with single-block free extents, none at the AG's end.
	n := ondisk.BnobtGeom.MaxRecs(int(sb.BlockSize), true)
	var recs []byte
	var want []pack.AGExtent
	for i := range n {
		e := pack.AGExtent{Bno: uint32(1000 + 2*i), Len: 1}
		want = append(want, e)
		recs = append(recs, make([]byte, ondisk.AllocRecSize)...)
		ondisk.AllocRec{StartBlock: e.Bno, BlockCount: e.Len}.Encode(recs[i*ondisk.AllocRecSize:])
	}
	for _, tr := range []struct{ magic, root uint32 }{{ondisk.BnobtMagic, agf.BnoRoot}, {ondisk.CntbtMagic, agf.CntRoot}} {
		if _, err := pack.WriteAGBtree(sb, dev, last, tr.magic, recs, []uint32{tr.root}); err != nil {
			t.Fatal(err)
		}
	}
	agf.FreeBlks, agf.Longest = uint32(n), 1
	sect := make([]byte, sb.SectSize)
	agfOff := int64(sb.AGBToDaddr(last, 0))<<ondisk.BBShift + int64(sb.SectSize)
	dev.ReadAt(sect, agfOff)
	agf.Encode(sect)
	dev.WriteAt(sect, agfOff)
	flBefore := agf.FLCount

	oldLen := sb.AGLength(last)
	res, err := Grow(dev, Options{Data: true, Blocks: sb.DBlocks + 100, IMaxPct: -1, ExtendTo: int64(sb.DBlocks+100) * int64(sb.BlockSize)})
	if err != nil {
		t.Fatal(err)
	}
	if res.LastAGAdded != 100 || res.NewAGCount != sb.AGCount {
		t.Fatalf("result %+v", res)
	}
	want = append(want, pack.AGExtent{Bno: oldLen, Len: 100})
	fs, err = xfs.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	agf, err = fs.AGF(last)
	if err != nil {
		t.Fatal(err)
	}
	agfl, err := fs.AGFL(last)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agfl.FreeList(agf, last, fs.SB); err != nil {
		t.Fatal(err)
	}
	per, _ := pack.AGBtreeBlocks(int(sb.BlockSize), ondisk.BnobtMagic, len(want))
	if agf.BnoLevel != 2 || agf.CntLevel != 2 || agf.BtreeBlks != uint32(2*(per-1)) || agf.FLCount != flBefore-uint32(2*per-2) {
		t.Fatalf("AGF after growing: levels %d/%d, btreeblks %d, flcount %d (was %d), want %d-block trees", agf.BnoLevel, agf.CntLevel, agf.BtreeBlks, agf.FLCount, flBefore, per)
	}
	if agf.Length != oldLen+100 || agf.FreeBlks != uint32(n+100) || agf.Longest != 100 {
		t.Fatalf("AGF after growing: length %d, freeblks %d, longest %d", agf.Length, agf.FreeBlks, agf.Longest)
	}
	for _, tr := range []struct {
		root, levels uint32
		geom         ondisk.BtreeGeometry
	}{{agf.BnoRoot, agf.BnoLevel, ondisk.BnobtGeom}, {agf.CntRoot, agf.CntLevel, ondisk.CntbtGeom}} {
		var got []pack.AGExtent
		err := fs.WalkAGRecords(last, tr.root, int(tr.levels), tr.geom, func(rec []byte) error {
			r, _ := ondisk.DecodeAllocRec(rec)
			got = append(got, pack.AGExtent{Bno: r.StartBlock, Len: r.BlockCount})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if tr.geom.Magic == ondisk.CntbtMagic {
			// By size: the single blocks in block order, then the new extent.
			slices.SortFunc(got, func(a, b pack.AGExtent) int { return cmp.Compare(a.Bno, b.Bno) })
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s after growing holds %d records, want %d", ondisk.BtreeName(tr.geom.Magic), len(got), len(want))
		}
	}
}
