package replay

import (
	"fmt"
	"slices"
	"sort"

	"xfskit/internal/image"
	"xfskit/ondisk"
)

// recovered is the read-only Device InMemory returns: the image with the
// replayed sectors laid over it.
type recovered struct {
	image.Device
	ov   overlay
	keys []uint64 // the overlay's sectors, ascending
}

func newRecovered(dev image.Device, ov overlay) *recovered {
	keys := make([]uint64, 0, len(ov))
	for k := range ov {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &recovered{Device: dev, ov: ov, keys: keys}
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
		if start >= uint64(off) {
			copy(p[start-uint64(off):], sec)
		} else {
			copy(p, sec[uint64(off)-start:])
		}
	}
	return n, err
}

// WriteAt refuses: the recovered state exists only in memory.
func (d *recovered) WriteAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%s: read-only (log replayed in memory): write of %d bytes at offset %d refused", d.Name(), len(p), off)
}

// Sync has nothing to write.
func (d *recovered) Sync() error { return nil }
