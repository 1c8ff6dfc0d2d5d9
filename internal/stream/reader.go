package stream

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Name identifies the stream in errors and damage reports (NewReader;
	// NewMediaReader uses the media names). Default "stream".
	Name string
	// MaxDirBytes caps the memory for one directory's entries (default 1 GiB).
	MaxDirBytes int64
	// MaxXattrBytes caps the memory for one inode's xattrs (default 64 MiB).
	MaxXattrBytes int64
	// KeepIndex keeps the trailing index for Index().
	KeepIndex bool
	// BlockSize, if not zero, makes every Read on the media ask for a
	// multiple of this many bytes (tape devices need reads of whole
	// records). It need not match the block size the stream was written
	// with, but must be a multiple of it for tapes.
	BlockSize int
	// ReadAhead is how many chunks are inflated ahead on other goroutines
	// while the caller consumes the current one: 0 picks 3 × GOMAXPROCS
	// (4 to 64, and at most 64 MiB of buffers) unless the media headers
	// say the stream is uncompressed; a negative value inflates every
	// chunk in place on the caller's goroutine. The results are the same
	// either way.
	ReadAhead int

	noCRC      bool // fuzzing: skip CRC checks to reach deeper code
	noChunkCRC bool // tests: skip only chunk CRCs to exercise record-level resync
}

// ErrNotStream is returned when the input has neither a valid media header
// nor any valid chunk.
var ErrNotStream = errors.New("stream: not an xfskit dump stream")

// ErrReaderClosed is returned by a Reader (and its Files) after Close.
var ErrReaderClosed = errors.New("stream: reader is closed")

// Reader reads a stream record by record. It never panics on bad input; it
// skips damaged parts, resynchronises on the next good record and lists
// what was lost in Damage.
type Reader struct {
	opts  ReaderOptions
	rr    *recReader
	hdr   Header
	hdrOK bool

	peeked *record
	damage []*Damage

	openIno  uint64 // inode whose group is being read (0: none)
	cur      *File
	chain    uint32
	records  uint64
	dirs     uint64
	files    uint64
	links    uint64
	data     uint64
	xattrs   uint64
	idxCount uint64
	index    []IndexEntry

	trailer  *Trailer
	eofSeen  bool
	done     bool
	complete bool
	closed   bool
}

// NewReader reads a single-media stream (or the first media file of a
// split stream; use NewMediaReader for all of them).
func NewReader(r io.Reader, opts ReaderOptions) (*Reader, error) {
	if opts.Name == "" {
		opts.Name = "stream"
	}
	return NewMediaReader([]Media{{Name: opts.Name, R: r}}, opts)
}

// NewMediaReader reads a stream split over several media files, given in
// any order. Media files must belong to the same session and stream;
// missing ones are reported as damage.
func NewMediaReader(media []Media, opts ReaderOptions) (*Reader, error) {
	if len(media) == 0 {
		return nil, errors.New("stream: no media files")
	}
	if opts.MaxDirBytes <= 0 {
		opts.MaxDirBytes = 1 << 30
	}
	if opts.MaxXattrBytes <= 0 {
		opts.MaxXattrBytes = 64 << 20
	}
	if opts.BlockSize < 0 || opts.BlockSize > MaxBlockSize {
		return nil, fmt.Errorf("stream: read block size %d out of range", opts.BlockSize)
	}
	cs, err := openMedia(media, opts.noCRC, opts.BlockSize)
	if err != nil {
		return nil, err
	}
	cs.skipCRC = opts.noCRC || opts.noChunkCRC
	if opts.ReadAhead > 0 || opts.ReadAhead == 0 && !allUncompressed(cs) {
		cs.dec.ra = newReadAhead(cs, opts.ReadAhead)
	}
	r := &Reader{opts: opts, rr: &recReader{cs: cs, noCRC: opts.noCRC}}
	rec, err := r.read()
	if err == io.EOF {
		if !cs.anyGood {
			return nil, fmt.Errorf("%w: %s", ErrNotStream, media[0].Name)
		}
		r.done = true
		return r, nil
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	if !cs.anyGood {
		r.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotStream, media[0].Name)
	}
	if rec.hdr.typ == recHeader {
		h, err := decodeHeader(rec.payload)
		if err != nil {
			r.protocol(&rec, "stream header: "+err.Error())
		} else {
			r.hdr, r.hdrOK = h, true
		}
	} else {
		r.unread(rec)
	}
	return r, nil
}

// allUncompressed reports whether the media headers say the stream is
// stored uncompressed (then there is nothing to inflate ahead).
func allUncompressed(cs *chunkSource) bool {
	n := 0
	for _, m := range cs.media {
		if m.hdrOK {
			if m.hdr.compression != CompressNone {
				return false
			}
			n++
		}
	}
	return n > 0
}

// Close stops the read-ahead goroutines and frees their buffers; it does
// not close the media readers. A Reader that has returned io.EOF has
// stopped them already, and one that is dropped without Close leaves no
// goroutine behind once the few chunks queued ahead are done, but Close
// frees the memory sooner. After Close, Next and NextExtent return
// ErrReaderClosed.
func (r *Reader) Close() error {
	if !r.closed {
		r.closed = true
		r.rr.cs.dec.close()
	}
	return nil
}

// Header returns the stream header. ok is false if it was lost to damage.
func (r *Reader) Header() (h Header, ok bool) { return r.hdr, r.hdrOK }

// Damage returns everything found wrong so far, in stream order.
func (r *Reader) Damage() []Damage {
	out := make([]Damage, len(r.damage))
	for i, d := range r.damage {
		out[i] = *d
		if len(d.Inos) > 0 {
			inos := append([]uint64(nil), d.Inos...)
			sort.Slice(inos, func(a, b int) bool { return inos[a] < inos[b] })
			k := 0
			for j, v := range inos {
				if j == 0 || v != inos[k-1] {
					inos[k] = v
					k++
				}
			}
			out[i].Inos = inos[:k]
		}
	}
	return out
}

// Complete reports whether the whole stream was read up to a verified
// trailer without any damage.
func (r *Reader) Complete() bool { return r.complete && len(r.damage) == 0 }

// Trailer returns the trailer once Next has returned io.EOF (ok is false if
// the stream had no readable trailer).
func (r *Reader) Trailer() (t Trailer, ok bool) {
	if r.trailer == nil {
		return Trailer{}, false
	}
	return *r.trailer, true
}

// Index returns the trailing index (only with ReaderOptions.KeepIndex, after
// Next returned io.EOF).
func (r *Reader) Index() []IndexEntry { return r.index }

func (r *Reader) unread(rec record) {
	rec.dmg = nil // already recorded
	r.peeked = &rec
}

// read returns the next verified record and records damage found before it.
func (r *Reader) read() (record, error) {
	if r.peeked != nil {
		rec := *r.peeked
		r.peeked = nil
		return rec, nil
	}
	if r.closed {
		return record{}, ErrReaderClosed
	}
	rec, err := r.rr.next()
	r.collectExtra()
	if err == io.EOF && !r.eofSeen {
		r.eofSeen = true
		r.noteTruncation()
		r.stopReadAhead()
	}
	if err != nil {
		return rec, err
	}
	var cb [4]byte
	le.PutUint32(cb[:], rec.hdr.crc)
	if rec.hdr.typ != recTrailer {
		r.chain = crcUpdate(r.chain, cb[:])
	}
	r.records++
	if rec.dmg != nil {
		if r.openIno != 0 {
			rec.dmg.Inos = append(rec.dmg.Inos, r.openIno)
		}
		switch rec.hdr.typ {
		case recXattrs, recDirents, recData, recInodeEnd:
			rec.dmg.Inos = append(rec.dmg.Inos, rec.hdr.ino)
		}
		r.damage = append(r.damage, rec.dmg)
	}
	return rec, nil
}

// noteTruncation records that the stream ended without a trailer, unless
// a damage entry already says the stream was cut.
func (r *Reader) noteTruncation() {
	if r.trailer != nil {
		return
	}
	if n := len(r.damage); n > 0 && r.damage[n-1].Lost < 0 {
		return
	}
	media, phys := r.rr.where(r.rr.goodEnd)
	if media == "" {
		media = r.opts.Name
	}
	d := &Damage{Media: media, Offset: phys, Logical: r.rr.goodEnd, Lost: -1, FirstRecord: r.rr.expSeq, Records: -1,
		Reason: "stream ends without a trailer (truncated, or media files missing)"}
	if r.openIno != 0 {
		d.Inos = []uint64{r.openIno}
	}
	r.damage = append(r.damage, d)
}

func (r *Reader) collectExtra() {
	for _, d := range r.rr.extra {
		if d.Lost < 0 && r.openIno != 0 {
			d.Inos = append(d.Inos, r.openIno)
		}
		r.damage = append(r.damage, d)
	}
	r.rr.extra = r.rr.extra[:0]
}

// protocol records a record that verified but makes no sense here.
func (r *Reader) protocol(rec *record, reason string) *Damage {
	media, phys := r.rr.where(rec.off)
	d := &Damage{Media: media, Offset: phys, Logical: rec.off, Lost: RecordHeaderSize + int64(rec.hdr.length),
		FirstRecord: rec.hdr.seq, Records: 1, Reason: fmt.Sprintf("record %d (%s): %s", rec.hdr.seq, recTypeName(rec.hdr.typ), reason)}
	if rec.hdr.ino != 0 {
		d.Inos = []uint64{rec.hdr.ino}
	}
	r.damage = append(r.damage, d)
	return d
}

// lastDamage returns the most recent damage entry (for DamageError).
func (r *Reader) lastDamage() Damage {
	if len(r.damage) == 0 {
		return Damage{Media: r.opts.Name, Offset: -1, Logical: -1, Reason: "damaged"}
	}
	return *r.damage[len(r.damage)-1]
}

// Next returns the next directory (*Dir), file (*File) or hard link
// (*HardLink), or io.EOF at the end of the stream. Data of a file that was
// not read is skipped. Damage does not end the iteration: check Damage
// (or Complete) at the end.
func (r *Reader) Next() (Entry, error) {
	if r.cur != nil {
		if err := r.cur.skip(); err != nil {
			return nil, err
		}
	}
	for !r.done {
		rec, err := r.read()
		if err == io.EOF {
			r.done = true
			break
		}
		if err != nil {
			return nil, err
		}
		switch rec.hdr.typ {
		case recHeader:
			if r.hdrOK {
				r.protocol(&rec, "second stream header")
				continue
			}
			h, err := decodeHeader(rec.payload)
			if err != nil {
				r.protocol(&rec, "stream header: "+err.Error())
				continue
			}
			r.hdr, r.hdrOK = h, true
		case recInode:
			meta, parent, err := decodeInode(rec.payload)
			if err == nil && meta.Ino != rec.hdr.ino {
				err = fmt.Errorf("inode number %d does not match record header %d", meta.Ino, rec.hdr.ino)
			}
			if err != nil {
				r.protocol(&rec, err.Error())
				continue
			}
			if meta.Type() == TypeDir {
				return r.readDir(meta, parent, rec.off)
			}
			return r.readFile(meta, rec.off)
		case recHardLink:
			l, err := decodeHardLink(rec.payload)
			if err == nil && l.Ino != rec.hdr.ino {
				err = fmt.Errorf("inode number %d does not match record header %d", l.Ino, rec.hdr.ino)
			}
			if err != nil {
				r.protocol(&rec, err.Error())
				continue
			}
			l.Offset = rec.off
			r.links++
			return &l, nil
		case recDirsEnd:
		case recEnd:
			if _, err := decodeEnd(rec.payload); err != nil {
				r.protocol(&rec, err.Error())
			}
		case recIndex:
			r.readIndex(&rec)
		case recTrailer:
			r.readTrailer(&rec)
			r.done = true
		case recXattrs, recDirents, recData, recInodeEnd:
			// The INODE record of this group was lost; its damage entry
			// already names the inode.
			if rec.dmg == nil && !r.inodeInDamage(rec.hdr.ino) {
				r.protocol(&rec, fmt.Sprintf("inode %d: record outside its inode", rec.hdr.ino))
			}
		default:
			if rec.hdr.typ&recOptional == 0 {
				r.protocol(&rec, fmt.Sprintf("unknown record type %d", rec.hdr.typ))
			}
		}
	}
	r.stopReadAhead()
	return nil, io.EOF
}

// stopReadAhead ends the read-ahead once nothing more will be read.
func (r *Reader) stopReadAhead() {
	if ra := r.rr.cs.dec.ra; ra != nil {
		ra.close()
	}
}

func (r *Reader) inodeInDamage(ino uint64) bool {
	if len(r.damage) == 0 {
		return false
	}
	for _, v := range r.damage[len(r.damage)-1].Inos {
		if v == ino {
			return true
		}
	}
	return false
}

func (r *Reader) readDir(meta FileMeta, parent uint64, off int64) (Entry, error) {
	d := &Dir{Meta: meta, Parent: parent, Offset: off}
	r.openIno = meta.Ino
	defer func() { r.openIno = 0 }()
	dirBudget, xBudget := r.opts.MaxDirBytes, r.opts.MaxXattrBytes
	var nx, ne uint64
	for {
		rec, err := r.read()
		if err == io.EOF {
			r.done = true
			d.Damaged = true
			return d, nil
		}
		if err != nil {
			return nil, err
		}
		same := rec.hdr.ino == meta.Ino
		if rec.dmg != nil {
			d.Damaged = true
			if !same || rec.hdr.typ == recInode {
				r.unread(rec)
				return d, nil
			}
		}
		switch {
		case same && rec.hdr.typ == recXattrs:
			n := len(d.Xattrs)
			if d.Xattrs, err = decodeXattrs(d.Xattrs, rec.payload, &xBudget); err != nil {
				r.protocol(&rec, err.Error())
				d.Damaged = true
			}
			nx += uint64(len(d.Xattrs) - n)
		case same && rec.hdr.typ == recDirents:
			n := len(d.Entries)
			if d.Entries, err = decodeDirents(d.Entries, rec.payload, &dirBudget); err != nil {
				r.protocol(&rec, err.Error())
				d.Damaged = true
			}
			ne += uint64(len(d.Entries) - n)
		case same && rec.hdr.typ == recInodeEnd:
			e, err := decodeInodeEnd(rec.payload)
			if err != nil {
				r.protocol(&rec, err.Error())
				d.Damaged = true
			} else if !d.Damaged && (e.xattrs != nx || e.entries != ne || e.pieces != 0) {
				r.protocol(&rec, fmt.Sprintf("directory %d: end record says %d xattrs, %d entries; read %d, %d", meta.Ino, e.xattrs, e.entries, nx, ne))
				d.Damaged = true
			}
			if !d.Damaged {
				r.dirs++
				r.xattrs += nx
			}
			return d, nil
		default:
			r.protocol(&rec, fmt.Sprintf("directory %d not terminated", meta.Ino))
			d.Damaged = true
			r.unread(rec)
			return d, nil
		}
	}
}

// File is a file record returned by Reader.Next. Its data is read with
// NextExtent or CopyTo before the next call to Next.
type File struct {
	Meta    FileMeta
	Xattrs  []Xattr
	Offset  int64 // logical offset of the INODE record
	Damaged bool  // records of this file were lost (set while reading)

	r        *Reader
	done     bool
	dataEnd  int64
	pieces   uint64
	bytes    uint64
	nx       uint64
	reported bool // a DamageError was returned
}

func (*File) isEntry() {}

// Extent is a piece of file data: len(Data) bytes at file offset Offset.
// Data is valid until the next call on the Reader or File.
type Extent struct {
	Offset int64
	Data   []byte
}

func (r *Reader) readFile(meta FileMeta, off int64) (Entry, error) {
	f := &File{Meta: meta, Offset: off, r: r}
	r.openIno = meta.Ino
	r.cur = f
	xBudget := r.opts.MaxXattrBytes
	for {
		rec, err := r.read()
		if err == io.EOF {
			r.done = true
			f.Damaged = true
			f.finish()
			return f, nil
		}
		if err != nil {
			return nil, err
		}
		same := rec.hdr.ino == meta.Ino
		if rec.dmg != nil {
			f.Damaged = true
			if !same || rec.hdr.typ == recInode {
				r.unread(rec)
				f.finish()
				return f, nil
			}
		}
		if same && rec.hdr.typ == recXattrs {
			n := len(f.Xattrs)
			if f.Xattrs, err = decodeXattrs(f.Xattrs, rec.payload, &xBudget); err != nil {
				r.protocol(&rec, err.Error())
				f.Damaged = true
			}
			f.nx += uint64(len(f.Xattrs) - n)
			continue
		}
		r.unread(rec)
		return f, nil
	}
}

func (f *File) finish() {
	f.done = true
	if f.r.cur == f {
		f.r.cur = nil
		f.r.openIno = 0
	}
}

func (f *File) damageErr() error {
	f.reported = true
	return &DamageError{Ino: f.Meta.Ino, Damage: f.r.lastDamage()}
}

// NextExtent returns the next piece of data (at most MaxDataPiece bytes;
// consecutive pieces of one extent are contiguous) or io.EOF after the
// last. A *DamageError means data of this file was lost; calling again
// continues with whatever data follows the damage.
func (f *File) NextExtent() (Extent, error) {
	if f.done {
		return Extent{}, io.EOF
	}
	r := f.r
	for {
		rec, err := r.read()
		if err == io.EOF {
			r.done = true
			f.Damaged = true
			f.finish()
			return Extent{}, f.damageErr()
		}
		if err != nil {
			return Extent{}, err
		}
		same := rec.hdr.ino == f.Meta.Ino
		if rec.dmg != nil {
			f.Damaged = true
			r.unread(rec)
			if !same || rec.hdr.typ == recInode {
				f.finish()
			}
			return Extent{}, f.damageErr()
		}
		switch {
		case same && rec.hdr.typ == recData:
			if len(rec.payload) <= dataFixed {
				r.protocol(&rec, "empty data record")
				f.Damaged = true
				return Extent{}, f.damageErr()
			}
			off := int64(le.Uint64(rec.payload))
			data := rec.payload[dataFixed:]
			if off < f.dataEnd || off > f.Meta.Size || int64(len(data)) > f.Meta.Size-off || f.Meta.Type() != TypeRegular {
				r.protocol(&rec, fmt.Sprintf("inode %d: data at %d+%d outside size %d or before %d", f.Meta.Ino, off, len(data), f.Meta.Size, f.dataEnd))
				f.Damaged = true
				return Extent{}, f.damageErr()
			}
			f.dataEnd = off + int64(len(data))
			f.pieces++
			f.bytes += uint64(len(data))
			return Extent{Offset: off, Data: data}, nil
		case same && rec.hdr.typ == recInodeEnd:
			e, err := decodeInodeEnd(rec.payload)
			if err != nil {
				r.protocol(&rec, err.Error())
				f.Damaged = true
			} else if !f.Damaged && (e.xattrs != f.nx || e.pieces != f.pieces || e.dataBytes != f.bytes || e.entries != 0) {
				r.protocol(&rec, fmt.Sprintf("inode %d: end record says %d xattrs, %d pieces, %d bytes; read %d, %d, %d",
					f.Meta.Ino, e.xattrs, e.pieces, e.dataBytes, f.nx, f.pieces, f.bytes))
				f.Damaged = true
			}
			f.finish()
			if f.Damaged {
				if f.reported {
					return Extent{}, io.EOF
				}
				return Extent{}, f.damageErr()
			}
			r.files++
			r.data += f.bytes
			r.xattrs += f.nx
			return Extent{}, io.EOF
		default:
			r.protocol(&rec, fmt.Sprintf("inode %d not terminated", f.Meta.Ino))
			f.Damaged = true
			r.unread(rec)
			f.finish()
			return Extent{}, f.damageErr()
		}
	}
}

// skip consumes the rest of the file's data.
func (f *File) skip() error {
	for {
		_, err := f.NextExtent()
		if err == io.EOF {
			return nil
		}
		var de *DamageError
		if err != nil && !errors.As(err, &de) {
			return err
		}
	}
}

// CopyTo writes all remaining data of the file to w at the data's file
// offsets (holes are left untouched) and returns the number of bytes
// written. On damage it still copies everything that survived and returns
// the first *DamageError.
func (f *File) CopyTo(w io.WriterAt) (int64, error) {
	var n int64
	var first error
	for {
		e, err := f.NextExtent()
		if err == io.EOF {
			return n, first
		}
		var de *DamageError
		if errors.As(err, &de) {
			if first == nil {
				first = err
			}
			continue
		}
		if err != nil {
			return n, err
		}
		k, err := w.WriteAt(e.Data, e.Offset)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
}

func (r *Reader) readIndex(rec *record) {
	c := cursor{b: rec.payload}
	n := c.u32()
	c.skip(4)
	if c.err != nil || uint64(n)*indexEntSize > uint64(len(rec.payload)-indexFixed) {
		r.protocol(rec, "bad index record size")
		return
	}
	// Damage entries with a lost logical range, in stream order.
	var ranged []*Damage
	for _, d := range r.damage {
		if d.Logical >= 0 && d.Lost != 0 {
			ranged = append(ranged, d)
		}
	}
	for range n {
		ino := c.u64()
		off := int64(c.u64())
		r.idxCount++
		if r.opts.KeepIndex {
			r.index = append(r.index, IndexEntry{Ino: ino, Offset: off})
		}
		i := sort.Search(len(ranged), func(i int) bool { return ranged[i].Logical > off }) - 1
		if i >= 0 {
			d := ranged[i]
			if d.Lost < 0 || off < d.Logical+d.Lost {
				if len(d.Inos) < 1<<20 {
					d.Inos = append(d.Inos, ino)
				}
			}
		}
	}
}

func (r *Reader) readTrailer(rec *record) {
	t, err := decodeTrailer(rec.payload)
	if err != nil {
		r.protocol(rec, err.Error())
		return
	}
	r.trailer = &t
	if len(r.damage) > 0 {
		return
	}
	var bad []string
	check := func(what string, want, got uint64) {
		if want != got {
			bad = append(bad, fmt.Sprintf("%s %d, read %d", what, want, got))
		}
	}
	check("records", t.Records, rec.hdr.seq)
	check("files", t.Files, r.files)
	check("dirs", t.Dirs, r.dirs)
	check("hard links", t.HardLinks, r.links)
	check("data bytes", t.DataBytes, r.data)
	check("xattrs", t.Xattrs, r.xattrs)
	check("index entries", t.IndexCount, r.idxCount)
	check("record chain", uint64(t.RecordChain), uint64(r.chain))
	if len(bad) > 0 {
		r.protocol(rec, fmt.Sprintf("trailer does not match the stream: %v", bad))
		return
	}
	r.complete = true
}
