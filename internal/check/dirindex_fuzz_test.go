package check

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// overlayDevice reads an image file with some filesystem blocks replaced,
// so each damaged variant costs no copy of the image.
type overlayDevice struct {
	base  *os.File
	size  int64
	bs    int64
	patch map[int64][]byte // byte offset of a block → its new contents
}

func (o *overlayDevice) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.base.ReadAt(p, off)
	for b := off - off%o.bs; b < off+int64(len(p)); b += o.bs {
		if q, ok := o.patch[b]; ok {
			lo, hi := max(b, off), min(b+o.bs, off+int64(len(p)))
			copy(p[lo-off:hi-off], q[lo-b:hi-b])
		}
	}
	return n, err
}
func (o *overlayDevice) WriteAt(p []byte, off int64) (int, error) { return 0, os.ErrPermission }
func (o *overlayDevice) Sync() error                              { return nil }
func (o *overlayDevice) Size() int64                              { return o.size }
func (o *overlayDevice) Close() error                             { return nil }
func (o *overlayDevice) Name() string                             { return "overlay" }

// indexTarget is a corpus inode whose index blocks get damaged.
type indexTarget struct {
	ino    uint64
	attr   bool
	blocks []int64 // byte offsets of its fork's blocks in the image
}

// indexFuzzer damages the index blocks of corpus directories and attribute
// forks, resealing each block's CRC so the damage reaches the consistency
// checks instead of stopping at the checksum.
type indexFuzzer struct {
	base    *os.File
	size    int64
	bs      int64
	targets []indexTarget
}

func newIndexFuzzer(tb testing.TB) *indexFuzzer {
	oracle.Require(tb, oracle.Root, oracle.Loop, oracle.Tools)
	img, m := oracle.CorpusWithManifest(tb, oracle.CorpusOptions{})
	fs, err := xfs.Open(img)
	if err != nil {
		tb.Fatal(err)
	}
	defer fs.Close()
	base, err := os.Open(img)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { base.Close() })
	st, _ := base.Stat()
	z := &indexFuzzer{base: base, size: st.Size(), bs: int64(fs.SB.BlockSize)}
	for _, form := range []oracle.CorpusForm{oracle.FormDirBlock, oracle.FormDirLeaf, oracle.FormDirNode, oracle.FormDirBtree,
		oracle.FormAttrLeaf, oracle.FormAttrNode, oracle.FormAttrRemote} {
		for _, p := range m.Paths(form) {
			ino := m.Item(p).Ino
			ip, err := fs.Inode(ino)
			if err != nil {
				tb.Fatal(err)
			}
			attr := form == oracle.FormAttrLeaf || form == oracle.FormAttrNode || form == oracle.FormAttrRemote
			ext, err := fs.Extents(ip, attr)
			if err != nil {
				tb.Fatal(err)
			}
			t := indexTarget{ino: ino, attr: attr}
			for _, e := range ext {
				for i := uint64(0); i < e.Length; i++ {
					t.blocks = append(t.blocks, int64(fs.SB.FSBToDaddr(e.StartBlock+i))*ondisk.BBSize)
				}
			}
			z.targets = append(z.targets, t)
		}
	}
	if len(z.targets) < 7 {
		tb.Fatalf("corpus has only %d index targets", len(z.targets))
	}
	return z
}

// damage returns patched copies of a few of t's blocks, driven by rnd.
func (z *indexFuzzer) damage(t indexTarget, rnd func(n int) int) map[int64][]byte {
	patch := map[int64][]byte{}
	for k := 0; k < 1+rnd(2); k++ {
		off := t.blocks[rnd(len(t.blocks))]
		b, ok := patch[off]
		if !ok {
			b = make([]byte, z.bs)
			if _, err := z.base.ReadAt(b, off); err != nil {
				continue
			}
		}
		for j := 0; j < 1+rnd(4); j++ {
			// Headers, entry tables and tails hold the index.
			var p int
			switch rnd(3) {
			case 0:
				p = rnd(128)
			case 1:
				p = len(b) - 1 - rnd(64)
			default:
				p = rnd(len(b))
			}
			b[p] = byte(rnd(256))
		}
		reseal(b)
		patch[off] = b
	}
	return patch
}

// reseal recomputes the CRC of a directory, attribute or remote block.
func reseal(b []byte) {
	switch {
	case len(b) >= 4 && (binary.BigEndian.Uint32(b) == ondisk.Dir3BlockMagic || binary.BigEndian.Uint32(b) == ondisk.Dir3DataMagic ||
		binary.BigEndian.Uint32(b) == ondisk.Dir3FreeMagic):
		ondisk.SetCRC(b, ondisk.Dir3CRCOff)
	case len(b) >= 4 && binary.BigEndian.Uint32(b) == ondisk.Attr3RmtMagic:
		ondisk.SetCRC(b, ondisk.Attr3RmtCRCOff)
	case len(b) >= ondisk.DA3BlkInfoSize:
		ondisk.SetCRC(b, ondisk.DA3CRCOff)
	}
}

// run checks target t of a damaged image the way the check does (the
// engine's read, then the index check) and checks the index check even
// when the engine already failed: no panic, bounded time and findings. It
// reports whether the engine and the index check found anything.
func (z *indexFuzzer) run(tb testing.TB, t indexTarget, patch map[int64][]byte) (engine, index bool) {
	fs, err := xfs.OpenDevice(&overlayDevice{base: z.base, size: z.size, bs: z.bs, patch: patch})
	if err != nil {
		tb.Fatal(err)
	}
	ip, err := fs.Inode(t.ino)
	if err != nil {
		return true, false
	}
	if t.attr {
		_, err = fs.ListXattrs(ip)
	} else {
		_, err = fs.ReadDir(ip)
	}
	engine = err != nil
	c := &checker{fs: fs, sb: fs.SB, r: newReport()}
	start := time.Now()
	var f *idxFindings
	if t.attr {
		f, err = c.attrIndex(ip)
	} else {
		f, err = c.dirIndex(ip)
	}
	if d := time.Since(start); d > 2*time.Second {
		tb.Errorf("inode %d: index check took %v", t.ino, d)
	}
	if err != nil {
		tb.Fatalf("inode %d: %v (only I/O errors may be returned)", t.ino, err)
	}
	if len(f.out) > maxIndexFindings {
		tb.Errorf("inode %d: %d findings kept", t.ino, len(f.out))
	}
	return engine, len(f.out) > 0
}

// Random damage to index blocks with good CRCs: the index checks never
// panic, loop or flood, and notice most of it (some bytes, e.g. unused
// space or LSNs, do not matter).
func TestIndexRandomDamage(t *testing.T) {
	z := newIndexFuzzer(t)
	// Undamaged, every target is clean.
	for _, tg := range z.targets {
		if e, x := z.run(t, tg, nil); e || x {
			t.Fatalf("inode %d: findings on the undamaged corpus", tg.ino)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 800
	found, indexOnly := 0, 0
	for i := 0; i < n; i++ {
		tg := z.targets[rng.IntN(len(z.targets))]
		e, x := z.run(t, tg, z.damage(tg, rng.IntN))
		if e || x {
			found++
		}
		if x && !e {
			indexOnly++
		}
	}
	t.Logf("%d of %d damaged images reported, %d only by the index checks", found, n, indexOnly)
	if found < n/2 || indexOnly < n/10 {
		t.Errorf("only %d of %d damaged images reported, %d by the index checks alone", found, n, indexOnly)
	}
}

// FuzzIndexBlocks drives the same damage from fuzz input.
func FuzzIndexBlocks(f *testing.F) {
	z := newIndexFuzzer(f)
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{3, 0, 0, 9, 200, 17, 1, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		pos := 0
		rnd := func(n int) int {
			if n <= 1 {
				return 0
			}
			v := 0
			for k := 0; k < 3; k++ {
				v = v<<8 | int(in[pos%len(in)])
				pos++
			}
			return v % n
		}
		tg := z.targets[rnd(len(z.targets))]
		z.run(t, tg, z.damage(tg, rnd))
	})
}
