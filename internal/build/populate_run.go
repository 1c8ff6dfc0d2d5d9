package build

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/image"
	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// DefaultSizeMargin is the room added to a populated image sized to its
// tree (-p without -d size=), as a fraction of the tree's size.
const DefaultSizeMargin = 0.20

// ParseOwner parses --owner's "UID:GID".
func ParseOwner(s string) (uid, gid uint32, err error) {
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, usagef("--owner %q: expected UID:GID", s)
	}
	uv, err1 := strconv.ParseUint(u, 10, 32)
	gv, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, usagef("--owner %q: expected numeric UID:GID", s)
	}
	return uint32(uv), uint32(gv), nil
}

// popLoad reads the -p source: a directory tree or a prototype file.
func popLoad(o *Options, ti TargetInfo) (*popTree, error) {
	var st unix.Stat_t
	if err := unix.Stat(o.Proto, &st); err != nil {
		return nil, usagef("-p %s: %v", o.Proto, err)
	}
	var t *popTree
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		t, err = popScanDir(o.Proto, popTargetInode(o, ti))
	} else {
		t, err = popParseProto(o.Proto, popNow(o, &st))
	}
	if err != nil {
		return nil, err
	}
	t.now = popNow(o, &st)
	return t, nil
}

// popNow is the time stamped on new inodes: SOURCE_DATE_EPOCH (Now) when
// given, else the source's modification time, so that the same input
// gives the same image.
func popNow(o *Options, st *unix.Stat_t) time.Time {
	if !o.Now.IsZero() {
		return o.Now
	}
	return time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
}

// popNeed estimates the bytes the tree occupies in a filesystem with
// blocks of bs bytes and inodes of isize bytes.
func popNeed(t *popTree, bs, isize int64) int64 {
	var data int64
	var walk func(n *popNode)
	walk = func(n *popNode) {
		if n.inode == nil && n.isReg() {
			data += (max(n.blocks, n.reserve) + bs - 1) / bs * bs
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	walk(t.root)
	// Inode chunks, directory and attribute blocks (with slack for
	// partly filled blocks and index blocks), bmbt blocks.
	inodes := int64(t.inodes+ondisk.InodesPerChunk) * isize
	meta := t.meta*2 + int64(t.dirs)*bs + int64(t.inodes)*64
	return data + inodes + meta
}

// popSize plans a filesystem big enough for the tree plus the margin,
// replanning with a larger size until the free space after formatting
// holds it.
// fitAutoSize makes sure the size popSize chose holds the tree: popSize
// counts space, but populating also needs each AG's B-tree blocks where
// the data left room, which some geometries (small blocks, rmapbt, many
// AGs) do not leave. A sizing run (no data read, nothing written) at the
// chosen size says; while it runs out of space, the size grows by an
// eighth.
func fitAutoSize(s *Sizer, o *Options) error {
	defer resetTree(s.tree) // the real run starts afresh
	size, err := strconv.ParseInt(o.DataSize, 10, 64)
	if err != nil {
		return err
	}
	for i := 0; i < 32; i++ {
		tr := s.Try(size)
		if tr.Fits || !errors.Is(tr.Err, pack.ErrNoSpace) {
			// Other errors are the real run's to report.
			o.DataSize = strconv.FormatInt(size, 10)
			return nil
		}
		size = (size + size/8 + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return fmt.Errorf("-p %s: no size up to %d bytes holds the tree with this geometry", o.Proto, size)
}

func popSize(o *Options, ti TargetInfo, t *popTree) error {
	bs := int64(o.BlockSize)
	if bs == 0 {
		bs = 4096
	}
	isize := int64(o.InodeSize)
	if isize == 0 {
		isize = 512
	}
	margin := o.SizeMargin
	if margin < 0 {
		return usagef("--size-margin must not be negative")
	}
	want := int64(float64(popNeed(t, bs, isize)) * (1 + margin))
	size := want + want/8
	if o.AGCount == 0 && o.AGSize == "" {
		// Below 64 MiB mkfs makes a single AG, whose geometry
		// xfs_repair cannot cross-check.
		size = max(size, 64<<20)
	}
	var lastErr error
	for i := 0; i < 16; i++ {
		size = (size + 1<<20 - 1) &^ (1<<20 - 1)
		o.DataSize = strconv.FormatInt(size, 10)
		q := *o
		q.Quiet, q.DryRun = true, true
		g, err := Plan(&q, ti)
		if err != nil {
			// Too small for the geometry asked for (AG count, log,
			// block size): grow until it plans, or report why not.
			lastErr = err
			size *= 2
			continue
		}
		free := int64(g.SB.FDBlocks) * int64(g.BlockSize)
		if free >= want {
			return nil
		}
		size += want - free + size/16
	}
	if lastErr != nil {
		return lastErr
	}
	return fmt.Errorf("-p %s: could not size the filesystem for %d bytes", o.Proto, want)
}

// popAfterFormat copies the tree into the filesystem Format just wrote.
func popAfterFormat(dev image.Device, t *popTree, o *Options, now time.Time, warn io.Writer) error {
	po := &PopulateOptions{RootOwner: o.RootOwner, Now: now, Warn: warn}
	if o.OwnerUID >= 0 && o.OwnerGID >= 0 {
		po.OwnerSet, po.UID, po.GID = true, uint32(o.OwnerUID), uint32(o.OwnerGID)
	}
	if o.ClampTimes {
		c := now
		po.Clamp = &c
	}
	if _, err := populate(dev, t, po); err != nil {
		return fmt.Errorf("populating from %s: %w", o.Proto, err)
	}
	return nil
}

// popTargetInode returns the device and inode of an existing target file
// for the scan to leave out: inside the -p directory, the old image would
// be copied into the new one (GNU tar skips its own archive the same way).
// The new image is written after the scan.
func popTargetInode(o *Options, ti TargetInfo) *[2]uint64 {
	var st unix.Stat_t
	if !ti.Exists || ti.IsBlock || unix.Stat(o.Target, &st) != nil {
		return nil
	}
	return &[2]uint64{st.Dev, st.Ino}
}
