package dump

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sync/semaphore"

	"xfskit/internal/stream"
	"xfskit/internal/xfs"
)

// The file section is written by several goroutines: a walker goes
// through the stream's share of inodes, decodes them and queues their
// operations (fileOps, in stream order) in batches, with a place in a
// bounded set of buffers for every piece of data; reader goroutines read
// the pieces of whole batches (the kernel's copy out of the page cache is
// the largest cost of an uncompressed dump) and CRC them while they are in
// cache; the stream writer's goroutine takes the batches in order, once
// read, and copies the pieces into chunks. This keeps every CPU busy.

// Read-ahead bounds: slabCount slabs of slabSize bytes of file data, at
// most batchDepth batches of batchOps operations queued (batches, because
// a hand-over per small file costs more than the file), and at most
// xattrBudget bytes of extended attributes in queued file operations.
const (
	slabSize    = 2 << 20 // holds at least one MaxDataPiece piece
	slabCount   = 8
	batchOps    = 64
	batchBytes  = 1 << 20 // data in a batch that is sent without waiting for more
	batchDepth  = 4
	xattrBudget = 16 << 20
	// spanAlign aligns the data of each piece: the kernel copies out of
	// the page cache several times slower into an 8-byte-aligned buffer
	// than into a 64-byte-aligned one.
	spanAlign = 64
)

type fileOpKind uint8

const (
	opFile    fileOpKind = iota // begin a file (regular: data and opEnd follow)
	opData                      // a piece of data, or the failure to read it
	opEnd                       // end of a regular file
	opRelease                   // the consumer is done with a slab
	opFail                      // the walk failed: end the dump
)

// fileOp is one step of the file section, produced by fileReader.
type fileOp struct {
	kind    fileOpKind
	ino     uint64
	meta    stream.FileMeta // opFile
	xattrs  []stream.Xattr  // opFile
	regular bool            // opFile
	weight  int64           // opFile: xattr bytes held in the budget
	off     int64           // opData: file offset
	n       int64           // opData: length
	buf     []byte          // opData: DataHeadroom bytes, then room for the data
	crc     uint32          // opData: stream.PieceCRC of the data, once read
	file    *xfs.File       // opData: where to read it from
	slab    *slab           // opRelease
	err     error           // opData: read failure (set by a reader); opFail
}

// opBatch is a run of operations handed over together; ready is closed
// once the readers have filled its data pieces.
type opBatch struct {
	ops   []fileOp
	reads bool
	ready chan struct{}
}

// slab is a buffer that pieces are cut from, in order.
type slab struct {
	mem  []byte // aligned on spanAlign
	used int
}

// fileReader is the producing side.
type fileReader struct {
	d      *dumper
	ctx    context.Context
	ops    chan *opBatch // to the writer, in order
	readq  chan *opBatch // to the readers, in the same order
	batch  *opBatch
	spare  chan *opBatch // batches the writer is done with, for reuse
	bytes  int64         // data in batch
	slabs  chan *slab    // free slabs
	made   int           // slabs allocated so far
	cur    *slab
	budget *semaphore.Weighted
}

func newFileReader(ctx context.Context, d *dumper) *fileReader {
	return &fileReader{d: d, ctx: ctx, ops: make(chan *opBatch, batchDepth),
		readq: make(chan *opBatch, batchDepth), batch: newBatch(), spare: make(chan *opBatch, 2*batchDepth+2),
		slabs: make(chan *slab, slabCount), budget: semaphore.NewWeighted(xattrBudget)}
}

func newBatch() *opBatch { return &opBatch{ops: make([]fileOp, 0, batchOps)} }

// send queues op; false once the consumer has stopped.
func (fr *fileReader) send(op fileOp) bool {
	fr.batch.ops = append(fr.batch.ops, op)
	if op.kind == opData {
		fr.batch.reads = true
		fr.bytes += op.n
	}
	if len(fr.batch.ops) < batchOps && fr.bytes < batchBytes && op.kind != opFail {
		return fr.ctx.Err() == nil
	}
	return fr.flush()
}

// flush hands the batch over, to the readers first; it must be called
// before waiting for anything the consumer gives back (slabs, xattr
// budget).
func (fr *fileReader) flush() bool {
	b := fr.batch
	if len(b.ops) == 0 {
		return fr.ctx.Err() == nil
	}
	if b.reads {
		b.ready = make(chan struct{})
		select {
		case fr.readq <- b:
		case <-fr.ctx.Done():
			return false
		}
	}
	select {
	case fr.ops <- b:
	case <-fr.ctx.Done():
		return false
	}
	select {
	case fr.batch = <-fr.spare:
		clear(fr.batch.ops) // drop what the old operations held
		fr.batch.ops, fr.batch.reads, fr.batch.ready = fr.batch.ops[:0], false, nil
	default:
		fr.batch = newBatch()
	}
	fr.bytes = 0
	return true
}

// readBatches fills the data pieces of the batches in readq.
func (fr *fileReader) readBatches() {
	d := fr.d
	for b := range fr.readq {
		var failed error
		for i := range b.ops {
			op := &b.ops[i]
			if op.kind != opData {
				continue
			}
			if failed == nil {
				failed = fr.ctx.Err()
			}
			if failed != nil {
				op.err = failed // never written: the writer stops at the first failure
				continue
			}
			data := op.buf[stream.DataHeadroom:]
			if _, err := op.file.ReadAt(data, op.off); err != nil {
				// The writer fails the stream with it, as a failed read
				// in WriteData would.
				op.err, failed = err, err
				continue
			}
			op.crc = stream.PieceCRC(data) // while it is in this CPU's cache
			d.data.Add(op.n)
			if d.opts.onData != nil {
				d.opts.onData(int(op.n))
			}
		}
		close(b.ready)
	}
}

// span returns DataHeadroom+n bytes for a piece of n <= MaxDataPiece bytes
// whose data starts on a spanAlign boundary, retiring the current slab
// (and waiting for a free one) when it has no room left.
func (fr *fileReader) span(n int) ([]byte, error) {
	if fr.cur != nil {
		if b := fr.cur.cut(n); b != nil {
			return b, nil
		}
		if !fr.send(fileOp{kind: opRelease, slab: fr.cur}) {
			return nil, fr.ctx.Err()
		}
		fr.cur = nil
	}
	select {
	case s := <-fr.slabs:
		fr.cur = s
	default:
		if fr.made < slabCount {
			fr.made++
			fr.cur = newSlab()
			break
		}
		if !fr.flush() {
			return nil, fr.ctx.Err()
		}
		select {
		case s := <-fr.slabs:
			fr.cur = s
		case <-fr.ctx.Done():
			return nil, fr.ctx.Err()
		}
	}
	fr.cur.used = 0
	return fr.cur.cut(n), nil
}

func newSlab() *slab {
	raw := make([]byte, slabSize+spanAlign)
	o := (spanAlign - int(uintptr(unsafe.Pointer(&raw[0]))%spanAlign)) % spanAlign
	return &slab{mem: raw[o : o+slabSize : o+slabSize]}
}

// cut returns the next DataHeadroom+n bytes with the data aligned, or nil.
func (s *slab) cut(n int) []byte {
	start := (s.used + stream.DataHeadroom + spanAlign - 1) / spanAlign * spanAlign
	if start+n > len(s.mem) {
		return nil
	}
	s.used = start + n
	return s.mem[start-stream.DataHeadroom : start+n : start+n]
}

// run walks files (the stream's share, ascending) and queues their
// operations; it closes ops when done.
func (fr *fileReader) run(files []fileRef) {
	var readers sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		readers.Go(fr.readBatches)
	}
	defer close(fr.ops)
	defer readers.Wait()
	defer close(fr.readq)
	if err := fr.walk(files); err != nil && fr.ctx.Err() == nil {
		fr.send(fileOp{kind: opFail, err: err})
	}
	fr.flush()
}

// walk reads dense shares with the inode-order walk (large sequential
// reads); sparse ones, typical of incremental dumps, inode by inode.
func (fr *fileReader) walk(files []fileRef) error {
	d := fr.d
	inRange := 0
	first, last := files[0].ino, files[len(files)-1].ino
	for _, in := range d.model.inodes {
		if in.ino >= first && in.ino <= last {
			inRange++
		}
	}
	if len(files)*8 < inRange {
		for _, f := range files {
			if err := fr.ctx.Err(); err != nil {
				return err
			}
			raw, err := d.fs.InodeRaw(f.ino)
			if err != nil {
				return err
			}
			if err := fr.file(f.ino, raw); err != nil {
				return err
			}
		}
		return nil
	}
	i := 0
	err := d.fs.WalkInodes(fr.ctx, func(ino uint64, raw []byte) error {
		if ino < files[i].ino {
			return nil
		}
		for i < len(files) && files[i].ino < ino {
			d.problem("inode %d: no longer allocated during the dump", files[i].ino)
			i++
		}
		if i == len(files) {
			return errWalkDone
		}
		if files[i].ino != ino {
			return nil
		}
		i++
		if err := fr.file(ino, raw); err != nil {
			return err
		}
		if i == len(files) {
			return errWalkDone
		}
		return nil
	})
	if errors.Is(err, errWalkDone) {
		err = nil
	}
	if err == nil && i < len(files) {
		return fmt.Errorf("inode %d and %d more: not found by the inode walk", files[i].ino, len(files)-i-1)
	}
	return err
}

// file queues one non-directory inode. Corruption that makes it
// unreadable is reported and the inode skipped (before anything of it is
// queued); device errors end the dump, through the consumer when they hit
// file data (so that the stream reports them where they happened).
func (fr *fileReader) file(ino uint64, raw []byte) error {
	d := fr.d
	if d.opts.beforeFile != nil {
		d.opts.beforeFile(ino)
	}
	ip, err := d.fs.DecodeInodeShared(ino, raw) // nothing of it outlives the call
	if err != nil {
		d.problem("%v: not dumped", err)
		return nil
	}
	meta, err := metaOf(d.fs, ip)
	if err != nil {
		d.problem("%v: not dumped", err)
		return nil
	}
	xattrs, err := xattrsOf(d.fs, ip)
	if err != nil {
		if isIOError(err) {
			return err
		}
		d.problem("inode %d: attributes: %v: not dumped", ino, err)
		return nil
	}
	var f *xfs.File
	switch {
	case ip.IsReg():
		if f, err = d.fs.OpenFile(ip); err != nil {
			if isIOError(err) {
				return err
			}
			d.problem("%v: not dumped", err)
			return nil
		}
	case ip.IsSymlink():
		target, err := d.fs.Readlink(ip)
		if err != nil {
			if isIOError(err) {
				return err
			}
			d.problem("%v: not dumped", err)
			return nil
		}
		meta.Symlink = target
	}
	var w int64
	for i := range xattrs {
		w += int64(len(xattrs[i].Name) + len(xattrs[i].Value))
	}
	w = min(w, xattrBudget)
	if !fr.budget.TryAcquire(w) {
		if !fr.flush() {
			return fr.ctx.Err()
		}
		if err := fr.budget.Acquire(fr.ctx, w); err != nil {
			return err
		}
	}
	if !fr.send(fileOp{kind: opFile, ino: ino, meta: meta, xattrs: xattrs, regular: f != nil, weight: w}) {
		return fr.ctx.Err()
	}
	if f == nil {
		return nil
	}
	for _, run := range f.DataMap() {
		if run.Kind != xfs.RunData {
			continue // holes and unwritten extents are holes
		}
		// Pieces are cut as Writer.WriteData cuts an extent.
		for off, end := run.Off, run.Off+run.Len; off < end; {
			n := min(end-off, stream.MaxDataPiece)
			buf, err := fr.span(int(n))
			if err != nil {
				return err
			}
			// Read by readBatches: f is used after this call returns, which
			// is safe as File keeps its own extent map (the inode's raw
			// bytes, shared with the walk, are not read again).
			if !fr.send(fileOp{kind: opData, ino: ino, off: off, n: n, buf: buf, file: f}) {
				return fr.ctx.Err()
			}
			off += n
		}
	}
	if !fr.send(fileOp{kind: opEnd, ino: ino}) {
		return fr.ctx.Err()
	}
	return nil
}

// failedRead is a reader that fails with err: it hands a read failure of
// the reading goroutine to Writer.WriteData, which fails the stream with
// the message a failed read in place gives.
type failedRead struct{ err error }

func (r failedRead) Read([]byte) (int, error) { return 0, r.err }

// writeOps writes the operations fr queues, returning the slabs it is done
// with; it stops at the first error.
func (d *dumper) writeOps(w *stream.Writer, fr *fileReader) error {
	for b := range fr.ops {
		if b.ready != nil {
			<-b.ready
		}
		if err := d.writeBatch(w, fr, b.ops); err != nil {
			return err
		}
		select {
		case fr.spare <- b:
		default:
		}
	}
	return nil
}

func (d *dumper) writeBatch(w *stream.Writer, fr *fileReader, ops []fileOp) error {
	for i := range ops {
		op := &ops[i]
		switch op.kind {
		case opFile:
			var err error
			if op.regular {
				err = w.BeginFile(op.meta, op.xattrs)
			} else {
				err = w.WriteFile(op.meta, op.xattrs, nil)
				if err == nil {
					d.files.Add(1)
				}
			}
			fr.budget.Release(op.weight)
			if err != nil {
				return err
			}
		case opData:
			if op.err != nil {
				return w.WriteData(op.off, failedRead{op.err}, op.n)
			}
			if err := w.WriteDataInPlace(op.off, op.buf, op.crc); err != nil {
				return err
			}
		case opEnd:
			if err := w.EndFile(); err != nil {
				return err
			}
			d.files.Add(1)
		case opRelease:
			fr.slabs <- op.slab
		case opFail:
			return op.err
		}
	}
	return nil
}
