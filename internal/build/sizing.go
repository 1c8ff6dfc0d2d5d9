package build

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/ondisk"
)

// A Sizer answers, for one source tree and one set of mkfs options,
// whether `mkfs -p` succeeds at a given image size. It runs mkfs -p's own
// code — Plan, Format and populate — on an in-memory device that keeps
// only the filesystem's header blocks, placing every file's data as the
// real run would but reading none of it (a "sizing run"). The tree is
// scanned once; each Try costs the metadata work of one mkfs -p.
type Sizer struct {
	o      Options // DataSize is set per trial
	ti     TargetInfo
	tree   *popTree
	sim    *popSim
	now    time.Time
	counts TreeCounts
	// copies are the tree and its sizing data for each concurrent
	// trial (populating assigns inode numbers and mappings in the
	// tree); copies[0] is the scanned tree itself.
	copies []simCopy
	// trials holds every run made, by size: a run's outcome depends on
	// the size alone, and estimate asks again for the size AutoSize
	// has just tried.
	trials map[int64]*Trial
	// spare, when set, delivers the next copy of the tree, made on an
	// idle core while a lone run goes on. Only for a Sizer that owns its
	// tree (mkfs -p populates the tree it sized), and not when runs on
	// it write what copying reads (a prototype file's sizes).
	spare     chan simCopy
	ownTree   bool
	runsWrite bool
}

type simCopy struct {
	tree *popTree
	sim  *popSim
}

// TreeCounts describes a scanned source tree.
type TreeCounts struct {
	Inodes    int   // distinct inodes, the root included
	Dirs      int   // directories, the root included
	Files     int   // regular files (inodes)
	Symlinks  int   // symbolic links
	Special   int   // devices, FIFOs and sockets
	HardLinks int   // directory entries beyond an inode's first
	Entries   int   // directory entries
	Xattrs    int   // extended attributes kept
	DataBytes int64 // file sizes (holes included)
	Sparse    int   // files whose data ranges were looked up (holes)
}

// popSim holds what a sizing run needs beyond the scanned tree: the data
// ranges of the files that looked sparse when scanned.
type popSim struct {
	sparse map[*popNode][][2]int64
}

// ranges returns the byte ranges of n holding data, as the real run
// finds them: a file whose allocated size covers its length is taken as
// all data (an upper bound if some of it is unwritten preallocation),
// others were looked up with SEEK_DATA/SEEK_HOLE when scanned.
// The whole file's range is returned in one, which the caller owns.
func (s *popSim) ranges(n *popNode, one *[1][2]int64) [][2]int64 {
	if r, ok := s.sparse[n]; ok {
		return r
	}
	if n.size <= 0 {
		return nil
	}
	one[0] = [2]int64{0, n.size}
	return one[:]
}

// NewSizer scans o.Proto (a directory or an mkfs.xfs prototype file) for
// an image file that does not exist yet, which is how mkfs -p sizes its
// own images. Options other than Proto and the geometry are ignored.
func NewSizer(o *Options) (*Sizer, error) {
	if o.Proto == "" {
		return nil, usagef("no source directory given")
	}
	s := sizerFor(o, "(estimate)")
	t, err := popLoad(&s.o, s.ti)
	if err != nil {
		return nil, err
	}
	s.ownTree = true
	return s.scanned(t)
}

// newSizer makes a Sizer for a tree mkfs -p has already scanned.
func newSizer(o *Options, t *popTree) (*Sizer, error) {
	return sizerFor(o, "(sizing run)").scanned(t)
}

func sizerFor(o *Options, target string) *Sizer {
	s := &Sizer{o: *o, ti: TargetInfo{Path: target}}
	s.o.Target = target
	if s.o.UUID.IsZero() {
		// The UUID changes no allocation; a fixed one spares Plan the
		// random source on every trial.
		s.o.UUID = ondisk.UUID{0x65, 0x73, 0x74, 0x69, 0x6d, 0x61, 0x74, 0x65, 0x80, 1}
	}
	return s
}

// scanned completes s for the scanned tree t: counts and the data ranges
// of sparse files.
func (s *Sizer) scanned(t *popTree) (*Sizer, error) {
	s.tree, s.now = t, t.now
	s.sim = &popSim{sparse: map[*popNode][][2]int64{}}
	euid := os.Geteuid()
	var scanErr error
	walkPop(t.root, func(n, parent *popNode) error {
		if scanErr != nil || n.inode != nil {
			return nil
		}
		s.count(n)
		if n.isReg() && (n.src == "" || n.resSpec != "" || n.reserve > 0) {
			s.runsWrite = true // copyFile sets size and reserve
		}
		if !n.isReg() || n.src == "" || n.reserve > 0 || n.resSpec != "" {
			return nil
		}
		if err := popReadable(n, euid); err != nil {
			scanErr = err
			return nil
		}
		if n.blocks < n.size {
			r, err := popProbeRanges(n.src, n.size)
			if err != nil {
				scanErr = err
				return nil
			}
			s.sim.sparse[n] = r
			s.counts.Sparse++
		}
		return nil
	})
	if scanErr != nil {
		return nil, scanErr
	}
	s.counts.Entries = t.entries
	s.copies = []simCopy{{t, s.sim}}
	return s, nil
}

// count adds n (an inode's first entry) to the tree counts.
func (s *Sizer) count(n *popNode) {
	c := &s.counts
	c.Inodes++
	c.Xattrs += len(n.xattrs)
	c.HardLinks += int(n.nlink) - 1
	switch n.mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c.Dirs++
	case unix.S_IFREG:
		c.Files++
		c.DataBytes += max(n.size, n.reserve)
	case unix.S_IFLNK:
		c.Symlinks++
	default:
		c.Special++
	}
}

// popReadable reports a regular file mkfs -p could not open. Root reads
// everything; others are checked only when the mode bits leave doubt.
func popReadable(n *popNode, euid int) error {
	if euid == 0 || n.mode&0o004 != 0 || int(n.uid) == euid && n.mode&0o400 != 0 {
		return nil
	}
	if err := unix.Access(n.src, unix.R_OK); err != nil {
		return &os.PathError{Op: "open", Path: n.src, Err: err}
	}
	return nil
}

// popProbeRanges finds the data ranges of a sparse-looking file the way
// copyFile will.
func popProbeRanges(path string, size int64) ([][2]int64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	r, err := popDataRanges(fd, size)
	if err != nil {
		return nil, fmt.Errorf("%s: finding data: %w", path, err)
	}
	return r, nil
}

// Counts describes the scanned tree.
func (s *Sizer) Counts() TreeCounts { return s.counts }

// Warnings are the scanner's warnings (attributes XFS cannot hold, ...),
// which mkfs -p prints too.
func (s *Sizer) Warnings() []string { return s.tree.warnings }

// AutoSize is the image size mkfs -p picks when -d size= is not given
// (with the Options' SizeMargin), from the same function mkfs -p calls.
func (s *Sizer) AutoSize() (int64, error) {
	q := s.o
	q.DataSize = ""
	if err := popSize(&q, s.ti, s.tree); err != nil {
		return 0, err
	}
	if err := fitAutoSize(s, &q); err != nil {
		return 0, err
	}
	return strconv.ParseInt(q.DataSize, 10, 64)
}

// Plan returns the geometry mkfs -p -d size=SIZE would use.
func (s *Sizer) Plan(size int64) (*Geometry, error) {
	q := s.o
	q.DataSize = strconv.FormatInt(size, 10)
	q.Quiet, q.DryRun = true, true
	return Plan(&q, s.ti)
}

// SpaceAfterFormat is the number of blocks populating can allocate in an
// empty filesystem of geometry g: its free space B-tree records (the
// free list and the log are not part of it).
func SpaceAfterFormat(g *Geometry) (uint64, error) {
	fl, err := g.layout()
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, a := range fl.ags {
		n += uint64(a.freeblks)
	}
	return n, nil
}

// Trial is the outcome of one sizing run.
type Trial struct {
	Size     int64     // bytes asked for (-d size=)
	Geometry *Geometry // nil when the size cannot even be planned
	Fits     bool
	Err      error // why it does not fit
	Stats    PopulateStats
	// Free blocks (superblock fdblocks) of the empty filesystem and of
	// the populated one.
	FreeBefore, FreeAfter uint64
	// SpaceUsed is the number of blocks populating took from the free
	// space B-trees (free space B-tree blocks included).
	SpaceUsed uint64
	// AGFree is each AG's free space (AGF freeblks) once populated.
	AGFree []uint64
}

// Used is the number of blocks the tree takes in the filesystem.
func (t *Trial) Used() uint64 { return t.FreeBefore - t.FreeAfter }

// Try runs mkfs -p -d size=SIZE without writing anything. Whatever stops
// it (a size too small to plan, or no space left) is reported in the
// Trial, not as an error.
func (s *Sizer) Try(size int64) *Trial { return s.TryAll(size)[0] }

// TryAll runs Try for each size, at the same time on up to as many
// cores (each on its own copy of the tree). A size tried before is not
// run again: the Trial returned is the same.
func (s *Sizer) TryAll(sizes ...int64) []*Trial {
	if s.trials == nil {
		s.trials = map[int64]*Trial{}
	}
	var todo []int64
	for _, size := range sizes {
		if _, ok := s.trials[size]; !ok && !slices.Contains(todo, size) {
			todo = append(todo, size)
		}
	}
	cores := max(runtime.GOMAXPROCS(0), 1)
	n := min(len(todo), cores)
	for len(s.copies) < n {
		var c simCopy
		if s.spare != nil {
			c = <-s.spare
			s.spare = nil
		} else {
			c.tree, c.sim = s.tree.clone(s.sim)
		}
		s.copies = append(s.copies, c)
	}
	if n < cores && len(s.copies) < cores && s.spare == nil && s.ownTree && !s.runsWrite {
		// A core is idle: copy the tree there for a later pair of runs.
		// (Runs do not write what copying reads.)
		s.spare = make(chan simCopy, 1)
		go func(spare chan<- simCopy) {
			t, sim := s.tree.clone(s.sim)
			spare <- simCopy{t, sim}
		}(s.spare)
	}
	done := make([]*Trial, len(todo))
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(c simCopy) {
			defer wg.Done()
			for i := w; i < len(todo); i += n {
				done[i] = s.try(c, todo[i])
			}
		}(s.copies[w])
	}
	wg.Wait()
	for i, t := range done {
		s.trials[todo[i]] = t
	}
	out := make([]*Trial, len(sizes))
	for i, size := range sizes {
		out[i] = s.trials[size]
	}
	return out
}

func (s *Sizer) try(c simCopy, size int64) *Trial {
	t := &Trial{Size: size}
	g, err := s.Plan(size)
	if err != nil {
		t.Err = err
		return t
	}
	t.Geometry = g
	dev := &simDevice{size: int64(g.DBlocks) * int64(g.BlockSize), pages: map[int64][]byte{}}
	if err := g.Format(dev, s.now); err != nil {
		t.Err = err
		return t
	}
	dev.frozen = true
	var spaceBefore, spaceAfter uint64
	if t.FreeBefore, spaceBefore, _, err = dev.counters(g); err != nil {
		t.Err = err
		return t
	}
	stats, err := populate(dev, c.tree, &PopulateOptions{Now: s.now, sim: c.sim})
	if err != nil {
		t.Err = err
		return t
	}
	t.Stats = *stats
	if t.FreeAfter, spaceAfter, t.AGFree, err = dev.counters(g); err != nil {
		t.Err = err
		return t
	}
	t.SpaceUsed = spaceBefore - spaceAfter
	t.Fits = true
	return t
}

// resetTree clears what a populate run assigned to the tree (inode
// numbers, AGs, mappings, inherited flags), so it can run again. (A
// sizing run needs no reset first: populate clears or sets all of it.)
func resetTree(t *popTree) {
	walkPop(t.root, func(n, parent *popNode) error {
		n.ino, n.agno, n.ext = 0, 0, n.ext[:0]
		n.flags, n.flags2, n.projid, n.extsize, n.cowextsize = 0, 0, 0, 0, 0
		return nil
	})
}

// clone copies the tree's nodes (sharing names, attributes and other
// read-only contents) and the sizing data keyed by them. The copies are
// allocated together: one node, one map entry each took as long as a
// sizing run.
func (t *popTree) clone(sim *popSim) (*popTree, *popSim) {
	c := *t
	count, kidCount := 0, 0
	walkPop(t.root, func(n, parent *popNode) error {
		count++
		kidCount += len(n.kids)
		return nil
	})
	nodes := make([]popNode, count)
	kids := make([]*popNode, kidCount)
	cs := &popSim{sparse: make(map[*popNode][][2]int64, len(sim.sparse))}
	owners := map[*popNode]*popNode{} // inodes with more than one link
	var links []*popNode
	var dup func(n *popNode) *popNode
	dup = func(n *popNode) *popNode {
		d := &nodes[0]
		nodes = nodes[1:]
		// What the scan found, field by field: a run on the tree may be
		// writing the rest meanwhile, which populate clears anyway.
		d.name, d.src, d.mode, d.uid, d.gid = n.name, n.src, n.mode, n.uid, n.gid
		d.atime, d.mtime, d.ctime = n.atime, n.mtime, n.ctime
		d.rdev, d.target, d.xattrs = n.rdev, n.target, n.xattrs
		d.inode, d.nlink, d.subdirs = n.inode, n.nlink, n.subdirs
		d.size, d.blocks, d.reserve, d.resSpec = n.size, n.blocks, n.reserve, n.resSpec
		d.kids, kids = kids[:len(n.kids):len(n.kids)], kids[len(n.kids):]
		for i, k := range n.kids {
			d.kids[i] = dup(k)
		}
		if n.inode != nil {
			links = append(links, d)
		} else if n.nlink > 1 {
			owners[n] = d
		}
		if r, ok := sim.sparse[n]; ok {
			cs.sparse[d] = r
		}
		return d
	}
	c.root = dup(t.root)
	for _, d := range links {
		d.inode = owners[d.inode]
	}
	return &c, cs
}

// simDevice is the device of a sizing run: it keeps the pages Format
// writes (headers, B-tree roots, the root inode chunk), which populate
// reads back, and drops every other write once frozen; unkept pages read
// as zeros. Populate never reads back what it writes elsewhere but for
// inode chunks it revisits, whose contents a sizing run does not need.
type simDevice struct {
	size   int64
	pages  map[int64][]byte
	frozen bool
}

const simPage = 4096

func (d *simDevice) check(n int, off int64) error {
	if off < 0 || off+int64(n) > d.size {
		return fmt.Errorf("sizing device: %d bytes at offset %d outside its %d bytes", n, off, d.size)
	}
	return nil
}

func (d *simDevice) ReadAt(p []byte, off int64) (int, error) {
	if err := d.check(len(p), off); err != nil {
		return 0, err
	}
	for done := 0; done < len(p); {
		o := off + int64(done)
		in := int(o % simPage)
		k := min(len(p)-done, simPage-in)
		if pg, ok := d.pages[o/simPage]; ok {
			copy(p[done:done+k], pg[in:])
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	return len(p), nil
}

func (d *simDevice) WriteAt(p []byte, off int64) (int, error) {
	if err := d.check(len(p), off); err != nil {
		return 0, err
	}
	for done := 0; done < len(p); {
		o := off + int64(done)
		in := int(o % simPage)
		k := min(len(p)-done, simPage-in)
		pg, ok := d.pages[o/simPage]
		if !ok && !d.frozen {
			pg = make([]byte, simPage)
			d.pages[o/simPage] = pg
			ok = true
		}
		if ok {
			copy(pg[in:], p[done:done+k])
		}
		done += k
	}
	return len(p), nil
}

func (d *simDevice) Sync() error  { return nil }
func (d *simDevice) Size() int64  { return d.size }
func (d *simDevice) Close() error { return nil }
func (d *simDevice) Name() string { return "(sizing run)" }

// counters reads the superblock's free block count and the AGFs' free
// space B-tree blocks, in all and per AG.
func (d *simDevice) counters(g *Geometry) (fdblocks, agfFree uint64, perAG []uint64, err error) {
	buf := make([]byte, g.SectorSize)
	if _, err := d.ReadAt(buf, 0); err != nil {
		return 0, 0, nil, err
	}
	sb, err := ondisk.DecodeSuperblock(buf)
	if err != nil {
		return 0, 0, nil, err
	}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		if _, err := d.ReadAt(buf, g.agbOffset(agno, 0)+int64(g.SectorSize)); err != nil {
			return 0, 0, nil, err
		}
		agf, err := ondisk.DecodeAGF(buf)
		if err != nil {
			return 0, 0, nil, err
		}
		agfFree += uint64(agf.FreeBlks)
		perAG = append(perAG, uint64(agf.FreeBlks))
	}
	return sb.FDBlocks, agfFree, perAG, nil
}
