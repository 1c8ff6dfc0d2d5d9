package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
)

// bufReader is a peekable reader over one media file that tracks the
// physical offset. It never holds more than maxBuf bytes.
type bufReader struct {
	r     io.Reader
	buf   []byte
	start int
	end   int
	pos   int64 // physical offset of buf[start]
	eof   bool
	err   error // first non-EOF read error
	empty int   // consecutive empty reads
	block int   // if > 0, every Read asks for a multiple of this many bytes
}

const (
	readSize = 1 << 20
	maxPeek  = ChunkHeaderSize + MaxChunkSize + readSize
)

// peek returns up to n bytes at the current position without consuming
// them; fewer only at the end of the file or on a read error.
func (b *bufReader) peek(n int) []byte {
	n = min(n, maxPeek)
	for b.end-b.start < n && !b.eof && b.err == nil {
		if b.start+n > len(b.buf) || len(b.buf)-b.end < b.block {
			nb := b.buf
			if need := max(n, b.end-b.start+b.block); need > len(b.buf) {
				// Grow in steps so small inputs stay cheap and large
				// chunks are read with large reads.
				size := min(max(need+need/2, 2*len(b.buf), 4<<10), maxPeek+readSize)
				if b.block > 0 {
					size = int(roundUp(int64(max(size, need)), int64(b.block)))
				}
				nb = make([]byte, size)
			}
			copy(nb, b.buf[b.start:b.end])
			b.end -= b.start
			b.start = 0
			b.buf = nb
		}
		room := b.buf[b.end:]
		if b.block > 0 {
			room = room[:len(room)/b.block*b.block]
		}
		m, err := b.r.Read(room)
		if m < 0 || m > len(room) {
			b.err = errors.New("reader returned an invalid count")
			break
		}
		b.end += m
		switch {
		case err == io.EOF:
			b.eof = true
		case err != nil:
			b.err = err
		case m == 0:
			// A reader that keeps returning (0, nil) must not hang us.
			b.empty++
			if b.empty > 100 {
				b.err = io.ErrNoProgress
			}
		default:
			b.empty = 0
		}
	}
	if b.end-b.start < n {
		return b.buf[b.start:b.end]
	}
	return b.buf[b.start : b.start+n]
}

func (b *bufReader) discard(n int) {
	b.start += n
	b.pos += int64(n)
	if b.start == b.end {
		b.start, b.end = 0, 0
	}
}

// Media is one media file given to NewMediaReader.
type Media struct {
	Name string
	R    io.Reader
}

type mediaIn struct {
	name    string
	br      *bufReader
	hdr     mediaHeader
	hdrOK   bool
	hdrWhy  string
	orderBy uint64 // first chunk sequence, for ordering media
}

// chunk is one decoded chunk of the logical stream.
type chunk struct {
	seq     uint64
	logical int64
	data    []byte // valid until the next call to next
	media   string
	phys    int64
	// verified: stored uncompressed and its CRC checked, so the CRC
	// covered exactly these bytes and records inside need no second hash.
	verified bool
}

// note is a physical-level problem: junk, a damaged chunk, a missing media file.
type note struct {
	media  string
	offset int64
	length int64
	reason string
}

// chunkSource yields the chunks of a stream in logical order from one or
// more media files, skipping anything that does not verify.
type chunkSource struct {
	media    []*mediaIn
	mi       int
	started  bool // current media's header consumed
	expSeq   uint64
	expOff   int64
	tag      uint32
	tagKnown bool
	skipCRC  bool
	dec      decompressor
	out      []byte
	notes    []note
	junk     note // current run of unusable bytes (length 0: none)
	junkNZ   bool // the run contains non-zero bytes
	anyGood  bool // at least one valid chunk or media header seen
}

func (cs *chunkSource) addNote(n note) {
	if len(cs.notes) < 10000 {
		cs.notes = append(cs.notes, n)
	}
}

func (cs *chunkSource) takeNotes() []note {
	n := cs.notes
	cs.notes = nil
	return n
}

// skip marks n bytes at the current position of m as unusable.
func (cs *chunkSource) skip(m *mediaIn, n int, reason string) {
	b := m.br.peek(n)
	if cs.junk.length == 0 {
		cs.junk = note{media: m.name, offset: m.br.pos, reason: reason}
		cs.junkNZ = false
	} else if cs.junk.reason == "" {
		cs.junk.reason = reason
	}
	if !cs.junkNZ {
		for _, c := range b {
			if c != 0 {
				cs.junkNZ = true
				break
			}
		}
	}
	cs.junk.length += int64(len(b))
	m.br.discard(len(b))
}

// endJunk closes the current run of skipped bytes. Runs of zeros that reach
// the end of a media file are block padding and are not reported.
func (cs *chunkSource) endJunk(atEOF bool) {
	if cs.junk.length == 0 {
		return
	}
	if cs.junkNZ || !atEOF {
		j := cs.junk
		if j.reason == "" {
			j.reason = "unrecognised data"
		}
		j.reason = fmt.Sprintf("%s (%d bytes skipped)", j.reason, j.length)
		cs.addNote(j)
	}
	cs.junk = note{}
}

// next returns the next valid chunk with logical offset at or after the
// expected one; io.EOF at the end of the last media file.
func (cs *chunkSource) next() (chunk, error) {
	for cs.mi < len(cs.media) {
		m := cs.media[cs.mi]
		if !cs.started {
			cs.startMedia(m)
		}
		ch, ok, err := cs.nextIn(m)
		if err != nil {
			return chunk{}, err
		}
		if ok {
			return ch, nil
		}
		cs.endJunk(true)
		cs.mi++
		cs.started = false
	}
	return chunk{}, io.EOF
}

func (cs *chunkSource) startMedia(m *mediaIn) {
	cs.started = true
	if m.hdrOK {
		m.br.discard(MediaHeaderSize)
		if cs.mi > 0 {
			prev := cs.media[cs.mi-1]
			if prev.hdrOK && m.hdr.mediaSeq > prev.hdr.mediaSeq+1 {
				cs.addNote(note{media: m.name, offset: 0, reason: fmt.Sprintf("media files %d..%d missing", prev.hdr.mediaSeq+1, m.hdr.mediaSeq-1)})
			}
		}
		return
	}
	if len(m.br.peek(1)) == 0 && m.br.err == nil {
		// An empty file holds no part of any stream (Resume leaves media
		// files it no longer needs empty).
		return
	}
	cs.addNote(note{media: m.name, offset: 0, reason: "media header: " + m.hdrWhy})
}

// nextIn scans media m for the next acceptable chunk.
func (cs *chunkSource) nextIn(m *mediaIn) (chunk, bool, error) {
	br := m.br
	for {
		b := br.peek(ChunkHeaderSize)
		if br.err != nil && len(b) < ChunkHeaderSize {
			return chunk{}, false, fmt.Errorf("%s: read at offset %d: %w", m.name, br.pos+int64(len(b)), br.err)
		}
		if len(b) == 0 {
			return chunk{}, false, nil
		}
		if len(b) < ChunkHeaderSize || [8]byte(b[:8]) != chunkMagic {
			cs.scan(m)
			continue
		}
		h, ok := decodeChunkHeader(b, cs.skipCRC)
		if !ok {
			cs.skip(m, 1, "bad chunk header")
			continue
		}
		if cs.tagKnown && h.tag != cs.tag {
			cs.skip(m, 1, fmt.Sprintf("chunk %d belongs to another stream", h.seq))
			continue
		}
		if h.logical < cs.expOff {
			cs.skip(m, ChunkHeaderSize, fmt.Sprintf("chunk %d (logical %d) repeats data before %d", h.seq, h.logical, cs.expOff))
			continue
		}
		total := ChunkHeaderSize + int(h.storedLen)
		full := br.peek(total)
		if len(full) < total {
			if br.err != nil {
				return chunk{}, false, fmt.Errorf("%s: read at offset %d: %w", m.name, br.pos+int64(len(full)), br.err)
			}
			cs.skip(m, 1, fmt.Sprintf("chunk %d (logical %d) truncated: %d of %d bytes present", h.seq, h.logical, len(full), total))
			continue
		}
		stored := full[ChunkHeaderSize:]
		if !cs.skipCRC && crc(stored) != h.storedCRC {
			cs.skip(m, 1, fmt.Sprintf("chunk %d (logical %d) CRC mismatch", h.seq, h.logical))
			continue
		}
		if cap(cs.out) < int(h.rawLen) {
			cs.out = make([]byte, 0, int(h.rawLen))
		}
		data, err := cs.dec.decompress(h.compression, stored, int(h.rawLen), cs.out)
		if err != nil {
			cs.skip(m, total, fmt.Sprintf("chunk %d (logical %d): %v", h.seq, h.logical, err))
			continue
		}
		cs.endJunk(false)
		if !cs.tagKnown {
			cs.tag, cs.tagKnown = h.tag, true
		}
		cs.anyGood = true
		ch := chunk{seq: h.seq, logical: h.logical, data: data, media: m.name, phys: br.pos,
			verified: !cs.skipCRC && h.compression == CompressNone}
		br.discard(total)
		cs.expSeq = h.seq + 1
		cs.expOff = h.logical + int64(h.rawLen)
		return ch, true, nil
	}
}

// scan skips forward to the next chunk magic (or the end of the media).
func (cs *chunkSource) scan(m *mediaIn) {
	br := m.br
	for {
		b := br.peek(readSize)
		if len(b) == 0 {
			return
		}
		// Skip at least one byte unless the magic is right here.
		i := bytes.Index(b, chunkMagic[:])
		if i == 0 {
			if len(b) < ChunkHeaderSize && (br.eof || br.err != nil) {
				cs.skip(m, len(b), "truncated chunk header")
				return
			}
			return
		}
		if i > 0 {
			cs.skip(m, i, "")
			return
		}
		// At the end of input, b is everything left only when it is shorter
		// than the window; otherwise a magic straddling the window's end
		// would be skipped with it.
		if (br.eof || br.err != nil) && len(b) < readSize {
			cs.skip(m, len(b), "")
			return
		}
		keep := len(chunkMagic) - 1
		if len(b) <= keep {
			// Not enough data to decide; peek more next round.
			b = br.peek(len(b) + readSize)
			if len(b) <= keep {
				cs.skip(m, len(b), "")
				return
			}
			continue
		}
		cs.skip(m, len(b)-keep, "")
	}
}

// openMedia reads the media headers and orders the media files.
func openMedia(list []Media, skipCRC bool, block int) (*chunkSource, error) {
	cs := &chunkSource{skipCRC: skipCRC}
	var ref *mediaIn
	seen := map[uint32]string{}
	for _, md := range list {
		if md.R == nil {
			return nil, fmt.Errorf("stream: media %q has no reader", md.Name)
		}
		m := &mediaIn{name: md.Name, br: &bufReader{r: md.R, block: block}}
		b := m.br.peek(MediaHeaderSize)
		if m.br.err != nil && len(b) < MediaHeaderSize {
			return nil, fmt.Errorf("%s: read media header: %w", md.Name, m.br.err)
		}
		m.hdr, m.hdrWhy = decodeMediaHeader(b, skipCRC)
		m.hdrOK = m.hdrWhy == ""
		if m.hdrOK {
			m.orderBy = m.hdr.chunkSeq
			if ref == nil {
				ref = m
			} else if m.hdr.session != ref.hdr.session || m.hdr.streamIndex != ref.hdr.streamIndex {
				return nil, fmt.Errorf("stream: %s belongs to session %x stream %d, but %s to session %x stream %d",
					m.name, m.hdr.session, m.hdr.streamIndex, ref.name, ref.hdr.session, ref.hdr.streamIndex)
			}
			if other, dup := seen[m.hdr.mediaSeq]; dup {
				return nil, fmt.Errorf("stream: %s and %s are both media file %d of the stream", other, m.name, m.hdr.mediaSeq)
			}
			seen[m.hdr.mediaSeq] = m.name
		} else {
			// Order a media file with a damaged header by its first chunk.
			m.orderBy = ^uint64(0)
			win := m.br.peek(2 * ChunkHeaderSize * 1024)
			for off := 0; ; {
				i := bytes.Index(win[off:], chunkMagic[:])
				if i < 0 {
					break
				}
				if h, ok := decodeChunkHeader(win[off+i:], skipCRC); ok {
					m.orderBy = h.seq
					break
				}
				off += i + 1
			}
		}
		cs.media = append(cs.media, m)
	}
	sort.SliceStable(cs.media, func(i, j int) bool { return cs.media[i].orderBy < cs.media[j].orderBy })
	if ref != nil {
		cs.tag, cs.tagKnown = streamTag(ref.hdr.session, ref.hdr.streamIndex), true
		cs.anyGood = true
	}
	return cs, nil
}
