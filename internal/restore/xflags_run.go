package restore

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// When restore applies XFS attributes (flags, project id, hints):
//
//   - a directory gets only its project id and proj-inherit flag as soon
//     as it is made, so that what is created in it inherits the project
//     id as on the source (which matters for symlinks and special files on
//     kernels that cannot set it on them); everything else once its
//     contents are complete, with its other metadata, deepest first. The
//     root's immutable/append-only flags come last of all (the state
//     directory is removed from it at the very end).
//   - a regular file gets its attributes right after it is created, before
//     its data: an extent size hint (and the realtime flag) can only be
//     set while a file has no extents, and the hint should shape the
//     allocation as on the source.
//   - symlinks, devices, fifos and sockets get theirs by name with
//     file_setattr (Linux 6.17); without it, a fifo is opened and other
//     types are reported when they have anything to set.
//   - immutable, append-only and sync (xfLate) wait until every file is
//     written and has all its names (HARDLINK records come after the
//     file, and a locked file cannot be linked).
//
// Predictions: a new inode inherits from its directory. While restore
// knows a directory's attributes and they hold nothing but a project id,
// a new inode in it gets exactly that id (and a directory the flag), so
// the common case (no attributes anywhere) costs no system call.
//
// Cumulative restores: a later session must be able to change, remove
// and rename what an earlier one locked. The state directory keeps
// xflagsFile, the inodes locked by the last session with their
// attributes; a session first unlocks them (at their recorded places),
// then works, then locks what it restored, what it kept (from the list)
// and its directories again. The list is written before anything is
// locked, so it always covers what is locked. It also carries the late
// flags of a session over a resume after all files were written.

// xflagsFile is kept in the state directory.
const xflagsFile = "xflags.json"

type xfList struct {
	Version int       `json:"version"`
	Session string    `json:"session"`
	Entries []xfEntry `json:"entries"`
}

// xfEntry is an inode of the dump with its attributes.
type xfEntry struct {
	Ino        uint64 `json:"ino"`
	Dir        bool   `json:"dir,omitempty"`
	XFlags     uint32 `json:"xflags"`
	ProjID     uint32 `json:"projid,omitempty"`
	ExtSize    uint32 `json:"extsize,omitempty"`
	CowExtSize uint32 `json:"cowextsize,omitempty"`
}

func (e xfEntry) attr() fsAttr {
	return fsAttr{XFlags: e.XFlags, ProjID: e.ProjID, ExtSize: e.ExtSize, CowExtSize: e.CowExtSize}
}

func entryOf(ino uint64, dir bool, a fsAttr) xfEntry {
	return xfEntry{Ino: ino, Dir: dir, XFlags: a.XFlags, ProjID: a.ProjID, ExtSize: a.ExtSize, CowExtSize: a.CowExtSize}
}

// xfRun is a run's share of the work on XFS attributes.
type xfRun struct {
	noCall atomic.Bool // file_getattr/file_setattr are missing (ENOSYS)
	mu     sync.Mutex
	late   map[uint64]fsAttr // files waiting for their late flags

	list    *xfList   // the list in the state directory
	pending []xfEntry // files whose late flags are applied after all files
	saved   bool      // pending is complete (xfSaveLate ran)
}

func (r *run) xfOff() bool { return r.opts.NoXFlags }

// setDirAttr records what restore knows of a directory's attributes. Only
// arrange and the directory metadata phase set them, each directory from
// one goroutine; file appliers read them in between.
func setDirAttr(d *dirNode, a fsAttr, known bool) {
	d.xf, d.xfKnown = a, known
}

// childAttr predicts what a new inode in directory dir starts with.
func (r *run) childAttr(dir uint64, isDir bool) (fsAttr, bool) {
	d := r.tree.dirs[dir]
	if d == nil || !d.xfKnown {
		return fsAttr{}, false
	}
	p := d.xf
	if p.XFlags&xfAll&^xfProjInherit != 0 || p.ExtSize != 0 || p.CowExtSize != 0 {
		return fsAttr{}, false
	}
	var c fsAttr
	if p.XFlags&xfProjInherit != 0 {
		c.ProjID = p.ProjID
		if isDir {
			c.XFlags = xfProjInherit
		}
	}
	return c, true
}

// ---- inodes reached by name ----

// nodeAttrs reaches name in dirfd: by file_getattr/file_setattr, else
// through a descriptor (regular files, directories and fifos only; the
// node is opened with O_PATH and checked first, so that no device is ever
// opened).
type nodeAttrs struct {
	x     *xfRun
	path  pathAttrs
	fd    int
	fdio  *fdAttrs
	noFd  error // why there is no descriptor
	tried bool
}

func (r *run) nodeIO(dirfd int, name string) *nodeAttrs {
	return &nodeAttrs{x: &r.xf, path: pathAttrs{dirfd, name}, fd: -1}
}

func (n *nodeAttrs) close() {
	if n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
}

// viaFd opens the fallback descriptor; cause is why the call failed.
func (n *nodeAttrs) viaFd(cause error) (*fdAttrs, error) {
	if !n.tried {
		n.tried = true
		n.noFd = n.open(cause)
	}
	return n.fdio, n.noFd
}

func (n *nodeAttrs) open(cause error) error {
	pfd, err := unix.Openat(n.path.dirfd, n.path.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR, unix.S_IFIFO:
	default:
		if cause == unix.ENOSYS {
			return errNoAttrCall
		}
		return cause
	}
	// The magic link reopens this very inode; O_NONBLOCK keeps a fifo
	// from waiting for a writer.
	fd, err := unix.Open(procPath(pfd, ""), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	n.fd = fd
	n.fdio = &fdAttrs{fd: fd}
	return nil
}

func (n *nodeAttrs) get() (fsAttr, error) {
	if !n.x.noCall.Load() && n.fdio == nil {
		a, err := n.path.get()
		if err == nil || !unsupported(err) {
			return a, err
		}
		if err == unix.ENOSYS {
			n.x.noCall.Store(true)
		}
		fio, ferr := n.viaFd(err)
		if ferr != nil {
			return a, ferr
		}
		return fio.get()
	}
	fio, err := n.viaFd(unix.ENOSYS)
	if err != nil {
		return fsAttr{}, err
	}
	return fio.get()
}

func (n *nodeAttrs) set(v fsAttr) error {
	if !n.x.noCall.Load() && n.fdio == nil {
		err := n.path.set(v)
		if err == nil || !unsupported(err) {
			return err
		}
		if err == unix.ENOSYS {
			n.x.noCall.Store(true)
		}
		fio, ferr := n.viaFd(err)
		if ferr != nil {
			return ferr
		}
		return fio.set(v)
	}
	fio, err := n.viaFd(unix.ENOSYS)
	if err != nil {
		return err
	}
	return fio.set(v)
}

// ---- hooks, in the order a session calls them ----

// xfStart reads the list of the state directory and, for a cumulative
// session that has not yet changed the tree, unlocks what the last
// session locked.
func (r *run) xfStart() {
	b, err := r.sd.read(xflagsFile)
	switch {
	case errors.Is(err, unix.ENOENT):
		return
	case err != nil:
		r.problem("", 0, "%s: %v: files locked (immutable, append-only) by an earlier session are not unlocked", filepath.Join(r.sd.path, xflagsFile), err)
		return
	}
	var l xfList
	if err := json.Unmarshal(b, &l); err != nil || l.Version != 1 {
		r.problem("", 0, "%s: unreadable (version %d, %v): files locked by an earlier session are not unlocked", filepath.Join(r.sd.path, xflagsFile), l.Version, err)
		return
	}
	r.xf.list = &l
	if r.saved == nil || r.j.marks[markPlaced] || l.Session == uuidString(r.ss.id) {
		return
	}
	old := indexSaved(r.saved)
	files := make(map[uint64]*savedFile, len(old.files))
	for _, f := range old.files {
		files[f.Ino] = f
	}
	cache := newDirCache(r.t, r.tree.root, func(ino uint64) (uint64, string, bool) {
		d, ok := old.dirs[ino]
		return r.mapRoot(old, d.Parent), d.Name, ok
	})
	defer cache.close()
	for _, e := range l.Entries {
		if e.XFlags&xfLock == 0 {
			continue
		}
		var err error
		if e.Dir {
			fd := r.t.root
			if e.Ino != old.root {
				fd, err = cache.open(e.Ino)
			}
			if err == nil {
				err = unlock(&fdAttrs{fd: fd})
			}
		} else if f := files[e.Ino]; f != nil {
			err = unix.ENOENT
			for _, n := range f.Names {
				pfd, perr := cache.open(r.mapRoot(old, n.Dir))
				if perr != nil {
					continue
				}
				io := r.nodeIO(pfd, n.Name)
				err = unlock(io)
				io.close()
				if err == nil {
					break
				}
			}
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			r.problem("", e.Ino, "locked (%s) by an earlier session and not unlocked: %v", xflagsString(e.XFlags&xfLock), err)
		}
		r.hook("xflags")
	}
}

// unlock clears the immutable and append-only flags.
func unlock(io attrIO) error {
	cur, err := io.get()
	if err != nil || cur.XFlags&xfLock == 0 {
		return err
	}
	return io.set(merge(cur, fsAttr{}, xfLock, false))
}

// xfEarlyDir gives a directory just made or put in place its project id
// and proj-inherit flag (and clears what it inherited), and learns its
// attributes for predictions. The root is only read unless the whole
// dump is restored. What fails is reported with the final attributes.
func (r *run) xfEarlyDir(cache *dirCache, d *dirNode) {
	if r.xfOff() {
		return
	}
	root := d.ino == r.tree.root
	open := func() (int, error) {
		if root {
			return r.t.root, nil
		}
		return cache.open(d.ino)
	}
	var cur *fsAttr
	if !root && d.fresh {
		if c, ok := r.childAttr(d.parent, true); ok {
			cur = &c
		}
	}
	if d.meta == nil || (root && !r.sel.all()) {
		if cur != nil {
			setDirAttr(d, *cur, true)
		} else if fd, err := open(); err == nil {
			a, err := (&fdAttrs{fd: fd}).get()
			setDirAttr(d, a, err == nil)
		}
		return
	}
	want := wantAttr(d.meta)
	target := fsAttr{XFlags: want.XFlags & xfProjInherit, ProjID: want.ProjID}
	if cur != nil && same(*cur, target, xfAll, true) {
		setDirAttr(d, *cur, true)
		return
	}
	fd, err := open()
	if err != nil {
		setDirAttr(d, fsAttr{}, false)
		return
	}
	got, known, _ := applyAttrs(&fdAttrs{fd: fd}, cur, target, xfAll, true)
	setDirAttr(d, got, known)
}

// earlyTarget is what a non-directory gets when it is created.
func earlyTarget(m *stream.FileMeta) fsAttr {
	a := wantAttr(m)
	a.XFlags &^= xfLate
	return a
}

// xfEarlyFile sets the attributes of a regular file just created in
// directory dir, before its data.
func (r *run) xfEarlyFile(fd int, dir uint64, m *stream.FileMeta) []error {
	if r.xfOff() {
		return nil
	}
	target := earlyTarget(m)
	var cur *fsAttr
	if c, ok := r.childAttr(dir, false); ok {
		if same(c, target, xfAll, true) {
			return nil
		}
		cur = &c
	}
	_, _, fails := applyAttrs(&fdAttrs{fd: fd}, cur, target, xfAll, true)
	if err := attrError(fails); err != nil {
		return []error{err}
	}
	return nil
}

// xfSpecial sets the attributes of a symlink, device, fifo or socket
// just made (after its times: only the ctime changes).
func (r *run) xfSpecial(pfd int, n nameRef, m *stream.FileMeta) []error {
	if r.xfOff() {
		return nil
	}
	target := earlyTarget(m)
	var cur *fsAttr
	if c, ok := r.childAttr(n.dir, false); ok {
		if same(c, target, xfAll, true) {
			return nil
		}
		cur = &c
	}
	io := r.nodeIO(pfd, n.name)
	defer io.close()
	_, _, fails := applyAttrs(io, cur, target, xfAll, true)
	if err := attrError(fails); err != nil {
		return []error{err}
	}
	return nil
}

// xfDefer notes a file whose late flags wait for the end of the files.
func (r *run) xfDefer(ino uint64, m *stream.FileMeta) {
	if r.xfOff() {
		return
	}
	want := wantAttr(m)
	if want.XFlags&xfLate == 0 {
		return
	}
	r.xf.mu.Lock()
	if r.xf.late == nil {
		r.xf.late = map[uint64]fsAttr{}
	}
	r.xf.late[ino] = want
	r.xf.mu.Unlock()
}

// xfSaveLate writes the list (before anything is locked): the files of
// this session with late flags, the files kept from earlier sessions
// that were locked, and the locked directories.
func (r *run) xfSaveLate() error {
	var files, dirs []xfEntry
	if !r.xfOff() {
		for ino, a := range r.xf.late {
			files = append(files, entryOf(ino, false, a))
		}
		if r.xf.list != nil {
			for _, e := range r.xf.list.Entries {
				if !e.Dir && r.carried[e.Ino] && !r.seen[e.Ino] {
					files = append(files, e)
				}
			}
		}
		for _, d := range r.tree.order {
			if d.meta == nil || (d.ino == r.tree.root && !r.sel.all()) {
				continue
			}
			if w := wantAttr(d.meta); w.XFlags&xfLock != 0 {
				dirs = append(dirs, entryOf(d.ino, true, w))
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Ino < files[j].Ino })
	r.xf.pending, r.xf.saved = files, true
	if len(files)+len(dirs) == 0 && r.xf.list == nil {
		return nil
	}
	l := &xfList{Version: 1, Session: uuidString(r.ss.id), Entries: append(append([]xfEntry{}, files...), dirs...)}
	b, err := json.Marshal(l)
	if err == nil {
		err = r.sd.writeAtomic(xflagsFile, b)
	}
	if err != nil {
		return fmt.Errorf("list of XFS attributes to apply last: %w", err)
	}
	r.xf.list = l
	return nil
}

// xfApplyLate sets the late flags of files, once all of them are written
// with all their names.
func (r *run) xfApplyLate() {
	if r.xfOff() {
		return
	}
	entries := r.xf.pending
	if !r.xf.saved && r.xf.list != nil && r.xf.list.Session == uuidString(r.ss.id) {
		// Resumed after every file was written: the list has them.
		for _, e := range r.xf.list.Entries {
			if !e.Dir {
				entries = append(entries, e)
			}
		}
	}
	if len(entries) == 0 {
		return
	}
	cache := newDirCache(r.t, r.tree.root, r.loc)
	defer cache.close()
	for _, e := range entries {
		fn := r.tree.files[e.Ino]
		if fn == nil || len(fn.names) == 0 {
			continue
		}
		first := fn.names[0]
		p := r.tree.filePath(first)
		pfd, err := cache.open(first.dir)
		if err != nil {
			r.problem(p, e.Ino, "XFS attributes not restored: %v", err)
			continue
		}
		io := r.nodeIO(pfd, first.name)
		_, _, fails := applyAttrs(io, nil, e.attr(), xfLate, false)
		io.close()
		if err := attrError(fails); err != nil {
			r.problem(p, e.Ino, "%v", err)
		}
		r.hook("xflags")
	}
}

// xfDirUnlock clears the lock flags of a directory before its metadata
// is set (a resumed run, or a directory that was there before).
func (r *run) xfDirUnlock(fd int, d *dirNode) {
	if r.xfOff() {
		return
	}
	cur, ok := d.xf, d.xfKnown
	if ok && cur.XFlags&xfLock == 0 {
		return
	}
	var c *fsAttr
	if ok {
		c = &cur
	}
	got, known, _ := applyAttrs(&fdAttrs{fd: fd}, c, fsAttr{}, xfLock, false)
	setDirAttr(d, got, known)
}

// xfDirDone reports whether xfDirUnlock and xfDir have nothing to do for
// a directory (not the root): its attributes are known, unlocked, and
// those of the dump.
func (r *run) xfDirDone(d *dirNode) bool {
	if r.xfOff() {
		return true
	}
	if d.meta == nil || !d.xfKnown || d.xf.XFlags&xfLock != 0 {
		return false
	}
	return same(d.xf, merge(d.xf, wantAttr(d.meta), xfAll, true), xfAll, true)
}

// xfDir sets the attributes of a directory after its other metadata;
// the root's lock flags wait for xfLockRoot.
func (r *run) xfDir(fd int, d *dirNode) {
	if r.xfOff() || d.meta == nil {
		return
	}
	mask := uint32(xfAll)
	if d.ino == r.tree.root {
		mask &^= xfLock
	}
	var cur *fsAttr
	if d.xfKnown {
		c := d.xf
		cur = &c
	}
	got, known, fails := applyAttrs(&fdAttrs{fd: fd}, cur, wantAttr(d.meta), mask, true)
	setDirAttr(d, got, known)
	if err := attrError(fails); err != nil {
		p := d.path
		if p == "" {
			p = "."
		}
		r.problem(p, d.ino, "%v", err)
	}
}

// xfLockRoot sets the root's lock flags, the very last change.
func (r *run) xfLockRoot(rd *dirNode, rootMeta bool) {
	if r.xfOff() || !rootMeta || rd.meta == nil {
		return
	}
	want := wantAttr(rd.meta)
	if want.XFlags&xfLock == 0 {
		return
	}
	_, _, fails := applyAttrs(&fdAttrs{fd: r.t.root}, nil, want, xfLock, false)
	if err := attrError(fails); err != nil {
		r.problem(".", rd.ino, "%v", err)
	}
}
