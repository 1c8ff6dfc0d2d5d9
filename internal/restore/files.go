package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// worker reads one stream: its directory section, then its files.
type worker struct {
	r  *run
	st *streamIn

	dirs      []*stream.Dir
	dirsClean bool         // the whole directory section was read without damage
	pending   stream.Entry // first entry after the directory section
	err       error        // I/O error reading the stream

	cache *dirCache
}

// readDirs reads the directory section (up to the first file or link).
func (w *worker) readDirs() {
	rd := w.st.r
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.err = fmt.Errorf("%s: %w", w.st.name(), err)
			return
		}
		if d, ok := e.(*stream.Dir); ok {
			w.dirs = append(w.dirs, d)
			continue
		}
		w.pending = e
		break
	}
	// Files only come after the end of the directory section; a stream
	// without files is whole only if it was read to a verified trailer.
	w.dirsClean = len(rd.Damage()) == 0 && (w.pending != nil || rd.Complete())
}

// The files of a stream are restored by a pipeline: the stream's goroutine
// reads and verifies (and inflates) the stream and hands the files out to
// appliers, which make them, in batches of files of one directory.
// Creating a file locks its directory in the kernel (other creators there
// spin, then sleep), so a directory's batches go to the applier that has
// some of them in hand; another applier takes one only when it is idle
// and that applier's queue is full. New directories go to the least busy
// applier, by the work their files make (send).
const (
	// appliers per session, shared out among its streams (at least two
	// per stream): more than CPUs, since they also wait for the
	// filesystem (its log, dirty page throttling).
	appliers = 4
	// queueBatches is how many batches may wait for each applier: deep
	// enough that a directory of many files stays with one applier
	// while the reader feeds the others; inlineInFlight bounds the data
	// of small files they hold.
	queueBatches   = 16
	inlineInFlight = 32 << 20
	// piecesInFlight bounds the data of large files on their way to an
	// applier (pieces of at most stream.MaxDataPiece bytes).
	piecesInFlight = 32
	// Files up to smallFile bytes travel with their data in batches of up
	// to batchJobs files and batchBytes bytes, all in one directory: one
	// hand-over per batch.
	smallFile  = 64 << 10
	batchJobs  = 64
	batchBytes = 1 << 20
	// A file costs an applier about as much to make as writing
	// costBytes bytes of data: the load of an applier, in files, counts
	// its data that way.
	costBytes = 64 << 10
)

// jobCost is the load a file puts on an applier.
func jobCost(f *stream.File) int64 {
	if f.Meta.Type() != stream.TypeRegular {
		return 1
	}
	return 1 + f.Meta.Size/costBytes
}

// job is one file handed from the stream reader to an applier. A small
// regular file carries its data inline; for a large one the reader sends
// its data on pieces (copies) and closes it, and the applier must read
// pieces to the end.
type job struct {
	f      *stream.File
	fn     *fileNode
	cost   int64   // work it makes (jobCost)
	inline []piece // small files: data (in the batch's buffer)
	pieces chan piece
	ioErr  error // set before pieces is closed: the stream failed
}

// batch is what one hand-over to an applier carries: files whose first
// name is in directory dir.
type batch struct {
	dir  uint64
	jobs []*job
	buf  []byte
	load *dirLoad
}

type piece struct {
	off  int64
	data []byte
	buf  *[]byte
}

// dirLoad tells which applier has batches of a directory queued or in
// hand, and how many.
type dirLoad struct {
	applier int
	batches atomic.Int32
}

// applier makes files, one batch after another.
type applier struct {
	q     chan *batch
	load  atomic.Int64 // cost of the files queued or being made
	w     *worker
	pipe  *pipe
	index int
}

// pipe is what the reader and the appliers of one stream share.
type pipe struct {
	as     []*applier
	cur    *batch              // being filled by the reader
	dirs   map[uint64]*dirLoad // directories handed out (reader only)
	tokens chan struct{}       // pieces in flight
	change chan struct{}       // an applier took a batch or finished one
	inline atomic.Int64        // bytes of small files handed out and not written
	bufs   sync.Pool           // data pieces of large files
	bbufs  sync.Pool           // batch buffers
	wg     sync.WaitGroup      // appliers
	inJobs sync.WaitGroup      // files handed out and not finished
}

// readFiles restores the files of the stream: this goroutine reads and
// decompresses the stream while appliers create the files, so that file
// system calls overlap with each other and with decompression.
func (w *worker) readFiles(ctx context.Context) {
	r := w.r
	w.cache = newDirCache(r.t, r.tree.root, r.loc)
	defer w.cache.close()
	p := &pipe{tokens: make(chan struct{}, piecesInFlight), change: make(chan struct{}, 1), dirs: map[uint64]*dirLoad{}}
	p.bufs.New = func() any { b := make([]byte, stream.MaxDataPiece); return &b }
	for i := range max(2, appliers/len(r.ss.streams)) {
		a := &applier{q: make(chan *batch, queueBatches), index: i, pipe: p,
			w: &worker{r: r, st: w.st, cache: newDirCache(r.t, r.tree.root, r.loc)}}
		p.as = append(p.as, a)
		p.wg.Add(1)
		go a.run()
	}
	defer p.wg.Wait()
	defer p.stop()
	defer p.flush()
	rd := w.st.r
	e := w.pending
	w.pending = nil
	for {
		if e == nil {
			var err error
			e, err = rd.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				w.err = fmt.Errorf("%s: %w", w.st.name(), err)
				return
			}
		}
		if err := ctx.Err(); err != nil {
			w.err = err
			return
		}
		switch x := e.(type) {
		case *stream.File:
			if err := w.dispatch(x, p); err != nil {
				w.err = fmt.Errorf("%s: %w", w.st.name(), err)
				return
			}
		case *stream.HardLink:
			p.flush()
			p.inJobs.Wait() // the file it names is complete
			w.hardLink(x)
		case *stream.Dir:
			r.problem(r.tree.firstPath(x.Meta.Ino), x.Meta.Ino, "directory record after the directory section: ignored")
		}
		e = nil
	}
}

// run makes the files of the batches it is given.
func (a *applier) run() {
	defer a.pipe.wg.Done()
	defer a.w.cache.close()
	p := a.pipe
	for b := range a.q {
		p.moved()
		for _, j := range b.jobs {
			a.w.file(j, p)
			a.load.Add(-j.cost)
			p.inJobs.Done()
		}
		b.load.batches.Add(-1)
		p.inline.Add(-int64(len(b.buf)))
		p.moved()
		if b.buf != nil {
			buf := b.buf[:0]
			p.bbufs.Put(&buf)
		}
	}
}

// moved tells a waiting reader that an applier took or finished a batch.
func (p *pipe) moved() {
	select {
	case p.change <- struct{}{}:
	default:
	}
}

// stop ends the appliers once they have made what they were given.
func (p *pipe) stop() {
	for _, a := range p.as {
		close(a.q)
	}
}

// dispatch hands one file to an applier, then feeds it the file's data.
// The returned error is an I/O error on the stream.
func (w *worker) dispatch(f *stream.File, p *pipe) error {
	r := w.r
	ino := f.Meta.Ino
	fn := r.tree.files[ino]
	r.mu.Lock()
	dup := r.seen[ino]
	r.seen[ino] = true
	r.mu.Unlock()
	if fn == nil || len(fn.names) == 0 {
		if r.sel.all() && r.tree.dirs[ino] == nil {
			r.problem("", ino, "no name in the directory section: not restored")
		}
		return nil // Next skips the data
	}
	if r.resuming && r.j.files[ino] {
		if pfd, err := w.cache.open(fn.names[0].dir); err == nil && w.complete(pfd, fn.names[0].name, &f.Meta) {
			w.links(fn, ino)
			r.xfDefer(ino, &f.Meta) // late XFS flags (xflags_run.go)
			r.mu.Lock()
			r.res.Resumed++
			r.restored[ino] = savedFile{Ino: ino, Type: uint8(f.Meta.Type()), Size: f.Meta.Size}
			r.mu.Unlock()
			return nil
		}
	}
	// Only a damaged or hostile stream has an inode twice; the later
	// record must win, so it waits until every file handed out is made.
	if dup {
		p.flush()
		p.inJobs.Wait()
	}
	j := &job{f: f, fn: fn, cost: jobCost(f)}
	dir := fn.names[0].dir
	if f.Meta.Type() != stream.TypeRegular {
		p.add(dir, j, 0)
		return nil
	}
	if f.Meta.Size <= smallFile {
		return p.addSmall(dir, j)
	}
	p.flush()
	j.pieces = make(chan piece, piecesInFlight) // the reader waits for tokens only
	p.send(&batch{dir: dir, jobs: []*job{j}})
	defer close(j.pieces)
	for {
		x, err := f.NextExtent()
		if err == io.EOF {
			return nil
		}
		var de *stream.DamageError
		if errors.As(err, &de) {
			continue
		}
		if err != nil {
			j.ioErr = err
			return err
		}
		for len(x.Data) > 0 {
			p.tokens <- struct{}{}
			b := p.bufs.Get().(*[]byte)
			n := copy(*b, x.Data)
			j.pieces <- piece{off: x.Offset, data: (*b)[:n], buf: b}
			x.Data = x.Data[n:]
			x.Offset += int64(n)
		}
	}
}

// batchFor returns the batch being filled for files in directory dir,
// handing out the one being filled for another directory.
func (p *pipe) batchFor(dir uint64) *batch {
	if p.cur != nil && p.cur.dir != dir {
		p.flush()
	}
	if p.cur == nil {
		p.cur = &batch{dir: dir}
	}
	return p.cur
}

// add puts a job into the batch being filled (n: its inline data bytes).
func (p *pipe) add(dir uint64, j *job, n int) {
	b := p.batchFor(dir)
	b.jobs = append(b.jobs, j)
	if len(b.jobs) >= batchJobs || len(b.buf)+n >= batchBytes {
		p.flush()
	}
}

// flush hands the batch being filled to an applier.
func (p *pipe) flush() {
	if p.cur != nil && len(p.cur.jobs) > 0 {
		p.send(p.cur)
	}
	p.cur = nil
}

// send hands b to an applier: the one that has b's directory in hand
// while it has room in its queue (two appliers creating files in one
// directory wait for each other's lock in the kernel, and spin on it);
// else the least busy one with room, but another for b's directory only
// when one is idle. Only this goroutine sends, so a queue with room
// takes b at once; otherwise it waits for an applier to take or finish
// a batch.
func (p *pipe) send(b *batch) {
	d := p.dirs[b.dir]
	if d == nil {
		d = &dirLoad{}
		p.dirs[b.dir] = d
	}
	var a *applier
	for a == nil {
		var least, idle *applier
		for _, x := range p.as {
			if len(x.q) == cap(x.q) {
				continue
			}
			if least == nil || x.load.Load() < least.load.Load() {
				least = x
			}
			if x.load.Load() == 0 {
				idle = x
			}
		}
		switch own := p.as[d.applier]; {
		case d.batches.Load() == 0:
			a = least
		case len(own.q) < cap(own.q):
			a = own
		default:
			a = idle
		}
		if a != nil && p.inline.Load()+int64(len(b.buf)) > inlineInFlight && p.inline.Load() > 0 {
			a = nil // too much small-file data in flight
		}
		if a == nil {
			<-p.change
		}
	}
	var cost int64
	for _, j := range b.jobs {
		cost += j.cost
	}
	d.applier = a.index
	d.batches.Add(1)
	b.load = d
	p.inJobs.Add(len(b.jobs))
	p.inline.Add(int64(len(b.buf)))
	a.load.Add(cost)
	a.q <- b
}

// addSmall reads a small file's data into the batch buffer.
func (p *pipe) addSmall(dir uint64, j *job) error {
	b := p.batchFor(dir)
	if b.buf == nil {
		if bb, ok := p.bbufs.Get().(*[]byte); ok {
			b.buf = *bb
		} else {
			b.buf = make([]byte, 0, batchBytes+smallFile)
		}
	}
	n := 0
	for {
		x, err := j.f.NextExtent()
		if err == io.EOF {
			break
		}
		var de *stream.DamageError
		if errors.As(err, &de) {
			continue
		}
		if err != nil {
			j.ioErr = err
			p.add(dir, j, n)
			return err
		}
		start := len(b.buf)
		b.buf = append(b.buf, x.Data...)
		j.inline = append(j.inline, piece{off: x.Offset, data: b.buf[start:len(b.buf):len(b.buf)]})
		n += len(x.Data)
	}
	p.add(dir, j, n)
	return nil
}

// drain releases the data of a job that is not written.
func (j *job) drain(p *pipe) {
	if j.pieces == nil {
		return
	}
	for pc := range j.pieces {
		p.bufs.Put(pc.buf)
		<-p.tokens
	}
}

// file restores one non-directory inode under all its selected names;
// what goes wrong is reported as a problem.
func (w *worker) file(j *job, p *pipe) {
	defer j.drain(p)
	r := w.r
	f, fn := j.f, j.fn
	ino := f.Meta.Ino
	first := fn.names[0]
	pfd, err := w.cache.open(first.dir)
	if err != nil {
		r.problem(r.tree.filePath(first), ino, "not restored: %v", err)
		return
	}
	var errs []error
	m := &f.Meta
	switch m.Type() {
	case stream.TypeRegular:
		errs = w.regular(pfd, first.name, j, p)
		if j.ioErr != nil {
			r.problem(r.tree.filePath(first), ino, "not restored: reading the stream: %v", j.ioErr)
			return
		}
	case stream.TypeSymlink:
		if err := symlinkAt(pfd, first.name, m.Symlink); err != nil {
			r.problem(r.tree.filePath(first), ino, "not restored: %v", err)
			return
		}
		errs = r.t.setSpecialMeta(pfd, first.name, m, f.Xattrs, true)
	case stream.TypeCharDev, stream.TypeBlockDev, stream.TypeFIFO, stream.TypeSocket:
		if err := mknodAt(pfd, first.name, nodeType(m.Type())|0o600, m.Rdev); err != nil {
			r.problem(r.tree.filePath(first), ino, "not restored: %v", err)
			return
		}
		errs = r.t.setSpecialMeta(pfd, first.name, m, f.Xattrs, r.tree.dirs[first.dir].fresh)
	default:
		r.problem(r.tree.filePath(first), ino, "not restored: unknown file type (mode %o)", m.Mode)
		return
	}
	if m.Type() != stream.TypeRegular {
		errs = append(errs, r.xfSpecial(pfd, first, m)...) // XFS attributes (xflags_run.go)
	}
	for _, err := range errs {
		r.problem(r.tree.filePath(first), ino, "%v", err)
	}
	if f.Damaged {
		// Data or attributes were lost; the damage list says where.
		r.problem(r.tree.filePath(first), ino, "damaged in the stream: restored incompletely")
	}
	w.links(fn, ino)
	r.xfDefer(ino, m) // late XFS flags wait for all files and names
	r.files.Add(1)
	r.filesDone.Add(1)
	r.j.fileDone(ino)
	r.mu.Lock()
	r.restored[ino] = savedFile{Ino: ino, Type: uint8(m.Type()), Size: m.Size}
	r.mu.Unlock()
	r.hook("file")
}

// nodeType is the S_IFMT type of a device node, fifo or socket.
func nodeType(t stream.FileType) uint32 {
	switch t {
	case stream.TypeCharDev:
		return unix.S_IFCHR
	case stream.TypeBlockDev:
		return unix.S_IFBLK
	case stream.TypeFIFO:
		return unix.S_IFIFO
	}
	return unix.S_IFSOCK
}

// complete checks a file an interrupted run journalled as complete.
func (w *worker) complete(pfd int, name string, m *stream.FileMeta) bool {
	var st unix.Stat_t
	if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	want := uint32(unix.S_IFREG)
	switch m.Type() {
	case stream.TypeRegular:
	case stream.TypeSymlink:
		want = unix.S_IFLNK
	case stream.TypeCharDev, stream.TypeBlockDev, stream.TypeFIFO, stream.TypeSocket:
		want = nodeType(m.Type())
	default:
		return false
	}
	if st.Mode&unix.S_IFMT != want {
		return false
	}
	return m.Type() != stream.TypeRegular || st.Size == m.Size
}

// regular writes a regular file: data where the stream has data, holes
// left as holes (never written), then the size, metadata and times.
func (w *worker) regular(pfd int, name string, j *job, p *pipe) (errs []error) {
	r := w.r
	f := j.f
	fresh := r.tree.dirs[j.fn.names[0].dir].fresh
	mode, final := r.t.createMode(&f.Meta, fresh)
	fd, err := createFile(pfd, name, mode)
	if err != nil {
		return []error{fmt.Errorf("not restored: %w", err)}
	}
	defer unix.Close(fd)
	if !fresh {
		if err := inheritedACL(f.Xattrs, func(n string) error { return unix.Fremovexattr(fd, n) }); err != nil {
			errs = append(errs, err)
		}
	}
	// XFS attributes before the data: hints need a file without extents.
	errs = append(errs, r.xfEarlyFile(fd, j.fn.names[0].dir, &f.Meta)...)
	var werr error
	var end int64 // end of the data written
	for _, pc := range j.inline {
		end = r.writeAt(fd, pc, end, &werr)
	}
	if j.pieces != nil {
		for pc := range j.pieces {
			end = r.writeAt(fd, pc, end, &werr)
			p.bufs.Put(pc.buf)
			<-p.tokens
		}
	}
	if werr != nil {
		errs = append(errs, werr)
	}
	// Only a trailing hole needs the size set: truncating to the size the
	// data already gives makes XFS flush the file when it is closed.
	if end < f.Meta.Size {
		if err := unix.Ftruncate(fd, f.Meta.Size); err != nil {
			errs = append(errs, fmt.Errorf("set size %d: %w", f.Meta.Size, err))
		}
	}
	return append(errs, r.t.setFdMeta(fd, &f.Meta, f.Xattrs, final)...)
}

// writeAt writes a piece of data at its offset (unless an earlier write
// failed, *werr) and returns the end of the data written so far.
func (r *run) writeAt(fd int, pc piece, end int64, werr *error) int64 {
	data, off := pc.data, pc.off
	for len(data) > 0 && *werr == nil {
		n, err := unix.Pwrite(fd, data, off)
		if err != nil {
			*werr = fmt.Errorf("write at offset %d: %w", off, err)
			break
		}
		if n == 0 {
			*werr = fmt.Errorf("write at offset %d: no progress", off)
			break
		}
		data = data[n:]
		off += int64(n)
		r.wrote(int64(n))
	}
	return max(end, off)
}

// links gives a restored file its other selected names.
func (w *worker) links(fn *fileNode, ino uint64) {
	if len(fn.names) < 2 {
		return
	}
	r := w.r
	first := fn.names[0]
	pfd, err := w.cache.open(first.dir)
	if err != nil {
		return
	}
	sfd, err := unix.Dup(pfd) // the cache may close pfd while opening others
	if err != nil {
		r.problem(r.tree.filePath(first), ino, "hard links not made: %v", err)
		return
	}
	defer unix.Close(sfd)
	for _, n := range fn.names[1:] {
		dfd, err := w.cache.open(n.dir)
		if err == nil {
			err = linkAt(sfd, first.name, dfd, n.name)
		}
		if err != nil {
			r.problem(r.tree.filePath(n), ino, "hard link not made: %v", err)
			continue
		}
		r.links.Add(1)
	}
}

// hardLink handles a HARDLINK record: one more name for a file of this
// stream that the directory section does not already give.
func (w *worker) hardLink(l *stream.HardLink) {
	r := w.r
	if l.Name == "" {
		return
	}
	d := r.tree.dirs[l.Parent]
	fn := r.tree.files[l.Ino]
	if d == nil || fn == nil || len(fn.names) == 0 {
		return
	}
	p := joinPath(d.path, l.Name)
	if err := checkName(l.Name); err != nil {
		r.problem(p, l.Ino, "hard link refused: %v", err)
		return
	}
	if !r.sel.inside(p) {
		return
	}
	for _, n := range fn.names {
		if n.dir == l.Parent && n.name == l.Name {
			return
		}
	}
	r.mu.Lock()
	_, done := r.restored[l.Ino]
	r.mu.Unlock()
	if !done {
		r.problem(p, l.Ino, "hard link to a file that was not restored")
		return
	}
	first := fn.names[0]
	pfd, err := w.cache.open(first.dir)
	var sfd int
	if err == nil {
		sfd, err = unix.Dup(pfd)
	}
	if err != nil {
		r.problem(p, l.Ino, "hard link not made: %v", err)
		return
	}
	defer unix.Close(sfd)
	dfd, err := w.cache.open(l.Parent)
	if err == nil {
		err = linkAt(sfd, first.name, dfd, l.Name)
	}
	if err != nil {
		r.problem(p, l.Ino, "hard link not made: %v", err)
		return
	}
	r.links.Add(1)
	r.mu.Lock()
	if f, ok := r.restored[l.Ino]; ok {
		f.Names = append(f.Names, savedName{l.Parent, l.Name})
		r.restored[l.Ino] = f
	}
	r.mu.Unlock()
}
