package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

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

// Pipeline sizes: file writers (shared out among the streams; more
// writers than CPUs, since they mostly wait for the filesystem), and the
// file data that may be in flight between a stream reader and its writers.
const (
	writers        = 8
	piecesInFlight = 32 // of at most stream.MaxDataPiece bytes each
	// Files up to smallFile bytes travel with their data in batches of up
	// to batchJobs files and batchBytes bytes: one hand-over per batch.
	smallFile  = 64 << 10
	batchJobs  = 64
	batchBytes = 1 << 20
)

// job is one file handed from the stream reader to a writer. A small
// regular file carries its data inline; for a large one the reader sends
// its data on pieces (copies) and closes it, and the writer must read
// pieces to the end.
type job struct {
	f      *stream.File
	fn     *fileNode
	inline []piece // small files: data (in the batch's buffer)
	pieces chan piece
	ioErr  error // set before pieces is closed: the stream failed
}

// batch is what one hand-over to a writer carries.
type batch struct {
	jobs []*job
	buf  []byte
}

type piece struct {
	off  int64
	data []byte
	buf  *[]byte
}

// pipe is what the reader and writers of one stream share.
type pipe struct {
	jobs   chan *batch
	cur    *batch // being filled by the reader
	tokens chan struct{}
	bufs   sync.Pool      // data pieces of large files
	bbufs  sync.Pool      // batch buffers
	wg     sync.WaitGroup // writers
	inJobs sync.WaitGroup // jobs not finished

	mu       sync.Mutex
	inFlight map[uint64]bool // inodes being written
}

// readFiles restores the files of the stream: this goroutine reads and
// decompresses the stream while writers create the files, so that file
// system calls overlap with each other and with decompression.
func (w *worker) readFiles(ctx context.Context) {
	r := w.r
	w.cache = newDirCache(r.t, r.tree.root, r.loc)
	defer w.cache.close()
	p := &pipe{jobs: make(chan *batch, 8), tokens: make(chan struct{}, piecesInFlight), inFlight: map[uint64]bool{}}
	p.bufs.New = func() any { b := make([]byte, stream.MaxDataPiece); return &b }
	for range max(2, writers/len(r.ss.streams)) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			fw := &worker{r: r, st: w.st, cache: newDirCache(r.t, r.tree.root, r.loc)}
			defer fw.cache.close()
			for b := range p.jobs {
				for _, j := range b.jobs {
					fw.file(j, p)
					p.mu.Lock()
					delete(p.inFlight, j.f.Meta.Ino)
					p.mu.Unlock()
					p.inJobs.Done()
				}
				if b.buf != nil {
					buf := b.buf[:0]
					p.bbufs.Put(&buf)
				}
			}
		}()
	}
	defer p.wg.Wait()
	defer close(p.jobs)
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

// dispatch hands one file to the writers, then feeds them its data. The
// returned error is an I/O error on the stream.
func (w *worker) dispatch(f *stream.File, p *pipe) error {
	r := w.r
	ino := f.Meta.Ino
	fn := r.tree.files[ino]
	r.mu.Lock()
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
	// record must win, so it waits for the earlier one.
	p.mu.Lock()
	dup := p.inFlight[ino]
	p.inFlight[ino] = true
	p.mu.Unlock()
	if dup {
		p.flush()
		p.inJobs.Wait()
		p.mu.Lock()
		p.inFlight[ino] = true
		p.mu.Unlock()
	}
	j := &job{f: f, fn: fn}
	p.inJobs.Add(1)
	if f.Meta.Type() != stream.TypeRegular {
		p.add(j, 0)
		return nil
	}
	if f.Meta.Size <= smallFile {
		return p.addSmall(j)
	}
	p.flush()
	j.pieces = make(chan piece, 8)
	p.jobs <- &batch{jobs: []*job{j}}
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

// add puts a job into the batch being filled (n: its inline data bytes).
func (p *pipe) add(j *job, n int) {
	if p.cur == nil {
		p.cur = &batch{}
	}
	p.cur.jobs = append(p.cur.jobs, j)
	if len(p.cur.jobs) >= batchJobs || len(p.cur.buf)+n >= batchBytes {
		p.flush()
	}
}

// flush hands the batch being filled to the writers.
func (p *pipe) flush() {
	if p.cur != nil && len(p.cur.jobs) > 0 {
		p.jobs <- p.cur
	}
	p.cur = nil
}

// addSmall reads a small file's data into the batch buffer.
func (p *pipe) addSmall(j *job) error {
	if p.cur == nil {
		p.cur = &batch{}
	}
	if p.cur.buf == nil {
		if b, ok := p.bbufs.Get().(*[]byte); ok {
			p.cur.buf = *b
		} else {
			p.cur.buf = make([]byte, 0, batchBytes+smallFile)
		}
	}
	b := p.cur
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
			b.jobs = append(b.jobs, j)
			return err
		}
		start := len(b.buf)
		b.buf = append(b.buf, x.Data...)
		j.inline = append(j.inline, piece{off: x.Offset, data: b.buf[start:len(b.buf):len(b.buf)]})
	}
	var n int
	for _, pc := range j.inline {
		n += len(pc.data)
	}
	p.add(j, n)
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
	path := r.tree.filePath(first)
	pfd, err := w.cache.open(first.dir)
	if err != nil {
		r.problem(path, ino, "not restored: %v", err)
		return
	}
	var errs []error
	m := &f.Meta
	switch m.Type() {
	case stream.TypeRegular:
		errs = w.regular(pfd, first.name, j, p)
		if j.ioErr != nil {
			r.problem(path, ino, "not restored: reading the stream: %v", j.ioErr)
			return
		}
	case stream.TypeSymlink:
		if err := symlinkAt(pfd, first.name, m.Symlink); err != nil {
			r.problem(path, ino, "not restored: %v", err)
			return
		}
		errs = r.t.setSpecialMeta(pfd, first.name, m, f.Xattrs, true)
	case stream.TypeCharDev, stream.TypeBlockDev, stream.TypeFIFO, stream.TypeSocket:
		typ := map[stream.FileType]uint32{stream.TypeCharDev: unix.S_IFCHR, stream.TypeBlockDev: unix.S_IFBLK,
			stream.TypeFIFO: unix.S_IFIFO, stream.TypeSocket: unix.S_IFSOCK}[m.Type()]
		if err := mknodAt(pfd, first.name, typ|0o600, m.Rdev); err != nil {
			r.problem(path, ino, "not restored: %v", err)
			return
		}
		errs = r.t.setSpecialMeta(pfd, first.name, m, f.Xattrs, r.tree.dirs[first.dir].fresh)
	default:
		r.problem(path, ino, "not restored: unknown file type (mode %o)", m.Mode)
		return
	}
	if m.Type() != stream.TypeRegular {
		errs = append(errs, r.xfSpecial(pfd, first, m)...) // XFS attributes (xflags_run.go)
	}
	for _, err := range errs {
		r.problem(path, ino, "%v", err)
	}
	if f.Damaged {
		// Data or attributes were lost; the damage list says where.
		r.problem(path, ino, "damaged in the stream: restored incompletely")
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

// complete checks a file an interrupted run journalled as complete.
func (w *worker) complete(pfd int, name string, m *stream.FileMeta) bool {
	var st unix.Stat_t
	if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	want := map[stream.FileType]uint32{stream.TypeRegular: unix.S_IFREG, stream.TypeSymlink: unix.S_IFLNK,
		stream.TypeCharDev: unix.S_IFCHR, stream.TypeBlockDev: unix.S_IFBLK, stream.TypeFIFO: unix.S_IFIFO,
		stream.TypeSocket: unix.S_IFSOCK}[m.Type()]
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
	write := func(pc piece) {
		data, off := pc.data, pc.off
		for len(data) > 0 && werr == nil {
			n, err := unix.Pwrite(fd, data, off)
			if err != nil {
				werr = fmt.Errorf("write at offset %d: %w", off, err)
				break
			}
			if n == 0 {
				werr = fmt.Errorf("write at offset %d: no progress", off)
				break
			}
			data = data[n:]
			off += int64(n)
			r.bytes.Add(int64(n))
		}
		end = max(end, off)
	}
	for _, pc := range j.inline {
		write(pc)
	}
	if j.pieces != nil {
		for pc := range j.pieces {
			write(pc)
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
