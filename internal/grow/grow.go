// Package grow grows an unmounted XFS v5 filesystem offline, as xfs_growfs
// does on a mounted one: the old last AG is extended up to the AG size and
// new AGs are added after it, then every superblock is updated. All writes
// go through an image.TxDevice, so with the undo journal (the default) a
// crash leaves the image either as it was or fully grown.
package grow

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"xfskit/internal/build"
	"xfskit/internal/image"
	"xfskit/internal/replay"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// Refusals, wrapped by the errors Run and Grow return; the front end maps
// ErrDirtyLog to exit status 2.
var (
	ErrDirtyLog    = errors.New("the log is dirty and cannot be replayed offline: mount and unmount the filesystem once, then grow again")
	ErrShrink      = errors.New("shrinking is not supported")
	ErrUnsupported = errors.New("not supported")
	ErrMounted     = errors.New("the filesystem is mounted: use xfs_growfs on the mount point, or unmount it first")
	ErrCorrupt     = errors.New("the filesystem is damaged: run check or xfs_repair first")
	ErrTooLarge    = errors.New("larger than the image or device")
	ErrInterrupted = errors.New("interrupted")
)

// MinAGBlocks is the smallest last AG growfs adds (XFS_MIN_AG_BLOCKS):
// a shorter remainder is left unused, as the kernel does.
const MinAGBlocks = 64

// maxAGCount is XFS_MAX_AGNUMBER + 1.
const maxAGCount = 0xffffffff

// Options says how to grow. The zero value with Data set grows the data
// section to the whole image file or device.
type Options struct {
	// Data grows the data section (-d, -D); without it only IMaxPct
	// changes.
	Data bool
	// Blocks is the new size in filesystem blocks (-D N); 0 with Bytes 0
	// means the size of the file or device.
	Blocks uint64
	// Bytes is the new size in bytes (-D 8g), rounded down to blocks.
	Bytes int64
	// ExtendTo first extends a regular image file to this many bytes
	// (--size); 0 leaves the file alone. Growing then defaults to the new
	// file size.
	ExtendTo int64
	// IMaxPct is the new sb_imax_pct (-m), or -1 to keep it.
	IMaxPct int
	// DryRun (-n) computes and reports the result but writes nothing.
	DryRun bool
	// NoAtomic writes in place without the undo journal (faster on block
	// devices, but a crash can leave a half-grown filesystem).
	NoAtomic bool
	// Progress, if set, is called as the work advances.
	Progress func(done, total int)
	// Stop, when closed (Ctrl-C), makes Run stop writing and roll back:
	// it returns ErrInterrupted with the image as it was.
	Stop <-chan struct{}
}

// Result describes what was (or, for a dry run, would be) done.
type Result struct {
	Image       string `json:"image"`
	DryRun      bool   `json:"dry_run"`
	Changed     bool   `json:"changed"`
	BlockSize   uint32 `json:"block_size"`
	AGBlocks    uint32 `json:"ag_blocks"`
	OldBlocks   uint64 `json:"old_blocks"`
	NewBlocks   uint64 `json:"new_blocks"`
	OldAGCount  uint32 `json:"old_agcount"`
	NewAGCount  uint32 `json:"new_agcount"`
	LastAGAdded uint32 `json:"last_ag_blocks_added"` // blocks added to the old last AG
	OldIMaxPct  int    `json:"old_imaxpct"`
	NewIMaxPct  int    `json:"new_imaxpct"`
	FreeAdded   uint64 `json:"free_blocks_added"`
	FreeBlocks  uint64 `json:"free_blocks"` // sb_fdblocks afterwards
	ImageSize   int64  `json:"image_size"`  // bytes, after any extension
	Extended    bool   `json:"extended"`    // the image file was extended
	// Notes explain adjustments (an unused tail, nothing to do).
	Notes []string `json:"notes,omitempty"`

	// Geometry is the filesystem before growing, for the report.
	Geometry *build.Geometry `json:"-"`
	// LogReplay is set when a dirty log was replayed before growing.
	LogReplay *replay.Result `json:"log_replay,omitempty"`
}

// Run grows the filesystem in the image file or block device at path.
func Run(path string, o Options) (*Result, error) {
	tg, err := image.Probe(path)
	if err != nil {
		return nil, err
	}
	if !tg.Exists {
		return nil, fmt.Errorf("%s: no such file or device", path)
	}
	if o.ExtendTo > 0 && tg.IsBlock {
		return nil, fmt.Errorf("%s: --size: a block device cannot be extended; grow to its size with -d: %w", path, ErrUnsupported)
	}
	if mnt, err := image.MountedAt(path); err != nil {
		return nil, err
	} else if mnt != nil {
		return nil, fmt.Errorf("%s: mounted at %s: %w", path, mnt.Point, ErrMounted)
	}
	var dev image.TxDevice
	if o.DryRun {
		if _, err := os.Lstat(path + image.UndoSuffix); err == nil {
			return nil, fmt.Errorf("%s: an interrupted edit left %s; run without -n to roll it back first", path, path+image.UndoSuffix)
		}
		f, err := image.Open(path, false)
		if err != nil {
			return nil, err
		}
		dev = readOnly{f}
	} else if dev, err = image.OpenWrite(path, !o.NoAtomic); err != nil {
		return nil, err
	}
	if o.Stop != nil && !o.DryRun {
		dev = stoppable{dev, o.Stop}
	}
	res, err := growRecovered(dev, o)
	if err == nil && !o.DryRun {
		if err = stopped(o.Stop); err == nil {
			err = dev.Commit()
		} else {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		// An undo device rolls back what it wrote; in place, nothing
		// can be undone (and nothing is written before the checks).
		rerr := dev.Rollback()
		switch {
		case errors.Is(err, ErrInterrupted) && rerr == nil:
			err = fmt.Errorf("%w: the image is unchanged", err)
		case errors.Is(err, ErrInterrupted) && errors.Is(rerr, image.ErrNotAtomic):
			err = fmt.Errorf("%w with --atomic=no: the filesystem may be left half grown; run check", err)
		case rerr != nil && !errors.Is(rerr, image.ErrNotAtomic):
			err = errors.Join(err, rerr)
		}
		dev.Close()
		return nil, err
	}
	return res, dev.Close()
}

// growRecovered grows the filesystem on dev, first replaying a dirty log
// as mounting it would (xfs_growfs needs a mount): into dev, so that the
// replay and the growth are one edit of the undo journal, or for a dry run
// in memory. Logs replay cannot finish are refused with ErrDirtyLog.
func growRecovered(dev image.TxDevice, o Options) (*Result, error) {
	fs, err := xfs.OpenDevice(dev)
	if err != nil {
		return Grow(dev, o) // Grow reports it
	}
	st, err := xlog.Find(fs)
	if err != nil || st.Clean {
		return Grow(dev, o)
	}
	var g image.Device = dev
	var rr *replay.Result
	if o.DryRun {
		g, rr, err = replay.InMemory(dev)
	} else {
		rr, err = replay.Replay(dev)
	}
	var ce *ondisk.CorruptError
	switch {
	case errors.Is(err, replay.ErrUnsupported) || errors.As(err, &ce):
		return nil, fmt.Errorf("%s: %w (%v)", dev.Name(), ErrDirtyLog, err)
	case err != nil:
		return nil, err // I/O, or interrupted (Run rolls back)
	}
	res, err := Grow(g, o)
	if err != nil {
		return nil, err
	}
	res.LogReplay = rr
	res.Notes = append([]string{fmt.Sprintf("the log was dirty: %d transactions replayed first, as mounting would", rr.Transactions)}, res.Notes...)
	return res, nil
}

// stoppable fails every write once stop is closed, so that an interrupted
// grow ends at its next write and is rolled back.
type stoppable struct {
	image.TxDevice
	stop <-chan struct{}
}

func (s stoppable) WriteAt(p []byte, off int64) (int, error) {
	if err := stopped(s.stop); err != nil {
		return 0, err
	}
	return s.TxDevice.WriteAt(p, off)
}

func stopped(stop <-chan struct{}) error {
	select {
	case <-stop:
		return ErrInterrupted
	default:
		return nil
	}
}

// readOnly is a TxDevice for dry runs: it never commits anything.
type readOnly struct{ image.Device }

func (readOnly) Commit() error   { return nil }
func (readOnly) Rollback() error { return nil }

// Grow grows the filesystem on dev; the caller commits (or rolls back) the
// writes. Every check runs before the first write.
func Grow(dev image.Device, o Options) (*Result, error) {
	name := dev.Name()
	fs, err := xfs.OpenDevice(dev)
	if err != nil {
		var ce *ondisk.CorruptError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
		return nil, err
	}
	sb := fs.SB
	switch {
	case sb.InProgress != 0:
		return nil, fmt.Errorf("%s: superblock says mkfs has not finished (sb_inprogress): %w", name, ErrCorrupt)
	case sb.LogStart == 0:
		return nil, fmt.Errorf("%s: the filesystem has an external log, which xfskit cannot check: %w", name, ErrUnsupported)
	case sb.FeaturesIncompat&ondisk.IncompatNeedsRepair != 0:
		return nil, fmt.Errorf("%s: the superblock is flagged as needing repair (needsrepair): %w", name, ErrCorrupt)
	case sb.FeaturesIncompat&ondisk.IncompatMetadir != 0:
		return nil, fmt.Errorf("%s: the filesystem has a metadata directory tree (metadir), whose AGs xfskit cannot write: %w", name, ErrUnsupported)
	case sb.RBlocks != 0 || sb.RExtents != 0:
		return nil, fmt.Errorf("%s: the filesystem has a realtime section: %w", name, ErrUnsupported)
	case sb.AGBlocks < MinAGBlocks || sb.AGCount == 0:
		return nil, fmt.Errorf("%s: superblock: %d AGs of %d blocks: %w", name, sb.AGCount, sb.AGBlocks, ErrCorrupt)
	}
	if p := sb.FieldProblems(); len(p) > 0 {
		return nil, fmt.Errorf("%s: superblock: %s: %w", name, strings.Join(p, "; "), ErrCorrupt)
	}
	if err := checkSecondaries(fs); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	st, err := xlog.Find(fs)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the log: %w", name, err)
	}
	if !st.Clean {
		return nil, fmt.Errorf("%s: %w", name, ErrDirtyLog)
	}

	bs := uint64(sb.BlockSize)
	size := dev.Size()
	res := &Result{Image: name, DryRun: o.DryRun, BlockSize: sb.BlockSize, AGBlocks: sb.AGBlocks,
		OldBlocks: sb.DBlocks, OldAGCount: sb.AGCount, OldIMaxPct: int(sb.IMaxPct), ImageSize: size}
	if o.ExtendTo > 0 {
		if o.ExtendTo < size {
			return nil, fmt.Errorf("%s: --size %d is smaller than the image (%d bytes): %w", name, o.ExtendTo, size, ErrShrink)
		}
		res.Extended = o.ExtendTo > size
		size = o.ExtendTo
		res.ImageSize = size
	}
	devBlocks := uint64(size) / bs
	want := sb.DBlocks
	if o.Data {
		switch {
		case o.Blocks != 0:
			want = o.Blocks
		case o.Bytes != 0:
			want = uint64(o.Bytes) / bs
		default:
			want = devBlocks
		}
	}
	if want > devBlocks {
		return nil, fmt.Errorf("%s: data size %d blocks too large, maximum is %d (extend an image file first with --size or truncate): %w", name, want, devBlocks, ErrTooLarge)
	}
	if want < sb.DBlocks {
		return nil, fmt.Errorf("%s: data size %d blocks is smaller than the filesystem (%d blocks): %w", name, want, sb.DBlocks, ErrShrink)
	}
	res.NewIMaxPct = res.OldIMaxPct
	if o.IMaxPct >= 0 {
		if o.IMaxPct > 100 {
			return nil, fmt.Errorf("imaxpct %d: must be 0 to 100", o.IMaxPct)
		}
		res.NewIMaxPct = o.IMaxPct
	}

	// xfs_growfs_data_private: a remainder too small for an AG is dropped.
	nb := want
	nagcount := nb / uint64(sb.AGBlocks)
	if mod := nb % uint64(sb.AGBlocks); mod >= MinAGBlocks {
		nagcount++
	} else if mod != 0 {
		nb = nagcount * uint64(sb.AGBlocks)
		res.Notes = append(res.Notes, fmt.Sprintf("the last %d blocks are left unused: an AG needs at least %d", mod, MinAGBlocks))
	}
	if nagcount > maxAGCount {
		nagcount = maxAGCount
		nb = nagcount * uint64(sb.AGBlocks)
	}
	if nb <= sb.DBlocks {
		nb, nagcount = sb.DBlocks, uint64(sb.AGCount)
	}
	res.NewBlocks, res.NewAGCount = nb, uint32(nagcount)
	if res.Geometry, err = build.FromSuperblock(sb); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if res.Extended && !o.DryRun {
		// Through the device, so that a rollback cuts the file back.
		if _, err := dev.WriteAt([]byte{0}, res.ImageSize-1); err != nil {
			return nil, fmt.Errorf("%s: extending the image to %d bytes: %w", name, res.ImageSize, err)
		}
	}
	if nb == sb.DBlocks && res.NewIMaxPct == res.OldIMaxPct {
		if o.Data {
			res.Notes = append(res.Notes, "data size unchanged, skipping")
		}
		if o.IMaxPct >= 0 {
			res.Notes = append(res.Notes, "inode max pct unchanged, skipping")
		}
		res.FreeBlocks = sb.FDBlocks
		return res, nil
	}

	// The new superblock, and what the old last AG gains.
	oagcount := sb.AGCount
	lastOld := sb.AGLength(oagcount - 1)
	if lastOld > sb.AGBlocks {
		return nil, fmt.Errorf("%s: superblock: last AG of %d blocks, larger than the AG size %d: %w", name, lastOld, sb.AGBlocks, ErrCorrupt)
	}
	lastNew := lastOld
	if res.NewAGCount > oagcount {
		lastNew = sb.AGBlocks
	} else {
		lastNew = uint32(nb - uint64(oagcount-1)*uint64(sb.AGBlocks))
	}
	res.LastAGAdded = lastNew - lastOld
	var last *lastAG
	if lastNew > lastOld {
		if last, err = planLastAG(fs, oagcount-1, lastNew); err != nil {
			var ce *ondisk.CorruptError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("%s: %w: %w", name, err, ErrCorrupt)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	nsb := *sb
	nsb.DBlocks, nsb.AGCount, nsb.IMaxPct = nb, res.NewAGCount, uint8(res.NewIMaxPct)
	g, err := build.FromSuperblock(&nsb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	agLen := func(agno uint32) uint32 { return nsb.AGLength(agno) }
	added := uint64(res.LastAGAdded)
	for agno := oagcount; agno < res.NewAGCount; agno++ {
		added += uint64(agLen(agno) - g.AGPreallocBlocks())
	}
	nsb.FDBlocks += added
	g.SB = nsb
	res.FreeAdded, res.FreeBlocks = added, nsb.FDBlocks
	res.Changed = true
	if o.DryRun {
		return res, nil
	}

	// Writes. With the undo journal their order does not matter; in place
	// it limits the damage of a crash: new AGs first (beyond the old
	// end, unseen until the superblock says so), the primary superblock
	// last.
	total := int(res.NewAGCount) // new AGs, old secondaries, the primary
	step := 0
	progress := func() {
		step++
		if o.Progress != nil {
			o.Progress(step, total)
		}
	}
	for agno := res.NewAGCount - 1; agno >= oagcount; agno-- {
		if _, err := g.WriteNewAG(dev, agno, agLen(agno)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		progress()
	}
	if last != nil {
		if err := last.write(&nsb, dev); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	// Every superblock now describes the grown filesystem, as
	// xfs_update_secondary_sbs leaves them: the primary's contents in a
	// zeroed sector. The new AGs got theirs with their headers.
	ss := int(sb.SectSize)
	sect := make([]byte, ss)
	for agno := uint32(1); agno < oagcount; agno++ {
		clear(sect)
		nsb.Encode(sect)
		if _, err := dev.WriteAt(sect, int64(nsb.AGBToDaddr(agno, 0))<<ondisk.BBShift); err != nil {
			return nil, fmt.Errorf("%s: AG %d: writing the superblock: %w", name, agno, err)
		}
		progress()
	}
	if _, err := dev.ReadAt(sect, 0); err != nil {
		return nil, fmt.Errorf("%s: reading the primary superblock: %w", name, err)
	}
	nsb.Encode(sect)
	if _, err := dev.WriteAt(sect, 0); err != nil {
		return nil, fmt.Errorf("%s: writing the primary superblock: %w", name, err)
	}
	progress()
	return res, nil
}

// Report prints the result the way xfs_growfs does: the geometry before
// growing (as xfs_info shows it), then what changed.
func (r *Result) Report(w io.Writer, name string) error {
	if r.Geometry != nil {
		if err := r.Geometry.Report(w, name); err != nil {
			return err
		}
	}
	verb := "changed"
	if r.DryRun {
		verb = "would change"
	}
	if r.Extended {
		ext := "extended"
		if r.DryRun {
			ext = "would be extended"
		}
		fmt.Fprintf(w, "image %s %s to %d bytes\n", name, ext, r.ImageSize)
	}
	if r.NewBlocks != r.OldBlocks {
		fmt.Fprintf(w, "data blocks %s from %d to %d\n", verb, r.OldBlocks, r.NewBlocks)
	}
	if r.NewIMaxPct != r.OldIMaxPct {
		fmt.Fprintf(w, "inode max percent %s from %d to %d\n", verb, r.OldIMaxPct, r.NewIMaxPct)
	}
	return nil
}

// checkSecondaries refuses a primary superblock that the secondaries of
// AGs 1 and 2 (those that read back valid) all contradict on the fields
// every copy shares: growing writes the primary into every secondary,
// which would erase the copies xfs_repair recovers a damaged primary
// from. One disagreeing secondary next to one that agrees is the damaged
// one, and growing rewrites it.
func checkSecondaries(fs *xfs.FS) error {
	sb := fs.SB
	var diffs []string
	diffAG := uint32(0)
	for ag := uint32(1); ag < sb.AGCount && ag <= 2; ag++ {
		buf, err := fs.ReadAGHeader(ag, 0)
		if err != nil {
			return fmt.Errorf("AG %d superblock: %w", ag, err)
		}
		s, err := ondisk.DecodeSuperblock(buf)
		if err == nil {
			err = s.Verify(buf, fmt.Sprintf("AG %d", ag))
		}
		if err != nil {
			continue // damaged itself: growing rewrites it
		}
		d := ondisk.SharedDiffs(sb, s)
		if len(d) == 0 {
			return nil
		}
		if diffs == nil {
			diffs, diffAG = d, ag
		}
	}
	if diffs != nil {
		return fmt.Errorf("the primary superblock disagrees with the secondary of AG %d (primary/secondary: %s): %w", diffAG, strings.Join(diffs, ", "), ErrCorrupt)
	}
	return nil
}
