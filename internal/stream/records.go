package stream

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// record is one verified record of the logical stream.
type record struct {
	hdr     recHdr
	off     int64  // logical offset of the record header
	payload []byte // valid until the next recReader call
	dmg     *Damage
}

func (r *record) end() int64 { return r.off + RecordHeaderSize + int64(r.hdr.length) }

// seg maps a part of the logical buffer back to the chunk it came from.
type seg struct {
	logical  int64
	media    string
	phys     int64
	verified bool // see chunk.verified
}

// pendingDamage accumulates what is known about a damaged stretch until the
// reader finds the next good record.
type pendingDamage struct {
	d       Damage
	reasons []string
	inos    []uint64
}

// recReader cuts the logical byte stream into verified records and
// resynchronises after damage.
type recReader struct {
	cs      *chunkSource
	noCRC   bool
	buf     []byte
	base    int64 // logical offset of buf[0]
	pos     int
	segs    []seg
	gap     *chunk // next chunk, not contiguous with buf
	eof     bool
	expSeq  uint64
	started bool  // expSeq is meaningful (a good record was seen)
	goodEnd int64 // logical end of the last good record
	dmg     *pendingDamage
	extra   []*Damage // standalone damage for the Reader to collect
}

func (rr *recReader) logical() int64 { return rr.base + int64(rr.pos) }

// where returns the media and physical offset of the chunk holding logical
// offset off, if it is still in the buffer.
func (rr *recReader) where(off int64) (string, int64) {
	for i := len(rr.segs) - 1; i >= 0; i-- {
		if rr.segs[i].logical <= off {
			return rr.segs[i].media, rr.segs[i].phys
		}
	}
	if len(rr.segs) > 0 {
		return rr.segs[0].media, rr.segs[0].phys
	}
	if rr.gap != nil {
		return rr.gap.media, rr.gap.phys
	}
	return "", -1
}

func (rr *recReader) appendChunk(ch chunk) {
	if rr.pos > 0 {
		n := copy(rr.buf, rr.buf[rr.pos:])
		rr.buf = rr.buf[:n]
		rr.base += int64(rr.pos)
		rr.pos = 0
		i := 0
		for i+1 < len(rr.segs) && rr.segs[i+1].logical <= rr.base {
			i++
		}
		rr.segs = append(rr.segs[:0], rr.segs[i:]...)
	}
	if len(rr.buf) == 0 {
		rr.base = ch.logical
		rr.segs = rr.segs[:0]
	}
	rr.buf = append(rr.buf, ch.data...)
	rr.segs = append(rr.segs, seg{logical: ch.logical, media: ch.media, phys: ch.phys, verified: ch.verified})
}

// verified reports whether the buffered bytes [off, end) all come from
// verified chunks: their chunk CRCs covered them already.
func (rr *recReader) verified(off, end int64) bool {
	if len(rr.segs) == 0 || off < rr.segs[0].logical {
		return false
	}
	for i, s := range rr.segs {
		segEnd := rr.base + int64(len(rr.buf))
		if i+1 < len(rr.segs) {
			segEnd = rr.segs[i+1].logical
		}
		if segEnd > off && s.logical < end && !s.verified {
			return false
		}
	}
	return true
}

// flushNotes turns chunk-level notes into standalone damage entries (used
// when they did not cost any logical data).
func (rr *recReader) flushNotes() {
	for _, n := range rr.cs.takeNotes() {
		rr.extra = append(rr.extra, &Damage{Media: n.media, Offset: n.offset, Logical: -1, Lost: 0, Records: 0, Reason: n.reason})
	}
}

// fill tries to make n contiguous bytes available at pos and returns how
// many are. It stops early at a gap (rr.gap set) or at the end (rr.eof).
func (rr *recReader) fill(n int) (int, error) {
	for len(rr.buf)-rr.pos < n && rr.gap == nil && !rr.eof {
		ch, err := rr.cs.next()
		if err == io.EOF {
			rr.eof = true
			break
		}
		if err != nil {
			return 0, err
		}
		if ch.logical != rr.base+int64(len(rr.buf)) {
			c := ch
			rr.gap = &c
			break
		}
		if rr.dmg == nil {
			rr.flushNotes()
		}
		rr.appendChunk(ch)
	}
	return min(len(rr.buf)-rr.pos, n), nil
}

// crossGap drops the buffer and continues with the chunk after a gap.
func (rr *recReader) crossGap() {
	ch := *rr.gap
	rr.gap = nil
	rr.buf = rr.buf[:0]
	rr.pos = 0
	rr.segs = rr.segs[:0]
	rr.appendChunk(ch)
}

// lose starts (or extends) a damaged stretch at logical offset off.
func (rr *recReader) lose(off int64, reason string, h *recHdr) {
	if rr.dmg == nil {
		media, phys := rr.where(off)
		rr.dmg = &pendingDamage{d: Damage{Media: media, Offset: phys, Logical: off, FirstRecord: rr.expSeq}}
		if !rr.started {
			rr.dmg.d.FirstRecord = 0
		}
		notes := rr.cs.takeNotes()
		if len(notes) > 0 {
			rr.dmg.d.Media, rr.dmg.d.Offset = notes[0].media, notes[0].offset
		}
		for _, n := range notes {
			rr.addReason(n.reason)
		}
	}
	if reason != "" {
		rr.addReason(reason)
	}
	if h != nil && h.ino != 0 {
		rr.dmg.inos = append(rr.dmg.inos, h.ino)
	}
}

func (rr *recReader) addReason(s string) {
	for _, r := range rr.dmg.reasons {
		if r == s {
			return
		}
	}
	if len(rr.dmg.reasons) < 6 {
		rr.dmg.reasons = append(rr.dmg.reasons, s)
	}
}

func (rr *recReader) finishDamage(next *record) *Damage {
	p := rr.dmg
	rr.dmg = nil
	for _, n := range rr.cs.takeNotes() {
		p.reasons = append(p.reasons, n.reason)
	}
	d := p.d
	d.Inos = p.inos
	if next != nil {
		d.Lost = next.off - d.Logical
		if next.hdr.seq >= d.FirstRecord {
			d.Records = int64(next.hdr.seq - d.FirstRecord)
		}
	} else {
		d.Lost, d.Records = -1, -1
		p.reasons = append(p.reasons, "stream ends here")
	}
	d.Reason = strings.Join(p.reasons, "; ")
	return &d
}

// next returns the next good record, io.EOF at the end of the stream, or a
// read error.
func (rr *recReader) next() (record, error) {
	for {
		avail, err := rr.fill(RecordHeaderSize)
		if err != nil {
			return record{}, err
		}
		if avail == 0 {
			if rr.gap != nil {
				rr.lose(rr.logical(), "", nil)
				rr.crossGap()
				continue
			}
			if rr.dmg != nil {
				rr.extra = append(rr.extra, rr.finishDamage(nil))
			}
			rr.flushNotes()
			return record{}, io.EOF
		}
		b := rr.buf[rr.pos:]
		if avail < RecordHeaderSize {
			rr.lose(rr.logical(), "record header cut short", nil)
			rr.pos = len(rr.buf)
			continue
		}
		h, ok := decodeRecordHeader(b, rr.noCRC)
		if !ok {
			rr.lose(rr.logical(), "", nil)
			rr.pos++
			rr.scan()
			continue
		}
		total := RecordHeaderSize + int(h.length)
		if avail, err = rr.fill(total); err != nil {
			return record{}, err
		}
		b = rr.buf[rr.pos:]
		if avail < total {
			rr.lose(rr.logical(), fmt.Sprintf("record %d (%s, inode %d) cut short", h.seq, recTypeName(h.typ), h.ino), &h)
			rr.pos++
			rr.scan()
			continue
		}
		// Records in chunks stored uncompressed were covered by the chunk
		// CRC: hashing them again was a tenth of restore's own CPU time.
		if !rr.noCRC && !rr.verified(rr.logical(), rr.logical()+int64(total)) &&
			crcUpdate(crc(b[:32]), b[RecordHeaderSize:total]) != h.crc {
			rr.lose(rr.logical(), fmt.Sprintf("record %d (%s, inode %d) CRC mismatch", h.seq, recTypeName(h.typ), h.ino), &h)
			rr.pos++
			rr.scan()
			continue
		}
		rec := record{hdr: h, off: rr.logical(), payload: b[RecordHeaderSize:total:total]}
		rr.pos += total
		if rr.started && h.seq < rr.expSeq {
			// An old record again (e.g. a duplicated chunk): skip it.
			media, phys := rr.where(rec.off)
			rr.extra = append(rr.extra, &Damage{Media: media, Offset: phys, Logical: rec.off, Lost: 0,
				FirstRecord: h.seq, Reason: fmt.Sprintf("record %d repeated after %d; skipped", h.seq, rr.expSeq-1)})
			continue
		}
		if rr.dmg != nil {
			rec.dmg = rr.finishDamage(&rec)
		} else if h.seq != rr.expSeq {
			media, phys := rr.where(rec.off)
			rec.dmg = &Damage{Media: media, Offset: phys, Logical: rec.off, Lost: 0, FirstRecord: rr.expSeq,
				Records: int64(h.seq - rr.expSeq), Reason: fmt.Sprintf("record sequence jumps from %d to %d", rr.expSeq, h.seq)}
		}
		rr.expSeq = h.seq + 1
		rr.started = true
		rr.goodEnd = rr.logical()
		return rec, nil
	}
}

// scan moves pos to the next record magic at or after pos, crossing into
// new chunks (and gaps) as needed.
func (rr *recReader) scan() {
	for {
		if i := bytes.Index(rr.buf[rr.pos:], recordMagic[:]); i >= 0 {
			rr.pos += i
			return
		}
		keep := min(len(recordMagic)-1, len(rr.buf)-rr.pos)
		rr.pos = len(rr.buf) - keep
		avail, err := rr.fill(keep + 1)
		if err != nil || avail <= keep {
			// Gap or end: the caller deals with it.
			rr.pos = len(rr.buf)
			return
		}
	}
}
