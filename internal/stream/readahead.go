package stream

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// Read-ahead: while the caller consumes one chunk, the chunks that follow
// it in the current media file are inflated on worker goroutines.
//
// It is a cache in front of decompressor.inflate and changes nothing the
// reader decides. chunkSource.nextIn still scans, verifies and accepts every
// chunk in order on the caller's goroutine; when it asks to inflate the
// chunk at physical offset P of media m, and a worker has inflated the
// chunk found at (m, P) ahead of time, that result is handed over instead.
// Bytes at a physical offset never change and inflate is a pure function
// of them, so the output and every error (hence every damage report) are
// those of inflating in place. Anything unexpected (the chunk was not
// predicted, the walk ahead stopped at damage, another media file) is
// inflated in place as before.
//
// Only the caller's goroutine touches the media readers and the bufReader:
// the walk ahead runs inside decompress. Workers see private copies of the
// stored bytes, live only while there is work queued (an abandoned Reader
// leaves no goroutine behind once its few queued chunks are done) and are
// stopped by Close.

// Read-ahead limits.
const (
	raMinDepth  = 4
	raMaxDepth  = 64
	raPerCPU    = 3        // chunks ahead per GOMAXPROCS
	raMaxBudget = 64 << 20 // bytes held by chunks inflated ahead (stored copies and outputs)
	// The walk ahead looks at most this far past the current chunk: the
	// media buffer moves what it holds ahead to its front whenever it
	// runs out of room, so a wide window costs copying.
	raMinWindow = 2 << 20
	raPerWindow = 512 << 10 // window per chunk of depth
)

// errReadAheadClosed marks jobs dropped by close; never reported as damage.
var errReadAheadClosed = errors.New("stream: read-ahead closed")

// raJob is one chunk inflated ahead.
type raJob struct {
	phys   int64 // physical offset of the chunk header in its media file
	kind   Compression
	rawLen int
	stored []byte // private copy of the stored bytes
	buf    []byte // output buffer, cap >= rawLen

	// Set by the worker before done is closed.
	out  []byte
	err  error
	done chan struct{}

	dropped atomic.Bool // no longer wanted: the worker skips it
}

func (j *raJob) size() int { return cap(j.stored) + cap(j.buf) }

// raPool runs jobs on up to max goroutines that exit when the queue is
// empty.
type raPool struct {
	mu      sync.Mutex
	queue   []*raJob
	running int
	max     int
	idle    []*decompressor // decoders kept between bursts of work
	stopped bool
	wg      sync.WaitGroup
}

func (p *raPool) submit(j *raJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		j.err = errReadAheadClosed
		close(j.done)
		return
	}
	p.queue = append(p.queue, j)
	if p.running < p.max {
		p.running++
		p.wg.Add(1)
		go p.work()
	}
}

func (p *raPool) work() {
	defer p.wg.Done()
	var d *decompressor
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || p.stopped {
			p.running--
			if d != nil {
				p.idle = append(p.idle, d)
			}
			p.mu.Unlock()
			return
		}
		j := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if d == nil {
			if n := len(p.idle); n > 0 {
				d = p.idle[n-1]
				p.idle = p.idle[:n-1]
			} else {
				d = new(decompressor)
			}
		}
		p.mu.Unlock()
		if j.dropped.Load() {
			j.err = errReadAheadClosed
		} else {
			j.out, j.err = d.inflate(j.kind, j.stored, j.rawLen, j.buf)
		}
		close(j.done)
	}
}

// stop drops queued jobs, waits for running ones and frees the decoders.
func (p *raPool) stop() {
	p.mu.Lock()
	p.stopped = true
	q := p.queue
	p.queue = nil
	p.mu.Unlock()
	for _, j := range q {
		j.err = errReadAheadClosed
		close(j.done)
	}
	p.wg.Wait()
	p.mu.Lock()
	for _, d := range p.idle {
		d.close()
	}
	p.idle = nil
	p.mu.Unlock()
}

// readAhead is the caller-side state; only the Reader's goroutine uses it.
type readAhead struct {
	cs      *chunkSource
	depth   int // most jobs outstanding
	budget  int // most bytes held by outstanding jobs
	window  int // how far past the current chunk the walk looks
	skipCRC bool
	pool    *raPool

	media *mediaIn
	jobs  []*raJob // outstanding, in physical order
	next  int64    // physical offset in media where the walk ahead goes on
	cur   *raJob   // output lent to the caller until the next call
	held  int      // bytes of jobs and cur
	done  bool

	spareIn, spareOut [][]byte // recycled buffers for stored copies and outputs

	spareBytes int

	// For tests: chunks served from a job, inflated in place, and the
	// most jobs and bytes held at once.
	hits, misses       int
	peakJobs, peakHeld int
}

// newReadAhead returns a read-ahead of depth chunks for cs (depth <= 0:
// raPerCPU × GOMAXPROCS, within raMinDepth..raMaxDepth).
func newReadAhead(cs *chunkSource, depth int) *readAhead {
	procs := runtime.GOMAXPROCS(0)
	if depth <= 0 {
		depth = min(max(raPerCPU*procs, raMinDepth), raMaxDepth)
	}
	return &readAhead{cs: cs, depth: depth, budget: raMaxBudget, skipCRC: cs.skipCRC,
		window: min(max(depth*raPerWindow, raMinWindow), maxPeek/2),
		pool:   &raPool{max: min(procs, depth)}}
}

// close stops the workers and drops everything held. Further calls inflate
// in place.
func (ra *readAhead) close() {
	if ra.done {
		return
	}
	ra.done = true
	for _, j := range ra.jobs {
		j.dropped.Store(true)
	}
	ra.pool.stop()
	ra.jobs, ra.cur, ra.spareIn, ra.spareOut, ra.media = nil, nil, nil, nil, nil
	ra.held, ra.spareBytes = 0, 0
}

// current returns the media file whose current position holds the chunk
// whose stored bytes are stored: nextIn calls decompress on a slice of the
// buffer right after the chunk header at the media's read position. For
// any other caller it reports false and the chunk is inflated in place.
func (ra *readAhead) current(stored []byte) (*mediaIn, bool) {
	cs := ra.cs
	if ra.done || cs.mi >= len(cs.media) || len(stored) == 0 {
		return nil, false
	}
	m := cs.media[cs.mi]
	br := m.br
	s := br.start + ChunkHeaderSize
	if s+len(stored) > br.end || &br.buf[s] != &stored[0] {
		return nil, false
	}
	return m, true
}

func (ra *readAhead) decompress(d *decompressor, kind Compression, stored []byte, rawLen int, dst []byte) ([]byte, error) {
	// The previous result has been copied by now (chunk data is valid
	// until the next call to chunkSource.next).
	if ra.cur != nil {
		ra.recycle(ra.cur)
		ra.cur = nil
	}
	m, ok := ra.current(stored)
	if !ok {
		return d.inflate(kind, stored, rawLen, dst)
	}
	phys := m.br.pos
	end := phys + ChunkHeaderSize + int64(len(stored))
	if m != ra.media {
		ra.dropAll()
		ra.media = m
		ra.next = 0
	}
	// Jobs before this chunk were for chunks nextIn did not accept.
	for len(ra.jobs) > 0 && ra.jobs[0].phys < phys {
		ra.drop(ra.jobs[0])
		ra.jobs = ra.jobs[1:]
	}
	if kind == CompressNone {
		// Nothing to inflate, but keep the walk going past stretches of
		// incompressible chunks. The walk may move the buffer: hand out
		// the chunk's bytes where they are now.
		if len(stored) != rawLen {
			return nil, errDecodedSize
		}
		ra.topUp(m, end)
		s := m.br.start + ChunkHeaderSize
		return m.br.buf[s : s+rawLen : s+rawLen], nil
	}
	if len(ra.jobs) > 0 {
		j := ra.jobs[0]
		if j.phys == phys && j.kind == kind && j.rawLen == rawLen && sameEnds(j.stored, stored) {
			ra.jobs = ra.jobs[1:]
			// stored is not used past this point, so the walk may
			// move the buffer; queue more work before waiting.
			ra.topUp(m, end)
			<-j.done
			if j.err != errReadAheadClosed {
				ra.hits++
				ra.cur = j
				return j.out, j.err
			}
			ra.recycle(j)
			return d.inflate(kind, stored, rawLen, dst)
		}
	}
	// Not predicted: the walk ahead followed other chunks. Start it
	// afresh after this one.
	ra.misses++
	ra.dropAll()
	ra.next = end
	out, err := d.inflate(kind, stored, rawLen, dst)
	ra.topUp(m, end)
	return out, err
}

// topUp walks the chunk headers that follow physical offset from in media
// m and queues the compressed chunks it finds, up to the depth and the
// budget, within what the media's buffer may hold. It stops at anything
// that is not a valid chunk header; nextIn deals with that when it gets
// there.
func (ra *readAhead) topUp(m *mediaIn, from int64) {
	if ra.done {
		return
	}
	ra.next = max(ra.next, from)
	br := m.br
	limit := min(int64(maxPeek), from-br.pos+int64(ra.window))
	for walked := 0; walked < 2*ra.depth && len(ra.jobs) < ra.depth && (len(ra.jobs) == 0 || ra.held < ra.budget); walked++ {
		rel := ra.next - br.pos
		if rel < 0 || rel+ChunkHeaderSize > limit {
			return
		}
		r := int(rel)
		b := br.peek(r + ChunkHeaderSize)
		if len(b) < r+ChunkHeaderSize {
			return
		}
		h, ok := decodeChunkHeader(b[r:], ra.skipCRC)
		if !ok {
			return
		}
		total := ChunkHeaderSize + int(h.storedLen)
		if int64(r+total) > limit && (len(ra.jobs) > 0 || r+total > maxPeek) {
			return
		}
		if h.compression != CompressNone {
			b = br.peek(r + total)
			if len(b) < r+total {
				return
			}
			ra.submit(ra.next, h, b[r+ChunkHeaderSize:r+total])
		}
		ra.next += int64(total)
	}
}

func (ra *readAhead) submit(phys int64, h chunkHeader, stored []byte) {
	j := &raJob{phys: phys, kind: h.compression, rawLen: int(h.rawLen), done: make(chan struct{})}
	j.stored = append(ra.buffer(&ra.spareIn, len(stored))[:0], stored...)
	j.buf = ra.buffer(&ra.spareOut, j.rawLen)[:0]
	ra.held += j.size()
	ra.jobs = append(ra.jobs, j)
	ra.peakJobs = max(ra.peakJobs, len(ra.jobs))
	ra.peakHeld = max(ra.peakHeld, ra.held)
	ra.pool.submit(j)
}

// buffer returns the most recently recycled buffer of at least n bytes
// from list (likely still in a CPU cache), or a new one.
func (ra *readAhead) buffer(list *[][]byte, n int) []byte {
	l := *list
	for i := len(l) - 1; i >= 0; i-- {
		if b := l[i]; cap(b) >= n {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			*list = l[:len(l)-1]
			ra.spareBytes -= cap(b)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// recycle takes back the buffers of a finished or dropped job. Spare
// buffers are kept up to one per job of depth of each kind and the byte
// budget.
func (ra *readAhead) recycle(j *raJob) {
	<-j.done // a worker may still be writing into j.buf
	ra.held -= j.size()
	ra.keep(&ra.spareIn, j.stored)
	ra.keep(&ra.spareOut, j.buf)
	j.stored, j.buf, j.out = nil, nil, nil
}

func (ra *readAhead) keep(list *[][]byte, b []byte) {
	if len(*list) < ra.depth && ra.spareBytes+cap(b) <= ra.budget {
		*list = append(*list, b[:0])
		ra.spareBytes += cap(b)
	}
}

func (ra *readAhead) drop(j *raJob) {
	j.dropped.Store(true)
	ra.recycle(j)
}

func (ra *readAhead) dropAll() {
	for _, j := range ra.jobs {
		j.dropped.Store(true)
	}
	for _, j := range ra.jobs {
		ra.recycle(j)
	}
	ra.jobs = ra.jobs[:0]
}

// sameEnds is a cheap sanity check that a job holds the chunk being asked
// for: the position and lengths already identify it (bytes at a physical
// offset of a media file never change), so comparing all of it would only
// cost time.
func sameEnds(a, b []byte) bool {
	const n = 64
	if len(a) != len(b) {
		return false
	}
	if len(a) <= 2*n {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(a[:n], b[:n]) && bytes.Equal(a[len(a)-n:], b[len(b)-n:])
}
