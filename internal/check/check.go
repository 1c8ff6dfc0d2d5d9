package check

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"xfskit/internal/image"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// Options control a check run.
type Options struct {
	// Progress receives a progress display (nil: none).
	Progress io.Writer
	// Workers bounds parallel per-AG work (0: number of CPUs, at most 4).
	Workers int
	// UnlinkedLists accepts inodes on the AGI unlinked lists: a log
	// replayed in memory leaves files deleted while open there for the
	// kernel to free. The lists must be well formed: allocated inodes with
	// no links, each in its bucket, no loops; their members need no name.
	UnlinkedLists bool
	// PendingFree are the extents of unfinished extent-free intents a log
	// replayed in memory leaves for the kernel: unmapped from their file,
	// not yet free. They are accepted as in use (on filesystems without a
	// reverse-mapping B-tree, whose own pending updates are not modelled).
	PendingFree []ondisk.FreeExtent
}

// ErrNotXFS is returned when the primary superblock is unusable: nothing
// else can be checked, but it is corruption (exit 1), not an I/O error.
var ErrNotXFS = errors.New("primary superblock unusable")

// ErrMounted is returned for a filesystem mounted read-write.
var ErrMounted = errors.New("mounted read-write")

// Run checks the image at path. The error is non-nil only when the check
// could not run (I/O error, unreadable primary superblock); corruption is
// reported in the Report.
func Run(path string, opts Options) (*Report, error) {
	// Like xfs_repair -n: a read-write mount's metadata on disk lags behind
	// the kernel's, so a verdict on it would be wrong either way.
	if m, err := image.MountedAt(path); err != nil {
		return nil, err
	} else if m != nil && m.Writable {
		return nil, fmt.Errorf("%s is mounted read-write at %s: unmount it (or remount it read-only), or check a snapshot: %w", path, m.Point, ErrMounted)
	}
	fs, err := xfs.Open(path)
	if err != nil {
		var ce *ondisk.CorruptError
		if errors.As(err, &ce) {
			r := newReport()
			r.add(Finding{Structure: "superblock", AG: -1, Block: -1, Message: err.Error()})
			return r, fmt.Errorf("%w: %v", ErrNotXFS, err)
		}
		return nil, err
	}
	defer fs.Close()
	return CheckFS(fs, opts)
}

// CheckFS checks an opened filesystem.
func CheckFS(fs *xfs.FS, opts Options) (*Report, error) {
	c := &checker{fs: fs, sb: fs.SB, r: newReport(), opts: opts}
	c.r.Stats.AGs = int(fs.SB.AGCount)
	if err := c.run(); err != nil {
		return c.r, err
	}
	return c.r, nil
}

// checker holds the state of one run.
type checker struct {
	fs   *xfs.FS
	sb   *ondisk.Superblock
	r    *Report
	opts Options
	// space[agno] collects claims on the blocks of each AG.
	space []agSpace
	ags   []agInfo
	// infos holds what later phases need of every allocated inode, in
	// inode order (order[i] is the inode number of infos[i]); inode finds
	// one by binary search, cheaper than a map of 100k+ pointers.
	infos []inodeInfo
	// prefetched counts bytes hinted for read-ahead (see prefetch.go).
	prefetched int64
	dirs       []*xfs.Inode // directories, kept for the directory phase
	order      []uint64     // allocated inodes in inode order, for stable reports
	prog       *progress
	// headLSN is the log head; metadata LSNs must not be ahead of it.
	headLSN ondisk.LSN
	// totals across AGs, for the superblock counters
	freeBlocks, inodeCount, inodeFree atomic.Uint64
}

// parallelAGs runs fn for every AG on a few goroutines; the first error wins.
func (c *checker) parallelAGs(fn func(agno uint32) error) error {
	workers := c.opts.Workers
	if workers <= 0 {
		workers = min(runtime.NumCPU(), 4)
	}
	var g errgroup.Group
	g.SetLimit(workers)
	for ag := uint32(0); ag < c.sb.AGCount; ag++ {
		g.Go(func() error { return fn(ag) })
	}
	return g.Wait()
}

// isIOError tells an I/O failure (abort the run) from corruption.
func isIOError(err error) bool {
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) || errors.Is(err, xfs.ErrOutOfRange) {
		return false
	}
	var pe *os.PathError
	return errors.As(err, &pe)
}

func (c *checker) run() error {
	c.space = make([]agSpace, c.sb.AGCount)
	c.prog = newProgress(c.opts.Progress)
	defer c.prog.done()
	defer func() { c.fs.LSNHook = nil }()
	phases := []struct {
		name string
		fn   func() error
	}{
		{"superblocks", c.checkSuperblocks},
		{"log", c.checkLog},
		{"AG headers and B-trees", c.checkAGs},
		{"inodes", c.checkInodes},
		{"free inodes", c.checkFreeInodes},
		{"unlinked lists", c.checkUnlinkedLists},
		{"directories", c.checkDirectories},
		{"space map", c.checkSpace},
		{"summary counters", c.checkCounters},
	}
	for _, p := range c.extraPhases() {
		phases = append(phases, p)
	}
	for _, p := range phases {
		c.prog.phase(p.name)
		start := time.Now()
		err := p.fn()
		if os.Getenv("XFSKIT_TIMING") != "" {
			fmt.Fprintf(os.Stderr, "check: %s: %v\n", p.name, time.Since(start).Round(time.Millisecond))
		}
		if err != nil {
			if _, stop := err.(errStop); stop {
				return nil
			}
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}
