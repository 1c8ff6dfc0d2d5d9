package stream

import (
	"fmt"
	"io"
	"sync"
)

// job is one chunk on its way from the Writer through a compression worker
// to the media writer goroutine. A job with a non-nil barrier carries no data
// and only marks a point in the output order (Flush).
type job struct {
	seq     uint64
	logical int64
	raw     []byte // logical bytes, cap = chunk size
	crc     uint32 // with sink.rawCRC: CRC of raw[:crcN]
	crcN    int
	hdr     [ChunkHeaderSize]byte
	out     []byte // compression output buffer
	stored  []byte // bytes following the header: out or raw
	err     error
	done    chan struct{}
	barrier chan struct{}
	cp      *Checkpoint // latest checkpoint completed inside or before this chunk
}

// sink owns the physical side of a Writer: compression workers, media
// files, fixed-size blocks and the durability of checkpoints.
type sink struct {
	comp      *compressor
	tag       uint32
	mhdr      mediaHeader // template for media headers
	chunkSize int
	blockSize int
	maxMedia  int64
	open      func(k int) (io.Writer, error)
	onCP      func(Checkpoint)
	rawCRC    bool // the Writer keeps job.crc (uncompressed streams)

	work  chan *job
	order chan *job
	pool  chan *job
	wdone chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	err     error
	durable Checkpoint
	stats   Stats

	// Media writer goroutine state.
	media       int
	out         io.Writer
	closer      io.Closer
	headerDone  bool  // media header of the current media written
	written     int64 // physical bytes of the current media accepted (incl. block buffer)
	flushed     int64 // physical bytes of the current media passed to out
	chunksHere  int   // chunks in the current media
	block       []byte
	blen        int
	pendingDur  []pendingDur
	lastLogical int64
	nextSeq     uint64 // next chunk sequence number (Writer goroutine)
}

type pendingDur struct {
	end int64 // physical end in the current media
	cp  *Checkpoint
}

// Stats reports what a Writer produced so far.
type Stats struct {
	Logical  int64 // logical stream bytes
	Physical int64 // bytes written to media (headers, chunks, padding)
	Chunks   uint64
	Media    int // media files used
}

func (s *sink) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *sink) getErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *sink) start(workers int) {
	depth := workers + 2
	s.work = make(chan *job, depth)
	s.order = make(chan *job, depth)
	s.pool = make(chan *job, depth+2)
	s.wdone = make(chan struct{})
	for range workers {
		s.wg.Add(1)
		go s.worker()
	}
	go s.mediaWriter()
}

func (s *sink) getJob() *job {
	select {
	case j := <-s.pool:
		j.raw = j.raw[:0]
		j.crc, j.crcN = 0, 0
		j.out = j.out[:0]
		j.stored = nil
		j.err = nil
		j.cp = nil
		j.done = make(chan struct{})
		return j
	default:
		j := &job{raw: make([]byte, 0, s.chunkSize), done: make(chan struct{})}
		if s.comp.kind != CompressNone {
			j.out = make([]byte, 0, s.chunkSize+s.chunkSize/64+1024)
		}
		return j
	}
}

func (s *sink) putJob(j *job) {
	select {
	case s.pool <- j:
	default:
	}
}

// submit queues a filled chunk. It blocks when the pipeline is full.
func (s *sink) submit(j *job) error {
	if err := s.getErr(); err != nil {
		return err
	}
	s.order <- j
	s.work <- j
	return nil
}

// barrier waits until every chunk submitted so far has been handed to the
// media writer's output.
func (s *sink) barrier() error {
	b := &job{barrier: make(chan struct{})}
	s.order <- b
	<-b.barrier
	return s.getErr()
}

// close waits for everything to be written, pads the last block and closes
// media files opened through OpenMedia.
func (s *sink) close() error {
	close(s.work)
	close(s.order)
	s.wg.Wait()
	<-s.wdone
	s.comp.close()
	return s.getErr()
}

func (s *sink) worker() {
	defer s.wg.Done()
	for j := range s.work {
		stored, buf, kind, err := s.comp.compress(j.out, j.raw)
		j.out = buf // keep a grown buffer for the next chunk
		if err != nil {
			j.err = err
		} else {
			var sc uint32
			if kind == CompressNone && s.rawCRC && j.crcN == len(j.raw) {
				sc = j.crc // stored is raw, whose CRC the Writer kept
			} else {
				sc = crc(stored)
			}
			ch := chunkHeader{seq: j.seq, logical: j.logical, rawLen: uint32(len(j.raw)),
				storedLen: uint32(len(stored)), compression: kind,
				storedCRC: sc, tag: s.tag}
			ch.encode(j.hdr[:])
			j.stored = stored
		}
		close(j.done)
	}
}

func (s *sink) mediaWriter() {
	defer close(s.wdone)
	for j := range s.order {
		if j.barrier != nil {
			if s.getErr() == nil {
				if err := s.flushOut(); err != nil {
					s.setErr(err)
				} else {
					if j.cp != nil {
						s.pendingDur = append(s.pendingDur, pendingDur{end: s.written, cp: j.cp})
					}
					s.fireDurable()
				}
			}
			close(j.barrier)
			continue
		}
		<-j.done
		if s.getErr() == nil {
			if j.err != nil {
				s.setErr(j.err)
			} else if err := s.writeChunk(j); err != nil {
				s.setErr(err)
			}
		}
		s.putJob(j)
	}
	if s.getErr() == nil {
		if err := s.finishMedia(true); err != nil {
			s.setErr(err)
		}
	}
}

// catchUp extends j.crc over raw bytes added without it (a resumed
// stream's prefill, plain puts).
func (j *job) catchUp() {
	if j.crcN < len(j.raw) {
		j.crc = crcUpdate(j.crc, j.raw[j.crcN:])
		j.crcN = len(j.raw)
	}
}

// crcCombine returns the CRC of A‖B from c1 = CRC(A), c2 = CRC(B) and
// n = len(B): the CRC register is linear over GF(2), so c1 only needs to
// be advanced over n bytes, i.e. multiplied by x^(8n) modulo the
// polynomial (reflected bit order).
func crcCombine(c1, c2 uint32, n int64) uint32 {
	return gfMul(xPow8n(n), c1) ^ c2
}

// castagnoliPoly is the reflected Castagnoli polynomial.
const castagnoliPoly = 0x82F63B78

// gfMul multiplies two polynomials modulo the CRC polynomial (bit 31 is x^0).
func gfMul(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0 && a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a ^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow8n returns x^(8n) modulo the polynomial, one table per byte of n.
func xPow8n(n int64) uint32 {
	t := crcShiftTables()
	r := uint32(1) << 31 // x^0
	for k := 0; n > 0; k++ {
		if b := n & 0xff; b != 0 {
			r = gfMul(r, t[k][b])
		}
		n >>= 8
	}
	return r
}

// crcShiftTables[k][b] is x^(8·b·256^k) modulo the polynomial.
var crcShiftTables = sync.OnceValue(func() *[8][256]uint32 {
	var t [8][256]uint32
	var step uint32 = 1 << 31
	for range 8 {
		step = gfMul(step, 1<<30) // x^8: one byte
	}
	for k := range t {
		t[k][0] = 1 << 31
		for b := 1; b < 256; b++ {
			t[k][b] = gfMul(t[k][b-1], step)
		}
		step = gfMul(t[k][255], step) // x^(8·256^(k+1))
	}
	return &t
})

func roundUp(n, b int64) int64 { return (n + b - 1) / b * b }

func (s *sink) writeChunk(j *job) error {
	n := int64(ChunkHeaderSize + len(j.stored))
	if s.maxMedia > 0 && s.chunksHere > 0 {
		need := s.written + n
		if s.blockSize > 0 {
			need = roundUp(need, int64(s.blockSize))
		}
		if need > s.maxMedia {
			if err := s.finishMedia(false); err != nil {
				return err
			}
			k := s.media + 1
			w, err := s.open(k)
			if err != nil {
				return fmt.Errorf("stream: open media file %d: %w", k, err)
			}
			s.media, s.out, s.written, s.flushed, s.chunksHere, s.headerDone = k, w, 0, 0, 0, false
			s.closer, _ = w.(io.Closer)
			s.mu.Lock()
			s.stats.Media = k + 1
			s.mu.Unlock()
		}
	}
	if !s.headerDone {
		h := s.mhdr
		h.mediaSeq = uint32(s.media)
		h.logical = j.logical
		h.chunkSeq = j.seq
		var b [MediaHeaderSize]byte
		h.encode(b[:])
		if err := s.put(b[:]); err != nil {
			return err
		}
		s.headerDone = true
	}
	if err := s.put(j.hdr[:]); err != nil {
		return err
	}
	if err := s.put(j.stored); err != nil {
		return err
	}
	s.chunksHere++
	s.lastLogical = j.logical + int64(len(j.raw))
	s.mu.Lock()
	s.stats.Chunks++
	s.mu.Unlock()
	if j.cp != nil {
		s.pendingDur = append(s.pendingDur, pendingDur{end: s.written, cp: j.cp})
		s.fireDurable()
	}
	return nil
}

// put writes p to the current media, in fixed-size blocks if configured.
func (s *sink) put(p []byte) error {
	if s.blockSize == 0 {
		if _, err := s.out.Write(p); err != nil {
			return fmt.Errorf("stream: write media file %d: %w", s.media, err)
		}
		s.written += int64(len(p))
		s.flushed = s.written
		s.addPhysical(int64(len(p)))
		return nil
	}
	bs := s.blockSize
	for len(p) > 0 {
		if s.blen == 0 && len(p) >= bs {
			if err := s.writeBlock(p[:bs]); err != nil {
				return err
			}
			p = p[bs:]
			s.written += int64(bs)
			continue
		}
		n := copy(s.block[s.blen:], p)
		s.blen += n
		s.written += int64(n)
		p = p[n:]
		if s.blen == bs {
			if err := s.writeBlock(s.block); err != nil {
				return err
			}
			s.blen = 0
		}
	}
	return nil
}

func (s *sink) writeBlock(b []byte) error {
	if _, err := s.out.Write(b); err != nil {
		return fmt.Errorf("stream: write media file %d: %w", s.media, err)
	}
	s.flushed += int64(len(b))
	s.addPhysical(int64(len(b)))
	return nil
}

func (s *sink) addPhysical(n int64) {
	s.mu.Lock()
	s.stats.Physical += n
	s.mu.Unlock()
}

// finishMedia pads the last block of the current media and closes it if it
// was opened by OpenMedia. final is set at the end of the stream.
func (s *sink) finishMedia(final bool) error {
	if s.blockSize > 0 && s.blen > 0 {
		clear(s.block[s.blen:])
		if err := s.writeBlock(s.block); err != nil {
			return err
		}
		s.written += int64(s.blockSize - s.blen)
		s.blen = 0
	}
	if err := s.flushOut(); err != nil {
		return err
	}
	s.fireDurable()
	if s.closer != nil && s.media > 0 {
		if err := s.closer.Close(); err != nil {
			return fmt.Errorf("stream: close media file %d: %w", s.media, err)
		}
		s.closer = nil
	}
	_ = final
	return nil
}

// StagedWriter is a media writer that holds back some of what it accepts
// (to write it in larger or aligned pieces): Staged is how many bytes it
// accepted that have not reached the file yet, and Flush writes them. The
// sink counts a checkpoint durable only once its bytes have left the
// stage, and flushes at every barrier (Writer.Flush) and media end.
type StagedWriter interface {
	io.Writer
	Staged() int64
	Flush() error
}

func (s *sink) flushOut() error {
	if sw, ok := s.out.(StagedWriter); ok {
		if err := sw.Flush(); err != nil {
			return fmt.Errorf("stream: write media file %d: %w", s.media, err)
		}
	}
	return nil
}

// fireDurable reports the newest checkpoint whose bytes have all reached
// the current media file.
func (s *sink) fireDurable() {
	done := s.flushed
	if sw, ok := s.out.(StagedWriter); ok {
		done -= sw.Staged()
	}
	var last *pendingDur
	i := 0
	for ; i < len(s.pendingDur) && s.pendingDur[i].end <= done; i++ {
		last = &s.pendingDur[i]
	}
	if last == nil {
		return
	}
	cp := *last.cp
	cp.Media = s.media
	cp.MediaOffset = last.end
	s.pendingDur = append(s.pendingDur[:0], s.pendingDur[i:]...)
	s.mu.Lock()
	s.durable = cp
	s.mu.Unlock()
	if s.onCP != nil {
		s.onCP(cp)
	}
}
