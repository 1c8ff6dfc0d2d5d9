package xfs

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"xfskit/ondisk"
)

// File reads the data of a regular file. It holds the file's data extent
// map (32 bytes per extent) and reads straight into callers' buffers,
// one device read per physically contiguous run.
type File struct {
	fs   *FS
	ip   *Inode
	ext  []ondisk.Extent
	size int64
}

// OpenFile loads the extent map of a regular file for reading.
func (f *FS) OpenFile(ip *Inode) (*File, error) {
	if !ip.IsReg() {
		return nil, fmt.Errorf("inode %d: not a regular file (mode 0%o)", ip.Ino, ip.Mode)
	}
	if ip.Flags&ondisk.DiflagRealtime != 0 {
		return nil, fmt.Errorf("inode %d: realtime files are not supported", ip.Ino)
	}
	ext, err := f.Extents(ip, false)
	if err != nil {
		return nil, err
	}
	return &File{fs: f, ip: ip, ext: ext, size: int64(ip.Size)}, nil
}

// ReadAt reads a regular file's data at byte offset off: holes and
// unwritten extents read as zeros, reads stop at EOF (with io.EOF). It
// loads the extent map on each call; use OpenFile for repeated reads.
func (f *FS) ReadAt(ip *Inode, p []byte, off int64) (int, error) {
	r, err := f.OpenFile(ip)
	if err != nil {
		return 0, err
	}
	return r.ReadAt(p, off)
}

// Size is the file size in bytes.
func (r *File) Size() int64 { return r.size }

// Inode is the file's inode.
func (r *File) Inode() *Inode { return r.ip }

// Extents is the file's data extent map (do not modify).
func (r *File) Extents() []ondisk.Extent { return r.ext }

// SectionReader returns an io.SectionReader over the whole file.
func (r *File) SectionReader() *io.SectionReader { return io.NewSectionReader(r, 0, r.size) }

// ReadAt implements io.ReaderAt.
func (r *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("inode %d: read at negative offset %d", r.ip.Ino, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > r.size-off {
		n = int(r.size - off)
	}
	if err := r.fill(p[:n], off); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill reads file bytes [off, off+len(p)), all inside the file size.
func (r *File) fill(p []byte, off int64) error {
	bl := r.fs.SB.BlockLog
	end := off + int64(len(p))
	// First extent ending after off.
	i := sort.Search(len(r.ext), func(i int) bool { return int64(r.ext[i].End())<<bl > off })
	pos := off
	// Pending device read, grown while runs stay contiguous on disk.
	var pend struct {
		dev  int64
		from int64 // file offset where the pending read starts
		n    int64
	}
	flush := func() error {
		if pend.n == 0 {
			return nil
		}
		s := p[pend.from-off : pend.from-off+pend.n]
		pend.n = 0
		return r.fs.readBytes(s, pend.dev, r.ip.Ino)
	}
	for pos < end {
		if i >= len(r.ext) || int64(r.ext[i].Offset)<<bl >= end {
			if err := flush(); err != nil {
				return err
			}
			clear(p[pos-off:]) // trailing hole
			return nil
		}
		e := r.ext[i]
		es := int64(e.Offset) << bl
		if es > pos { // hole before this extent
			if err := flush(); err != nil {
				return err
			}
			clear(p[pos-off : es-off])
			pos = es
		}
		stop := min(int64(e.End())<<bl, end)
		if e.Unwritten {
			if err := flush(); err != nil {
				return err
			}
			clear(p[pos-off : stop-off])
		} else {
			dev := int64(r.fs.SB.FSBToDaddr(e.StartBlock))<<ondisk.BBShift + (pos - es)
			if pend.n > 0 && pend.dev+pend.n == dev && pend.from+pend.n == pos {
				pend.n += stop - pos
			} else {
				if err := flush(); err != nil {
					return err
				}
				pend.dev, pend.from, pend.n = dev, pos, stop-pos
			}
		}
		pos = stop
		i++
	}
	return flush()
}

// readBytes reads len(p) bytes at device byte offset dev, which must lie
// inside the data device.
func (f *FS) readBytes(p []byte, dev int64, ino uint64) error {
	limit := int64(f.SB.DBlocks) << f.SB.BlockLog
	if dev < 0 || dev+int64(len(p)) > limit {
		return fmt.Errorf("inode %d: read of %d bytes at byte %d: %w", ino, len(p), dev, ErrOutOfRange)
	}
	if _, err := f.Dev.ReadAt(p, dev); err != nil {
		return fmt.Errorf("inode %d: %w", ino, err)
	}
	return nil
}

// CopyBufSize is the buffer WriteTo streams through.
const CopyBufSize = 1 << 20

// WriteTo streams the whole file to w through a 1 MiB buffer.
func (r *File) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, min(int64(CopyBufSize), max(r.size, 1)))
	var done int64
	for done < r.size {
		n, err := r.ReadAt(buf, done)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			done += int64(m)
			if werr != nil {
				return done, werr
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return done, err
		}
		if n == 0 {
			break
		}
	}
	return done, nil
}

// RunKind says what a byte range of a file holds.
type RunKind uint8

const (
	RunData      RunKind = iota // written blocks
	RunHole                     // nothing allocated; reads as zeros
	RunUnwritten                // allocated but unwritten; reads as zeros
)

func (k RunKind) String() string {
	switch k {
	case RunData:
		return "data"
	case RunHole:
		return "hole"
	case RunUnwritten:
		return "unwritten"
	}
	return fmt.Sprintf("RunKind(%d)", uint8(k))
}

// Run is a byte range [Off, Off+Len) of a file with one kind of content.
type Run struct {
	Off, Len int64
	Kind     RunKind
}

// DataMap describes [0, size) as alternating runs of data, holes and
// unwritten space, adjacent runs of one kind merged, clipped at EOF (space
// preallocated beyond EOF is not reported). Dump tools copy RunData and
// recreate the rest as holes.
func (r *File) DataMap() []Run {
	var out []Run
	m := runMerger{size: r.size, bl: r.fs.SB.BlockLog, emit: func(x Run) error { out = append(out, x); return nil }}
	for _, e := range r.ext {
		if m.extent(e) != nil {
			break
		}
	}
	m.finish()
	return out
}

// WalkDataMap is DataMap for files with huge extent maps: it streams the
// runs to fn while walking the bmbt, holding one tree path in memory.
func (f *FS) WalkDataMap(ip *Inode, fn func(Run) error) error {
	if !ip.IsReg() {
		return fmt.Errorf("inode %d: not a regular file (mode 0%o)", ip.Ino, ip.Mode)
	}
	m := runMerger{size: int64(ip.Size), bl: f.SB.BlockLog, emit: fn}
	err := f.WalkExtents(ip, false, m.extent)
	if err != nil && !errors.Is(err, errPastEOF) {
		return err
	}
	return m.finish()
}

var errPastEOF = errors.New("extent past EOF")

// runMerger turns extents in file order into merged runs clipped at size,
// holding back the last run until it can no longer grow.
type runMerger struct {
	size int64
	bl   uint8
	pos  int64
	cur  Run
	emit func(Run) error
}

func (m *runMerger) add(off, end int64, k RunKind) error {
	end = min(end, m.size)
	if end <= off {
		return nil
	}
	if m.cur.Len > 0 && m.cur.Kind == k && m.cur.Off+m.cur.Len == off {
		m.cur.Len = end - m.cur.Off
		return nil
	}
	if m.cur.Len > 0 {
		if err := m.emit(m.cur); err != nil {
			return err
		}
	}
	m.cur = Run{Off: off, Len: end - off, Kind: k}
	return nil
}

func (m *runMerger) extent(e ondisk.Extent) error {
	s, t := int64(e.Offset)<<m.bl, int64(e.End())<<m.bl
	if s >= m.size {
		return errPastEOF
	}
	if err := m.add(m.pos, s, RunHole); err != nil {
		return err
	}
	k := RunData
	if e.Unwritten {
		k = RunUnwritten
	}
	m.pos = t
	return m.add(s, t, k)
}

func (m *runMerger) finish() error {
	if err := m.add(m.pos, m.size, RunHole); err != nil {
		return err
	}
	if m.cur.Len > 0 {
		return m.emit(m.cur)
	}
	return nil
}

// DataMap is the data/hole map of a regular file; see File.DataMap.
func (f *FS) DataMap(ip *Inode) ([]Run, error) {
	r, err := f.OpenFile(ip)
	if err != nil {
		return nil, err
	}
	return r.DataMap(), nil
}
