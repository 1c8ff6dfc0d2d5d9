// Package estimate finds how big an XFS image a directory tree needs:
// xfs_estimate's question, answered exactly for xfskit's own `mkfs -p`.
//
// It does not model XFS space use with formulas. internal/build's Sizer
// runs mkfs -p's own planning, formatting and populating code for a
// candidate size on an in-memory device, reading no file data, and says
// whether the tree fits; this package searches for the smallest size that
// does. A first run at the size mkfs -p picks by itself measures how many
// blocks the tree takes and how much each AG keeps free; the next size
// tried is the larger of two bounds: the smallest size whose empty
// filesystem has that many free blocks, and the size at which the AG
// with the least room left would have none (populating fills AGs by
// placement, not evenly, and an AG's inode and free space B-tree blocks
// must come from that AG). When a run falls short, the search steps up
// and bisects; every size it returns was fitted by a run.
package estimate

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"xfskit/internal/build"
)

// Options control an estimate.
type Options struct {
	// Build holds the mkfs geometry options (-b, -d, -i, -l, -m, -n, -s);
	// its Proto is set to each directory in turn.
	Build *build.Options
	// Margin is the room to leave free after populating, as a fraction
	// of the blocks the tree takes (0: as small as mkfs -p allows).
	Margin float64
	// Round, when > 0, rounds the size up to a multiple of Round bytes
	// (a size that reads well as -d size=), checked again.
	Round int64
	// Trace, when set, sees every sizing run.
	Trace func(t *build.Trial)
}

// Result is the estimate for one tree.
type Result struct {
	Dir string
	// Bytes is the image size found: a multiple of the block size at
	// which mkfs -p DIR -d size=Bytes succeeds (verified by a sizing
	// run), and within a few blocks per AG of the smallest such size.
	Bytes    int64
	Geometry *build.Geometry
	Trial    *build.Trial // the sizing run at Bytes
	// AutoBytes is the size mkfs -p DIR picks without -d size= (with
	// the default --size-margin; 0 if it finds none), and AutoFits
	// whether the tree fits it.
	AutoBytes int64
	AutoFits  bool
	Counts    build.TreeCounts
	Warnings  []string
	Trials    int // sizing runs made
}

// MarginBlocks is the number of blocks the estimate leaves free.
func (r *Result) MarginBlocks(margin float64) uint64 {
	return marginBlocks(r.Trial, margin)
}

func marginBlocks(t *build.Trial, margin float64) uint64 {
	if margin <= 0 {
		return 0
	}
	return uint64(float64(t.Used())*margin + 0.999999)
}

// errSingleAG refuses sizes mkfs plans with one AG: xfs_repair cannot
// check such a filesystem ("only one AG detected").
var errSingleAG = errors.New("a single allocation group, which xfs_repair cannot check; give -d agcount=1 to allow it")

// search holds the state of one estimate.
type search struct {
	s      *build.Sizer
	o      Options
	anyAGs bool // -d agcount= or agsize= given: take the AG count asked for
	bs     int64
	trials int
	failed []int64 // sizes that did not fit
}

// Estimate finds the image size mkfs -p needs for dir.
func Estimate(o Options, dir string) (*Result, error) {
	if o.Build == nil {
		o.Build = build.NewOptions()
	}
	if o.Margin < 0 {
		return nil, fmt.Errorf("negative margin %v", o.Margin)
	}
	// Directories only: mkfs -p would read any other file as a
	// prototype file.
	if st, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	bo := *o.Build
	bo.Proto = dir
	s, err := build.NewSizer(&bo)
	if err != nil {
		return nil, err
	}
	e := &search{s: s, o: o, anyAGs: bo.IsSet('d', "agcount") || bo.IsSet('d', "agsize")}
	r := &Result{Dir: dir, Counts: s.Counts(), Warnings: s.Warnings()}
	defer func() { r.Trials = e.trials }()

	// An upper bound: the size mkfs -p picks by itself (the same
	// function), doubled until the tree fits.
	hi, err := s.AutoSize()
	if err != nil {
		hi = 64 << 20 // mkfs -p could not size it: start somewhere
	} else {
		r.AutoBytes = hi
	}
	var top *build.Trial
	for i := 0; top == nil; i++ {
		t := e.try(hi)[0]
		if i == 0 && err == nil {
			r.AutoFits = t.Fits
		}
		switch {
		case e.ok(t):
			top = t
		case i == maxDoublings && t.Geometry == nil:
			return nil, t.Err // the options plan at no size
		case i == maxDoublings:
			return nil, fmt.Errorf("%s: no image size up to %d bytes fits the tree: %w", dir, hi, t.Err)
		default:
			hi *= 2
		}
	}
	e.bs = int64(top.Geometry.BlockSize)

	// Down from there: each round tries, at the same time, the two
	// sizes the best run so far points to (bounds below), keeping the
	// smallest that fits and the largest that does not, until neither
	// is smaller than the best; then the gap is narrowed.
	best, lo := top, int64(0)
	for round := 0; round < 8; round++ {
		var sizes []int64
		for _, c := range e.bounds(best) {
			if c > lo && c < best.Size && !slices.Contains(sizes, c) {
				sizes = append(sizes, c)
			}
		}
		if len(sizes) == 0 {
			break
		}
		best, lo = e.tryAll(best, sizes...)
	}
	if lo > 0 {
		best = e.narrow(lo, best)
	}
	if o.Round > 0 {
		if best, err = e.roundUp(best); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	r.Bytes, r.Geometry, r.Trial = best.Size, best.Geometry, best
	return r, nil
}

// maxDoublings bounds the search for a size that fits. Any failure may
// be one of size: besides running out of space, populating fails when
// one AG fills up before its own B-tree blocks are taken, which a larger
// AG cures. A tree that cannot be copied at all fails every run.
const maxDoublings = 12

// try runs mkfs -p at each size (on every core), refusing a lone AG
// unless asked for.
func (e *search) try(sizes ...int64) []*build.Trial {
	out := make([]*build.Trial, len(sizes))
	var run []int64
	for i, size := range sizes {
		if g, err := e.s.Plan(size); err == nil && !e.agsOK(g) {
			out[i] = &build.Trial{Size: size, Geometry: g, Err: errSingleAG}
		} else {
			run = append(run, size)
		}
	}
	ts := e.s.TryAll(run...)
	for i := range out {
		if out[i] == nil {
			out[i], ts = ts[0], ts[1:]
		}
	}
	e.trials += len(sizes)
	if e.o.Trace != nil {
		for _, t := range out {
			e.o.Trace(t)
		}
	}
	return out
}

// tryAll tries sizes and returns the smallest fitting run (best if none
// is smaller) and the largest size below it known not to fit (0 if none).
func (e *search) tryAll(best *build.Trial, sizes ...int64) (*build.Trial, int64) {
	for _, t := range e.try(sizes...) {
		if e.ok(t) {
			if t.Size < best.Size {
				best = t
			}
		} else {
			e.failed = append(e.failed, t.Size)
		}
	}
	lo := int64(0)
	for _, f := range e.failed {
		if f < best.Size {
			lo = max(lo, f)
		}
	}
	return best, lo
}

// bounds are the sizes a fitting run t points to. The whole filesystem
// bound c: the smallest size whose empty filesystem has the room the tree
// took. The AG bound: the size at which the AG with the least room left
// would have none (AGs are filled by placement, not evenly, and each
// AG's B-tree blocks must come from it; an AG left with nothing free
// says nothing, its trees fitted). Fitting grows with the size only
// while the AG count stays the same: a tree that needs 85 MiB as four
// AGs may fit in 51 MiB as two. So where c has fewer AGs than t, the
// largest size with fewer AGs and the smallest with t's AG count are
// tried too (the AG bound only within t's AG count).
func (e *search) bounds(t *build.Trial) []int64 {
	var out []int64
	c, err := e.minSizeFor(t.SpaceUsed + marginBlocks(t, e.o.Margin))
	if err != nil {
		return nil
	}
	out = append(out, c)
	ags := t.Geometry.AGCount
	if n, ok := e.agCount(c); ok && n != ags {
		// (AG counts need not even grow with the size: a few blocks
		// past 64 MiB give three AGs, between two and four.)
		last := e.boundary(c, t.Size, func(m uint32) bool { return m == n })
		first := e.boundary(last, t.Size, func(m uint32) bool { return m != ags }) + e.bs
		out = append(out, last, first)
	}
	if m := slices.Min(t.AGFree); m > 0 {
		g := e.blocks(t.Size - int64(m)*int64(len(t.AGFree))*e.bs)
		if n, ok := e.agCount(g); g > c && ok && n == ags {
			out = append(out, g)
		}
	}
	return out
}

// agCount is the number of AGs mkfs plans at size bytes.
func (e *search) agCount(size int64) (uint32, bool) {
	g, err := e.s.Plan(size)
	if err != nil {
		return 0, false
	}
	return g.AGCount, true
}

// boundary bisects [lo, hi) for a size (in whole blocks) whose AG count
// satisfies in while the next block's does not; in holds at lo, not at hi.
func (e *search) boundary(lo, hi int64, in func(uint32) bool) int64 {
	for hi-lo > e.bs {
		mid := e.blocks(lo + (hi-lo)/2)
		if mid >= hi {
			break
		}
		if n, ok := e.agCount(mid); ok && in(n) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func (e *search) agsOK(g *build.Geometry) bool { return e.anyAGs || g.AGCount >= 2 }

// ok reports whether a run fits and leaves the margin free.
func (e *search) ok(t *build.Trial) bool {
	return t.Fits && t.FreeAfter >= marginBlocks(t, e.o.Margin)
}

// minSizeFor returns the smallest size (in whole blocks) that plans, has
// enough AGs and whose empty filesystem has need blocks of free space.
// The free space grows with the size at most block for block, so
// stepping up by the shortfall never passes the first size that has
// room; where the size does not plan, it steps by a sixteenth. A final
// bisection takes back any overshoot of the last step.
func (e *search) minSizeFor(need uint64) (int64, error) {
	size := e.blocks(int64(need) * e.bs)
	var bad int64
	for i := 0; i < 512; i++ {
		free, ok := e.room(size)
		if ok && free >= need {
			for size-bad > e.bs {
				mid := e.blocks(bad + (size-bad)/2)
				if mid >= size {
					break
				}
				if f, ok := e.room(mid); ok && f >= need {
					size = mid
				} else {
					bad = mid
				}
			}
			return size, nil
		}
		bad = size
		if ok {
			size += int64(need-free) * e.bs
		} else {
			size = e.blocks(size + max(size/16, 1<<20))
		}
	}
	return 0, fmt.Errorf("no size with %d free blocks found", need)
}

// room is the free space of an empty filesystem of size bytes, and
// whether that size is usable at all.
func (e *search) room(size int64) (uint64, bool) {
	g, err := e.s.Plan(size)
	if err != nil || !e.agsOK(g) {
		return 0, false
	}
	free, err := build.SpaceAfterFormat(g)
	return free, err == nil
}

// blocks rounds size up to whole blocks.
func (e *search) blocks(size int64) int64 { return (size + e.bs - 1) / e.bs * e.bs }

// narrow finds a fitting size between lo (too small) and fit, to within
// 0.5% (or a few blocks per AG), two sizes a round. The first round
// tries just above lo (most often a few blocks per AG are missing) and
// just below fit (an AG bound is usually close); later rounds cut the
// gap in three. Where an AG filled up before its B-tree blocks were
// taken, fitting need not grow with the size (populating places inodes
// and data by AG); every size returned was fitted by a run all the same.
func (e *search) narrow(lo int64, fit *build.Trial) *build.Trial {
	ags := int64(fit.Geometry.AGCount)
	tol := max(8*ags*e.bs, lo/200)
	sizes := []int64{e.blocks(lo + max(16*ags*e.bs, lo/1000)), e.blocks(fit.Size - tol)}
	for i := 0; fit.Size-lo > tol && i < 16; i++ {
		var in []int64
		for _, s := range sizes {
			if s > lo && s < fit.Size && !slices.Contains(in, s) {
				in = append(in, s)
			}
		}
		if len(in) == 0 {
			break
		}
		fit, lo = e.tryAll(fit, in...)
		third := (fit.Size - lo) / 3
		sizes = []int64{e.blocks(lo + third), e.blocks(lo + 2*third)}
	}
	return fit
}

// roundUp rounds the size up to a multiple of Round that still fits:
// a larger size changes the geometry (log size, AG size), so it is
// checked again and bumped when it falls short.
func (e *search) roundUp(best *build.Trial) (*build.Trial, error) {
	r := e.o.Round
	size := (best.Size + r - 1) / r * r
	if size == best.Size {
		return best, nil
	}
	var t *build.Trial
	for i := 0; i < 8; i++ {
		if t = e.try(size)[0]; e.ok(t) {
			return t, nil
		}
		size += r
	}
	return nil, fmt.Errorf("no multiple of %d bytes above %d fits: %w", r, best.Size, t.Err)
}
