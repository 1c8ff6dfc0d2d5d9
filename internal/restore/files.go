package restore

import (
	"context"
	"errors"
	"fmt"
	"io"

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

// readFiles restores the files of the stream.
func (w *worker) readFiles(ctx context.Context) {
	r := w.r
	w.cache = newDirCache(r.t, r.tree.root, r.loc)
	defer w.cache.close()
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
			if err := w.file(x); err != nil {
				w.err = fmt.Errorf("%s: %w", w.st.name(), err)
				return
			}
		case *stream.HardLink:
			w.hardLink(x)
		case *stream.Dir:
			r.problem(r.tree.firstPath(x.Meta.Ino), x.Meta.Ino, "directory record after the directory section: ignored")
		}
		e = nil
	}
}

// file restores one non-directory inode under all its selected names.
// The returned error is an I/O error on the stream (which ends the
// worker); everything else is reported as a problem.
func (w *worker) file(f *stream.File) error {
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
		return nil
	}
	first := fn.names[0]
	path := r.tree.filePath(first)
	pfd, err := w.cache.open(first.dir)
	if err != nil {
		r.problem(path, ino, "not restored: %v", err)
		return nil
	}
	if r.resuming && r.j.files[ino] && w.complete(pfd, first.name, &f.Meta) {
		w.links(fn, ino)
		r.mu.Lock()
		r.res.Resumed++
		r.restored[ino] = savedFile{Ino: ino, Type: uint8(f.Meta.Type()), Size: f.Meta.Size}
		r.mu.Unlock()
		return nil
	}
	var errs []error
	m := &f.Meta
	switch m.Type() {
	case stream.TypeRegular:
		var ioErr error
		errs, ioErr = w.regular(pfd, first.name, f)
		if ioErr != nil {
			return ioErr
		}
	case stream.TypeSymlink:
		if err := symlinkAt(pfd, first.name, m.Symlink); err != nil {
			r.problem(path, ino, "not restored: %v", err)
			return nil
		}
		errs = r.t.setSpecialMeta(pfd, first.name, m, f.Xattrs)
	case stream.TypeCharDev, stream.TypeBlockDev, stream.TypeFIFO, stream.TypeSocket:
		typ := map[stream.FileType]uint32{stream.TypeCharDev: unix.S_IFCHR, stream.TypeBlockDev: unix.S_IFBLK,
			stream.TypeFIFO: unix.S_IFIFO, stream.TypeSocket: unix.S_IFSOCK}[m.Type()]
		if err := mknodAt(pfd, first.name, typ|0o600, m.Rdev); err != nil {
			r.problem(path, ino, "not restored: %v", err)
			return nil
		}
		errs = r.t.setSpecialMeta(pfd, first.name, m, f.Xattrs)
	default:
		r.problem(path, ino, "not restored: unknown file type (mode %o)", m.Mode)
		return nil
	}
	for _, err := range errs {
		r.problem(path, ino, "%v", err)
	}
	if f.Damaged {
		// Data or attributes were lost; the damage list says where.
		r.problem(path, ino, "damaged in the stream: restored incompletely")
	}
	w.links(fn, ino)
	r.files.Add(1)
	r.filesDone.Add(1)
	r.j.fileDone(ino)
	r.mu.Lock()
	r.restored[ino] = savedFile{Ino: ino, Type: uint8(m.Type()), Size: m.Size}
	r.mu.Unlock()
	r.hook("file")
	return nil
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
func (w *worker) regular(pfd int, name string, f *stream.File) (errs []error, ioErr error) {
	r := w.r
	fd, err := createFile(pfd, name)
	if err != nil {
		return []error{fmt.Errorf("not restored: %w", err)}, nil
	}
	defer unix.Close(fd)
	var werr error
	for {
		x, err := f.NextExtent()
		if err == io.EOF {
			break
		}
		var de *stream.DamageError
		if errors.As(err, &de) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if werr != nil {
			continue // keep reading the stream past this file
		}
		data, off := x.Data, x.Offset
		for len(data) > 0 {
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
	}
	if werr != nil {
		errs = append(errs, werr)
	}
	if err := unix.Ftruncate(fd, f.Meta.Size); err != nil {
		errs = append(errs, fmt.Errorf("set size %d: %w", f.Meta.Size, err))
	}
	errs = append(errs, r.t.setFdMeta(fd, &f.Meta, f.Xattrs)...)
	return errs, nil
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
