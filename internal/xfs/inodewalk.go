package xfs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"xfskit/ondisk"
)

// ErrInodeNotAllocated is returned (wrapped) by InodeRawAllocated for an
// inode number the inode B-tree does not list as in use.
var ErrInodeNotAllocated = errors.New("inode not allocated")

// WalkInodeChunks calls fn for every inode B-tree record, AG by AG in
// startino order. Each record is verified (ondisk.InobtRec.Verify) and the
// B-tree walk verifies every block; the first problem ends the walk.
func (f *FS) WalkInodeChunks(ctx context.Context, fn func(agno uint32, rec ondisk.InobtRec) error) error {
	for agno := uint32(0); agno < f.SB.AGCount; agno++ {
		if err := f.walkAGChunks(ctx, agno, fn); err != nil {
			return err
		}
	}
	return nil
}

func (f *FS) walkAGChunks(ctx context.Context, agno uint32, fn func(agno uint32, rec ondisk.InobtRec) error) error {
	agi, err := f.AGI(agno)
	if err != nil {
		return err
	}
	sparse := f.SB.HasSpinodes()
	return f.WalkAGRecords(agno, agi.Root, int(agi.Level), ondisk.InobtGeom, func(raw []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := ondisk.DecodeInobtRec(raw, sparse)
		if err != nil {
			return err
		}
		if err := rec.Verify(f.SB, agno, fmt.Sprintf("AG %d inobt chunk at AG inode %d", agno, rec.StartIno)); err != nil {
			return err
		}
		return fn(agno, rec)
	})
}

// inodeBatch is one contiguous run of inode bytes read in a single I/O,
// with the allocated inodes it holds.
type inodeBatch struct {
	buf   []byte   // pooled buffer; data holds the run
	data  []byte   // buf[:run length]
	inos  []uint64 // allocated inodes in the run, increasing
	offs  []int    // their byte offsets in data
	agno  uint32
	start uint32 // first AG inode of the run
	err   error  // producer failure; ends the walk
}

// Walk tuning: one read covers at most walkBatchBytes (or one chunk if
// larger); walkBuffers buffers bound memory and how far the reader runs
// ahead of the caller.
const (
	walkBatchBytes = 1 << 20
	walkBuffers    = 4
)

// WalkInodes calls fn for every allocated inode (per the inode B-trees), in
// increasing inode number order, with that inode's raw on-disk bytes
// (sb.InodeSize long). raw is only valid during the call: copy it to keep
// it. Inode chunks are read in large sequential runs, skipping sparse holes
// (which are not inode space) and runs with no inode in use; a second
// goroutine reads ahead while fn works, with bounded memory. Corruption in
// the inode B-trees ends the walk with a *ondisk.CorruptError; so does an
// error from fn, returned unchanged, or cancellation of ctx.
func (f *FS) WalkInodes(parent context.Context, fn func(ino uint64, raw []byte) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	isize := int(f.SB.InodeSize)
	limit := max(walkBatchBytes, ondisk.InodesPerChunk*isize)
	pool := make(chan []byte, walkBuffers)
	for i := 0; i < walkBuffers; i++ {
		pool <- nil // allocated on first use
	}
	batches := make(chan *inodeBatch, walkBuffers-1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		r := &inodeReader{f: f, ctx: ctx, pool: pool, out: batches, limit: limit, isize: isize}
		if err := r.run(); err != nil && ctx.Err() == nil {
			select {
			case batches <- &inodeBatch{err: err}:
			case <-ctx.Done():
			}
		}
	}()
	err := consumeBatches(ctx, batches, pool, isize, fn)
	// Stop the reader (if fn failed) and wait for it: no goroutine outlives
	// the call.
	cancel()
	wg.Wait()
	return err
}

func consumeBatches(ctx context.Context, batches <-chan *inodeBatch, pool chan<- []byte, isize int, fn func(uint64, []byte) error) error {
	last, have := uint64(0), false
	for b := range batches {
		if b.err != nil {
			return b.err
		}
		for i, ino := range b.inos {
			if have && ino <= last {
				// Ordered, non-overlapping records guarantee this; keep the
				// promise even if a future change breaks it.
				return fmt.Errorf("inode walk: inode %d after %d: out of order", ino, last)
			}
			last, have = ino, true
			off := b.offs[i]
			if err := fn(ino, b.data[off:off+isize:off+isize]); err != nil {
				return err
			}
		}
		pool <- b.buf
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// inodeReader is the producer side of WalkInodes: it walks the inode
// B-trees and turns the present, in-use parts of chunks into batched reads.
type inodeReader struct {
	f     *FS
	ctx   context.Context
	pool  chan []byte
	out   chan<- *inodeBatch
	limit int
	isize int
	cur   *inodeBatch
}

func (r *inodeReader) run() error {
	for agno := uint32(0); agno < r.f.SB.AGCount; agno++ {
		err := r.f.walkAGChunks(r.ctx, agno, func(agno uint32, rec ondisk.InobtRec) error {
			alloc := rec.AllocatedInodes()
			if alloc == 0 {
				return nil
			}
			for _, run := range rec.PresentRuns() {
				var mask uint64
				for i := run[0]; i < run[1]; i++ {
					mask |= 1 << i
				}
				if alloc&mask == 0 {
					continue // present but entirely free: nothing to hand out
				}
				if err := r.add(agno, rec.StartIno+uint32(run[0]), rec.StartIno+uint32(run[1]), alloc, rec.StartIno); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := r.flush(); err != nil {
			return err
		}
	}
	return nil
}

// add appends AG inodes [from, to) to the current batch when they continue
// it on disk and fit, flushing it first otherwise.
func (r *inodeReader) add(agno, from, to uint32, alloc uint64, chunkStart uint32) error {
	b := r.cur
	runBytes := int(to-from) * r.isize
	if b != nil && (b.agno != agno || b.start+uint32(len(b.data)/r.isize) != from || len(b.data)+runBytes > r.limit) {
		if err := r.flush(); err != nil {
			return err
		}
		b = nil
	}
	if b == nil {
		var buf []byte
		select {
		case buf = <-r.pool:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
		if cap(buf) < r.limit {
			buf = make([]byte, r.limit)
		}
		b = &inodeBatch{buf: buf[:r.limit], data: buf[:0], agno: agno, start: from}
		r.cur = b
	}
	base := len(b.data)
	b.data = b.data[:base+runBytes]
	for a := from; a < to; a++ {
		if alloc&(1<<(a-chunkStart)) != 0 {
			b.inos = append(b.inos, r.f.SB.AGInoToIno(agno, a))
			b.offs = append(b.offs, base+int(a-from)*r.isize)
		}
	}
	return nil
}

// flush reads the current batch's bytes in one I/O and hands it on.
func (r *inodeReader) flush() error {
	b := r.cur
	if b == nil {
		return nil
	}
	r.cur = nil
	sb := r.f.SB
	byteOff := uint64(b.start) * uint64(r.isize) // AG inode n lives n inode sizes into the AG
	daddr := sb.AGBToDaddr(b.agno, 0) + byteOff>>ondisk.BBShift
	if err := r.f.ReadDaddrInto(daddr, b.data); err != nil {
		return fmt.Errorf("inode walk: AG %d inodes %d..%d: %w", b.agno, b.start, b.start+uint32(len(b.data)/r.isize)-1, err)
	}
	select {
	case r.out <- b:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// inoLocation validates ino and returns its AG, AG inode and disk address.
func (f *FS) inoLocation(ino uint64) (agno, agino uint32, daddr uint64, err error) {
	sb := f.SB
	agno, agino = sb.InoToAG(ino)
	bad := func(f string, a ...any) error {
		return ondisk.Corrupt("inode number", fmt.Sprintf("inode %d", ino), "", f, a...)
	}
	if agno >= sb.AGCount {
		return 0, 0, 0, bad("AG %d beyond the %d AGs of the filesystem", agno, sb.AGCount)
	}
	if sb.AGInoToIno(agno, agino) != ino {
		return 0, 0, 0, bad("not a valid inode number")
	}
	first, last := ondisk.AGInoRange(sb, agno)
	if agino < first || agino > last {
		return 0, 0, 0, bad("AG %d inode %d outside the AG's inode range %d..%d", agno, agino, first, last)
	}
	return agno, agino, sb.AGBToDaddr(agno, 0) + uint64(agino)*uint64(sb.InodeSize)>>ondisk.BBShift, nil
}

// InodeRaw reads the raw bytes (sb.InodeSize long) of inode ino after
// checking that the number can name an inode of this filesystem. It does
// not consult the inode B-tree; see InodeRawAllocated.
func (f *FS) InodeRaw(ino uint64) ([]byte, error) {
	_, _, daddr, err := f.inoLocation(ino)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, f.SB.InodeSize)
	if err := f.ReadDaddrInto(daddr, buf); err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	return buf, nil
}

// InodeRawAllocated is InodeRaw that first checks with the inode B-tree that
// ino is in use, failing with ErrInodeNotAllocated (wrapped) otherwise.
func (f *FS) InodeRawAllocated(ino uint64) ([]byte, error) {
	ok, err := f.InodeAllocated(ino)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("inode %d: %w", ino, ErrInodeNotAllocated)
	}
	return f.InodeRaw(ino)
}

// InodeAllocated reports whether the inode B-tree lists ino as in use.
func (f *FS) InodeAllocated(ino uint64) (bool, error) {
	agno, agino, _, err := f.inoLocation(ino)
	if err != nil {
		return false, err
	}
	rec, found, err := f.LookupInobt(agno, agino)
	if err != nil || !found {
		return false, err
	}
	return rec.IsAllocated(int(agino - rec.StartIno)), nil
}

// LookupInobt finds the inode B-tree record of AG agno whose chunk holds AG
// inode agino, descending from the AGI's root and verifying each block on
// the path. found is false when no chunk covers agino.
func (f *FS) LookupInobt(agno, agino uint32) (rec ondisk.InobtRec, found bool, err error) {
	sb := f.SB
	agi, err := f.AGI(agno)
	if err != nil {
		return rec, false, err
	}
	geom := ondisk.InobtGeom
	buf := make([]byte, sb.BlockSize)
	agbno, parent := agi.Root, ondisk.NullAGBno
	for level := int(agi.Level) - 1; level >= 0; level-- {
		where := blockWhere(agno, agbno)
		if agbno <= ondisk.AGFLBlock(sb) || agbno >= sb.AGLength(agno) {
			return rec, false, ondisk.Corrupt("inobt block", blockWhere(agno, parent), "ptr", "child block %d outside the AG", agbno)
		}
		daddr := sb.AGBToDaddr(agno, agbno)
		if err := f.ReadDaddrInto(daddr, buf); err != nil {
			return rec, false, fmt.Errorf("inobt %s: %w", where, err)
		}
		h, err := ondisk.VerifyBtreeBlock(buf, geom.Magic, sb.MetaUUIDOrUUID(), daddr, uint64(agno), level, where)
		if err != nil {
			return rec, false, err
		}
		n := int(h.NumRecs)
		if n > geom.MaxRecs(int(sb.BlockSize), level == 0) {
			return rec, false, ondisk.Corrupt("inobt block", where, "numrecs", "%d entries exceed the block's capacity", n)
		}
		b := &BtreeBlock{AGNo: agno, AGBno: agbno, Level: level, Header: h, Raw: buf, Geom: geom}
		if level == 0 {
			for i := 0; i < n; i++ {
				r, err := ondisk.DecodeInobtRec(b.Rec(i), sb.HasSpinodes())
				if err != nil {
					return rec, false, err
				}
				if agino >= r.StartIno && uint64(agino) < uint64(r.StartIno)+ondisk.InodesPerChunk {
					if err := r.Verify(sb, agno, fmt.Sprintf("%s rec %d", where, i)); err != nil {
						return rec, false, err
					}
					return r, true, nil
				}
			}
			return rec, false, nil
		}
		// Follow the last key not above agino.
		next := -1
		for i := 0; i < n; i++ {
			k, _ := ondisk.DecodeInobtKey(b.LowKey(i))
			if k.StartIno > agino {
				break
			}
			next = i
		}
		if next < 0 {
			return rec, false, nil
		}
		parent, agbno = agbno, b.Ptr(next)
	}
	return rec, false, nil
}
