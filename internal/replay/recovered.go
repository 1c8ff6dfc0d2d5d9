package replay

import (
	"fmt"
	"slices"
	"sort"

	"xfskit/internal/image"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// recovered is the read-only Device InMemory returns: the image with the
// replayed sectors laid over it, and its log read as the clean log Replay
// would write (computed, not held: a log can be gigabytes).
type recovered struct {
	image.Device
	ov   overlay
	keys []uint64 // the overlay's sectors, ascending
	log  *xlog.Cleared
}

func newRecovered(dev image.Device, ov overlay, log *xlog.Cleared) *recovered {
	keys := make([]uint64, 0, len(ov))
	for k := range ov {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &recovered{Device: dev, ov: ov, keys: keys, log: log}
}

// ReadAt reads the image and patches in the replayed sectors the range
// overlaps; most reads overlap none and cost one search.
func (d *recovered) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Device.ReadAt(p, off)
	if off < 0 || len(p) == 0 {
		return n, err
	}
	first := uint64(off) >> ondisk.BBShift
	end := uint64(off) + uint64(len(p))
	for i := sort.Search(len(d.keys), func(i int) bool { return d.keys[i] >= first }); i < len(d.keys); i++ {
		start := d.keys[i] << ondisk.BBShift
		if start >= end {
			break
		}
		sec := d.ov[d.keys[i]]
		patch(p, off, start, sec)
	}
	// The log, as cleared.
	lstart, lend := d.log.Start, d.log.Start+uint64(d.log.Blocks)
	var sec [ondisk.BBSize]byte
	for s := max(first, lstart); s < lend && s<<ondisk.BBShift < end; s++ {
		d.log.Block(int64(s-lstart), sec[:])
		patch(p, off, s<<ondisk.BBShift, sec[:])
	}
	return n, err
}

// patch copies sec, the sector at byte offset start, into p where it
// overlaps p's range at off.
func patch(p []byte, off int64, start uint64, sec []byte) {
	if start >= uint64(off) {
		copy(p[start-uint64(off):], sec)
	} else {
		copy(p, sec[uint64(off)-start:])
	}
}

// WriteAt refuses: the recovered state exists only in memory.
func (d *recovered) WriteAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%s: read-only (log replayed in memory): write of %d bytes at offset %d refused", d.Name(), len(p), off)
}

// Sync has nothing to write.
func (d *recovered) Sync() error { return nil }
