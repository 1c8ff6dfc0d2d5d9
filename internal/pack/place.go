package pack

import (
	"fmt"

	"xfskit/ondisk"
)

// lblock is one logical block of a fork (a directory block or an attribute
// block: one or more filesystem blocks) to be allocated, filled and written.
type lblock struct {
	off  uint64 // logical filesystem block in the fork
	n    int    // filesystem blocks
	fill func(buf []byte, daddr uint64) error
}

// mapper hands out the blocks of allocated runs in order and builds the
// fork mapping as it goes.
type mapper struct {
	p    *Packer
	runs []Run
	ri   int
	used uint64 // blocks used of runs[ri]
	ext  []ondisk.Extent
}

type piece struct{ fsb, n uint64 }

// take maps n blocks at logical offset off to the next allocated blocks.
func (m *mapper) take(off, n uint64) ([]piece, error) {
	var out []piece
	for n > 0 {
		if m.ri >= len(m.runs) {
			return nil, fmt.Errorf("allocated blocks exhausted")
		}
		r := m.runs[m.ri]
		k := min(n, r.Len-m.used)
		fsb := r.FSB + m.used
		out = append(out, piece{fsb, k})
		m.addExtent(off, fsb, k)
		off += k
		n -= k
		m.used += k
		if m.used == r.Len {
			m.ri++
			m.used = 0
		}
	}
	return out, nil
}

func (m *mapper) addExtent(off, fsb, n uint64) {
	for n > 0 {
		if k := len(m.ext); k > 0 {
			l := &m.ext[k-1]
			if l.End() == off && l.StartBlock+l.Length == fsb && l.Length < ondisk.MaxExtLen && m.sameAG(l.StartBlock, fsb) {
				c := min(n, ondisk.MaxExtLen-l.Length)
				l.Length += c
				off, fsb, n = off+c, fsb+c, n-c
				continue
			}
		}
		c := min(n, ondisk.MaxExtLen)
		m.ext = append(m.ext, ondisk.Extent{Offset: off, StartBlock: fsb, Length: c})
		off, fsb, n = off+c, fsb+c, n-c
	}
}

// sameAG guards merges: with power-of-two AG sizes the last block of one
// AG and the first of the next have consecutive numbers.
func (m *mapper) sameAG(a, b uint64) bool {
	x, _ := m.p.sb.FSBToAG(a)
	y, _ := m.p.sb.FSBToAG(b)
	return x == y
}

// place allocates blocks for bs (given in increasing logical order), fills
// and writes each, and returns the fork mapping and the blocks used.
func (p *Packer) place(ino uint64, what string, near uint64, bs []lblock) ([]ondisk.Extent, uint64, error) {
	var total uint64
	maxn := 0
	for i, b := range bs {
		if i > 0 && b.off < bs[i-1].off+uint64(bs[i-1].n) {
			return nil, 0, fmt.Errorf("%s: %s block at file block %d out of order", where(ino), what, b.off)
		}
		total += uint64(b.n)
		maxn = max(maxn, b.n)
	}
	if total == 0 {
		return nil, 0, nil
	}
	runs, err := p.allocate(ino, what, total, near)
	if err != nil {
		return nil, 0, err
	}
	m := &mapper{p: p, runs: runs}
	buf := make([]byte, maxn*p.bs)
	for _, b := range bs {
		pieces, err := m.take(b.off, uint64(b.n))
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %s: %w", where(ino), what, err)
		}
		bb := buf[:b.n*p.bs]
		if err := b.fill(bb, p.sb.FSBToDaddr(pieces[0].fsb)); err != nil {
			return nil, 0, fmt.Errorf("%s: %s block at file block %d: %w", where(ino), what, b.off, err)
		}
		o := 0
		for _, pc := range pieces {
			n := int(pc.n) * p.bs
			if err := p.write(bb[o:o+n], pc.fsb); err != nil {
				return nil, 0, fmt.Errorf("%s: %s: %w", where(ino), what, err)
			}
			o += n
		}
	}
	return m.ext, total, nil
}
