// Package estimate finds how big an XFS image a directory tree needs:
// xfs_estimate's question, answered exactly for xfskit's own `mkfs -p`.
//
// It does not model XFS space use with formulas. internal/build's Sizer
// runs mkfs -p's own planning, formatting and populating code for a
// candidate size on an in-memory device, reading no file data, and says
// whether the tree fits; this package searches for the smallest size that
// does. A first run at the size mkfs -p picks by itself measures how many
// blocks the tree takes; the smallest size whose empty filesystem has
// that much free space is then tried, and the search steps up and bisects
// when per-AG needs (inode and free space B-tree blocks, which must come
// from their own AG) make it fall a few blocks short.
package estimate

import (
	"errors"
	"fmt"
	"os"

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
	// the default --size-margin), and AutoFits whether the tree fits it.
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
		hi = 64 << 20
	}
	r.AutoBytes = hi
	var top *build.Trial
	for i := 0; top == nil; i++ {
		t := e.try(hi)
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

	// Down to the smallest size whose empty filesystem has the room the
	// tree took, refined while a run leaves blocks unused.
	best := top
	for round := 0; round < 4; round++ {
		c, err := e.minSizeFor(best.SpaceUsed + marginBlocks(best, o.Margin))
		if err != nil || c >= best.Size {
			break
		}
		t := e.try(c)
		if !e.ok(t) {
			best = e.bisect(c, best)
			break
		}
		best = t
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

// try runs mkfs -p at size bytes, refusing a lone AG unless asked for.
func (e *search) try(size int64) *build.Trial {
	e.trials++
	if g, err := e.s.Plan(size); err == nil && !e.agsOK(g) {
		return &build.Trial{Size: size, Geometry: g, Err: errSingleAG}
	}
	return e.s.Try(size)
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

// bisect finds a fitting size between lo (too small) and fit: steps up
// from lo by growing strides until a run fits, then halves the gap
// until it is within a few blocks per AG (or a thousandth of the size).
func (e *search) bisect(lo int64, fit *build.Trial) *build.Trial {
	ags := int64(fit.Geometry.AGCount)
	tol := max(8*ags*e.bs, lo/1000)
	step := max(16*ags*e.bs, lo/500)
	for {
		next := e.blocks(lo + step)
		if next >= fit.Size {
			break
		}
		t := e.try(next)
		if e.ok(t) {
			fit = t
			break
		}
		lo = next
		step *= 2
	}
	for fit.Size-lo > tol {
		mid := e.blocks(lo + (fit.Size-lo)/2)
		if mid >= fit.Size {
			break
		}
		if t := e.try(mid); e.ok(t) {
			fit = t
		} else {
			lo = mid
		}
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
		if t = e.try(size); e.ok(t) {
			return t, nil
		}
		size += r
	}
	return nil, fmt.Errorf("no multiple of %d bytes above %d fits: %w", r, best.Size, t.Err)
}
