package build

import (
	"errors"
	"fmt"
	"io"
	"time"

	"xfskit/internal/image"
	"xfskit/ondisk"
)

// ErrExists is wrapped by Run when the target holds a filesystem or
// partition table and Force is not set.
var ErrExists = errors.New("Use the -f option to force overwrite.")

// whackSize is how much mkfs.xfs zeroes at both ends of the device to
// remove other filesystems' signatures (MD RAID keeps one near the end).
const whackSize = 128 << 10

// Run does what mkfs.xfs does for o: plan, refuse to overwrite without
// Force, print the geometry (unless Quiet; only that with DryRun) to
// stdout and warnings to stderr, and write the filesystem. A new image
// file is written under a temporary name and renamed into place.
func Run(o *Options, stdout, stderr io.Writer) (*Geometry, error) {
	ti, err := ProbeTarget(o.Target)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	// Like mkfs.xfs for devices, even with -f; also for image files behind
	// a loop mount (a CI step may still hold an earlier build mounted).
	if ti.Exists && !o.DryRun {
		if m, err := image.MountedAt(ti.Path); err != nil {
			return nil, err
		} else if m != nil {
			return nil, fmt.Errorf("%s contains a mounted filesystem (mounted at %s); unmount it first", ti.Path, m.Point)
		}
	}
	// -p: read the source first; without -d size= a new image is sized
	// to hold it.
	var tree *popTree
	if o.Proto != "" {
		if tree, err = popLoad(o, ti); err != nil {
			return nil, err
		}
		if o.DataSize == "" && !ti.IsBlock && (!ti.Exists || o.DataFile) {
			if err := popSize(o, ti, tree); err != nil {
				return nil, err
			}
			s, err := newSizer(o, tree)
			if err != nil {
				return nil, err
			}
			if err := fitAutoSize(s, o); err != nil {
				return nil, err
			}
		}
	}
	g, err := Plan(o, ti)
	if err != nil {
		return nil, err
	}
	for _, w := range g.Warnings {
		fmt.Fprintln(stderr, w)
	}
	// mkfs.xfs truncates "-d file" targets before looking for signatures,
	// except in a dry run.
	replacing := g.CreateFile && ti.Exists
	if ti.Exists && ti.Size > 0 && (o.DryRun || !replacing) && !o.Force {
		if what, err := probeSignature(ti.Path); err != nil {
			return nil, err
		} else if what != "" {
			return nil, fmt.Errorf("%s appears to contain an existing filesystem (%s).\n%w", ti.Path, what, ErrExists)
		}
	}
	if !o.Quiet || o.DryRun {
		if err := g.Report(stdout, o.Target); err != nil {
			return nil, err
		}
	}
	if o.DryRun {
		return g, nil
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
		if tree != nil {
			now = tree.now // the same input gives the same image
		}
	}
	var after func(image.Device) error
	if tree != nil {
		after = func(dev image.Device) error { return popAfterFormat(dev, tree, o, now, stderr) }
	}
	if g.CreateFile {
		return g, g.formatNewFile(ti, now, after)
	}
	return g, g.formatInPlace(ti, o, now, after)
}

func probeSignature(path string) (string, error) {
	dev, err := image.Open(path, false)
	if err != nil {
		return "", err
	}
	defer dev.Close()
	return ExistingSignature(dev, dev.Size())
}

// formatNewFile writes a sparse image next to the target and renames it
// over the target, so the target is never half-written.
// after, when set, runs on the formatted device before it is closed.
func (g *Geometry) formatNewFile(ti TargetInfo, now time.Time, after func(image.Device) error) error {
	dev, err := image.CreateReplacement(ti.Path, int64(g.DBlocks)*int64(g.BlockSize))
	if err != nil {
		return err
	}
	defer dev.Abort() // no-op after Commit
	if err := g.Format(dev, now); err != nil {
		return err
	}
	if after != nil {
		if err := after(dev); err != nil {
			return err
		}
	}
	return dev.Commit()
}

// formatInPlace formats an existing image file or a block device:
// discard the old contents (unless NoDiscard), make sure every region
// that must read as zeros does, then write.
func (g *Geometry) formatInPlace(ti TargetInfo, o *Options, now time.Time, after func(image.Device) error) error {
	dev, err := image.Open(ti.Path, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	if need := int64(g.DBlocks) * int64(g.BlockSize); !dev.IsBlock() && dev.Size() < need {
		if err := dev.Truncate(need); err != nil {
			return fmt.Errorf("growing the data section: %w", err)
		}
	}
	if o.Force {
		if err := g.clearOldSecondaries(dev); err != nil {
			return err
		}
	}
	size := dev.Size()
	discarded := false
	if !o.NoDiscard {
		// Punched file holes read as zeros; discarded device blocks need not.
		discarded = dev.Discard(0, size) == nil && !dev.IsBlock()
	}
	if !discarded {
		if err := dev.ZeroRange(0, min(whackSize, size)); err != nil {
			return err
		}
		if err := dev.ZeroRange(max(size-whackSize, 0), min(whackSize, size)); err != nil {
			return err
		}
		logOff := int64(g.SB.FSBToDaddr(g.LogStart)) << ondisk.BBShift
		if err := dev.ZeroRange(logOff, int64(g.LogBlocks)*int64(g.BlockSize)); err != nil {
			return err
		}
		if err := g.zeroHeaderBlocks(dev); err != nil {
			return err
		}
	}
	if err := g.Format(dev, now); err != nil {
		return err
	}
	if after != nil {
		return after(dev)
	}
	return nil
}

// zeroHeaderBlocks clears the AG header blocks and B-tree roots, which
// Format writes only in part when sectors are smaller than blocks, and
// the root inode chunk region is written whole by Format.
func (g *Geometry) zeroHeaderBlocks(dev image.Device) error {
	buf := make([]byte, int(g.mp.preallocBlocks)*g.BlockSize)
	for agno := uint32(0); agno < g.AGCount; agno++ {
		if _, err := dev.WriteAt(buf, g.agbOffset(agno, 0)); err != nil {
			return err
		}
	}
	return nil
}

// clearOldSecondaries zeroes the secondary superblocks of an XFS
// filesystem found on the target, so xfs_repair cannot mistake them for
// ours (zero_old_xfs_structures).
func (g *Geometry) clearOldSecondaries(dev *image.File) error {
	sect := make([]byte, g.SectorSize)
	if _, err := dev.ReadAt(sect, 0); err != nil {
		return nil // too short to hold anything
	}
	old, err := ondisk.DecodeSuperblock(sect)
	if err != nil || old.MagicNum != ondisk.SBMagic || old.BlockSize == 0 || old.AGCount == 0 {
		return nil
	}
	bl := log2(int(old.BlockSize))
	if 1<<bl != int(old.BlockSize) || bl < 9 || bl > 16 || uint8(bl) != old.BlockLog {
		return nil
	}
	if old.DBlocks > uint64(old.AGCount)*uint64(old.AGBlocks) ||
		old.DBlocks < uint64(old.AGCount-1)*uint64(old.AGBlocks)+64 {
		return nil
	}
	for i := uint64(1); i < uint64(old.AGCount); i++ {
		off := int64(i*uint64(old.AGBlocks)) << bl
		if off+int64(g.SectorSize) > dev.Size() {
			break
		}
		if err := dev.ZeroRange(off, int64(g.SectorSize)); err != nil {
			return err
		}
	}
	return nil
}
