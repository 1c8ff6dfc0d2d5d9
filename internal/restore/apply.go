package restore

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// oldTree is the recorded tree of a cumulative restore, indexed.
type oldTree struct {
	root  uint64
	dirs  map[uint64]savedDir
	order []uint64 // top-down
	files []*savedFile
}

func indexSaved(s *savedState) *oldTree {
	o := &oldTree{root: s.Root, dirs: make(map[uint64]savedDir, len(s.Dirs))}
	children := map[uint64][]uint64{}
	for _, d := range s.Dirs {
		o.dirs[d.Ino] = d
		if d.Ino != s.Root {
			children[d.Parent] = append(children[d.Parent], d.Ino)
		}
	}
	o.order = append(o.order, s.Root)
	seen := map[uint64]bool{s.Root: true}
	for i := 0; i < len(o.order); i++ {
		for _, c := range children[o.order[i]] {
			if !seen[c] {
				seen[c] = true
				o.order = append(o.order, c)
			}
		}
	}
	for i := range s.Files {
		o.files = append(o.files, &s.Files[i])
	}
	sort.Slice(o.files, func(i, j int) bool { return o.files[i].Ino < o.files[j].Ino })
	return o
}

func dname(ino uint64) string { return "d" + strconv.FormatUint(ino, 10) }
func fname(ino uint64) string { return "f" + strconv.FormatUint(ino, 10) }

func exists(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// compatible reports whether a recorded file and a new directory entry can
// be the same file (an inode number reused for another type is not).
func compatible(old uint8, nt stream.FileType) bool {
	return old == 0 || nt == stream.TypeUnknown || stream.FileType(old) == nt
}

// arrange makes the directory tree of the session. For a cumulative
// restore it first moves out of the way every directory that moved or
// disappeared and every file name that did (phase 1), then builds the new
// tree and puts moved things in their new places (phase 2). Both phases
// can be repeated after an interruption.
func (r *run) arrange() error {
	tr := r.tree
	cache := newDirCache(r.t, tr.root, nil)
	defer cache.close()
	var old *oldTree
	orphFd := -1
	defer func() {
		if orphFd >= 0 {
			unix.Close(orphFd)
		}
	}()
	moved := map[uint64]bool{}
	if r.saved != nil {
		old = indexSaved(r.saved)
		for _, ino := range old.order[1:] {
			od := old.dirs[ino]
			nd := tr.dirs[ino]
			if nd == nil || nd.parent != r.mapRoot(old, od.Parent) || nd.name != od.Name {
				moved[ino] = true
			}
		}
		r.unlock(cache, tr.root) // the orphanage is made in it
		if _, err := mkdirAt(r.t.root, orphanageName, 0o700); err != nil {
			return fmt.Errorf("%s: %v", orphanageName, err)
		}
		fd, err := unix.Openat(r.t.root, orphanageName, dirFlags, 0)
		if err != nil {
			return fmt.Errorf("%s: %v", orphanageName, err)
		}
		orphFd = fd
		if !r.j.marks[markMoved] {
			r.moveOut(cache, old, moved, orphFd)
			r.j.mark(markMoved)
		}
	}

	// Phase 2: the new tree, top-down.
	inOrph := map[uint64]bool{}
	for ino := range moved {
		if tr.dirs[ino] != nil && exists(orphFd, dname(ino)) {
			inOrph[ino] = true
		}
	}
	cache.close()
	cache.loc = func(ino uint64) (uint64, string, bool) {
		if inOrph[ino] {
			return orphanIno, dname(ino), true
		}
		return r.loc(ino)
	}
	cache.pin(orphanIno, orphFd)
	// New directories inherit a default ACL and the setgid bit from their
	// parent: only those below a clean destination root are "fresh".
	var acl [1]byte
	_, err := unix.Fgetxattr(r.t.root, "system.posix_acl_default", acl[:])
	var rst unix.Stat_t
	rootClean := (err == unix.ENODATA || err == unix.EOPNOTSUPP) && unix.Fstat(r.t.root, &rst) == nil && rst.Mode&unix.S_ISGID == 0
	r.xfEarlyDir(cache, tr.dirs[tr.root]) // project id before contents (xflags_run.go)
	place := func(cache *dirCache, d *dirNode) {
		pfd, err := cache.open(d.parent)
		if err != nil {
			r.problem(d.path, d.ino, "directory not created: %v", err)
			return
		}
		if inOrph[d.ino] {
			err := unix.Renameat(orphFd, dname(d.ino), pfd, d.name)
			if err == unix.EEXIST || err == unix.ENOTEMPTY || err == unix.ENOTDIR {
				if err = clearName(pfd, d.name); err == nil {
					err = unix.Renameat(orphFd, dname(d.ino), pfd, d.name)
				}
			}
			if err != nil {
				r.problem(d.path, d.ino, "directory not moved to its new place: %v", err)
			} else {
				delete(inOrph, d.ino)
				r.res.Moved++
			}
			r.hook("place")
		}
		if !inOrph[d.ino] {
			parentFresh := rootClean
			if d.parent != tr.root {
				parentFresh = tr.dirs[d.parent].fresh
			}
			mode, final := r.t.dirMode(d.meta, parentFresh)
			created, err := mkdirAt(pfd, d.name, mode)
			if err != nil {
				r.problem(d.path, d.ino, "%v", err)
				return
			}
			d.fresh = created && parentFresh
			d.modeSet = d.fresh && final
			r.hook("mkdir")
		}
		r.xfEarlyDir(cache, d) // project id before contents (xflags_run.go)
		r.unlock(cache, d.ino)
	}
	if old == nil {
		// Nothing moves (inOrph stays empty): the directories of one
		// depth are made in parallel.
		byLevels(tr.order[1:], false, func() *dirCache { return newDirCache(r.t, tr.root, r.loc) }, place)
	} else {
		for _, d := range tr.order[1:] {
			place(cache, d)
		}
	}
	if old != nil {
		r.placeFiles(cache, old, orphFd)
		cache.unpin(orphanIno)
		unix.Close(orphFd)
		orphFd = -1
		if err := os.RemoveAll(procPath(r.t.root, orphanageName)); err != nil {
			r.problem(orphanageName, 0, "removing what earlier sessions had and this one no longer has: %v", err)
		}
	}
	r.j.mark(markPlaced)
	return nil
}

// unlock makes directory ino, which an earlier session may have left
// read-only, writable by its owner when not running as root (root needs
// no permission): creating, renaming or removing an entry writes the
// directory, and a directory moved to another parent has its ".."
// rewritten. The final modes are set at the end.
func (r *run) unlock(cache *dirCache, ino uint64) {
	if r.t.asRoot {
		return
	}
	if fd, err := cache.open(ino); err == nil {
		unix.Fchmod(fd, 0o700)
	}
}

func (r *run) mapRoot(old *oldTree, ino uint64) uint64 {
	if ino == old.root {
		return r.tree.root
	}
	return ino
}

// moveOut is phase 1 of a cumulative restore.
func (r *run) moveOut(cache *dirCache, old *oldTree, moved map[uint64]bool, orphFd int) {
	tr := r.tree
	done := map[uint64]bool{}
	cache.loc = func(ino uint64) (uint64, string, bool) {
		if done[ino] {
			return orphanIno, dname(ino), true
		}
		d, ok := old.dirs[ino]
		return r.mapRoot(old, d.Parent), d.Name, ok
	}
	cache.pin(orphanIno, orphFd)
	defer cache.unpin(orphanIno)
	oldPath := func(ino uint64, name string) string {
		var parts []string
		for n := 0; ino != old.root && n < 1<<16; n++ {
			d, ok := old.dirs[ino]
			if !ok {
				break
			}
			parts = append(parts, d.Name)
			ino = d.Parent
		}
		p := ""
		for i := len(parts) - 1; i >= 0; i-- {
			p = joinPath(p, parts[i])
		}
		return joinPath(p, name)
	}
	for _, ino := range old.order[1:] {
		if moved[ino] && exists(orphFd, dname(ino)) {
			done[ino] = true
		}
		// Every old directory: files leave them, and the gone ones are
		// removed with everything below.
		r.unlock(cache, ino)
	}
	for _, ino := range old.order[1:] {
		if !moved[ino] || done[ino] {
			continue
		}
		od := old.dirs[ino]
		pfd, err := cache.open(r.mapRoot(old, od.Parent))
		if err == nil {
			err = unix.Renameat(pfd, od.Name, orphFd, dname(ino))
		}
		switch {
		case err == nil:
			done[ino] = true
			if tr.dirs[ino] == nil {
				r.res.Removed++
			}
		case tr.dirs[ino] != nil && errors.Is(err, unix.ENOENT):
			r.problem(oldPath(od.Parent, od.Name), ino, "directory to be moved to %q is missing from the destination", tr.dirs[ino].path)
		case tr.dirs[ino] != nil:
			r.problem(oldPath(od.Parent, od.Name), ino, "directory not moved to %q: %v", tr.dirs[ino].path, err)
		case !errors.Is(err, unix.ENOENT):
			// Gone from the dump; a directory the user removed already is fine.
			r.problem(oldPath(od.Parent, od.Name), ino, "directory not removed: %v", err)
		}
		r.hook("move")
	}
	for _, f := range old.files {
		nf := tr.files[f.Ino]
		compat := nf != nil && compatible(f.Type, nf.typ)
		newSet := map[nameRef]bool{}
		if compat {
			for _, n := range nf.names {
				newSet[n] = true
			}
		}
		var keep, gone []nameRef
		for _, sn := range f.Names {
			n := nameRef{r.mapRoot(old, sn.Dir), sn.Name}
			if newSet[n] {
				keep = append(keep, n)
			} else {
				gone = append(gone, n)
			}
		}
		if len(gone) == 0 {
			continue
		}
		// A file that keeps no name but gets new ones is parked in the
		// orphanage so that its content survives.
		park := compat && len(keep) == 0 && len(nf.names) > 0 && !exists(orphFd, fname(f.Ino))
		for _, g := range gone {
			pfd, err := cache.open(g.dir)
			if err != nil {
				if tr.dirs[g.dir] != nil {
					r.problem(oldPath(g.dir, g.name), f.Ino, "old name not removed: %v", err)
				}
				continue
			}
			if park {
				err := unix.Renameat(pfd, g.name, orphFd, fname(f.Ino))
				if err == nil {
					park = false
					r.hook("move")
					continue
				}
				if err != unix.ENOENT {
					r.problem(oldPath(g.dir, g.name), f.Ino, "not moved to its new name: %v", err)
				}
				continue
			}
			if tr.dirs[g.dir] == nil {
				continue // the directory is gone: the orphanage is removed whole
			}
			if err := unix.Unlinkat(pfd, g.name, 0); err != nil && err != unix.ENOENT {
				r.problem(oldPath(g.dir, g.name), f.Ino, "old name not removed: %v", err)
				continue
			}
			r.res.Removed++
			r.hook("unlink")
		}
	}
}

// placeFiles gives files kept from earlier sessions their new names
// (phase 2) and records them as carried over.
func (r *run) placeFiles(cache *dirCache, old *oldTree, orphFd int) {
	tr := r.tree
	for _, f := range old.files {
		nf := tr.files[f.Ino]
		if nf == nil || !compatible(f.Type, nf.typ) || len(nf.names) == 0 {
			continue
		}
		r.carried[f.Ino] = true
		oldSet := map[nameRef]bool{}
		for _, sn := range f.Names {
			oldSet[nameRef{r.mapRoot(old, sn.Dir), sn.Name}] = true
		}
		var keep, add []nameRef
		for _, n := range nf.names {
			if oldSet[n] {
				keep = append(keep, n)
			} else {
				add = append(add, n)
			}
		}
		if len(add) == 0 {
			continue
		}
		var src *nameRef
		if len(keep) > 0 {
			src = &keep[0]
		}
		parked := src == nil && exists(orphFd, fname(f.Ino))
		if src == nil && !parked {
			// Resumed after the file left the orphanage: any new name
			// already in place will do.
			for i := range add {
				if pfd, err := cache.open(add[i].dir); err == nil && exists(pfd, add[i].name) {
					src = &add[i]
					break
				}
			}
		}
		if src == nil && !parked {
			r.problem(tr.firstPath(f.Ino), f.Ino, "file kept from an earlier session is missing from the destination")
			delete(r.carried, f.Ino)
			continue
		}
		for i := range add {
			n := add[i]
			p := tr.filePath(n)
			pfd, err := cache.open(n.dir)
			if err != nil {
				r.problem(p, f.Ino, "not given its new name: %v", err)
				continue
			}
			if parked {
				err := unix.Renameat(orphFd, fname(f.Ino), pfd, n.name)
				if err == unix.EEXIST || err == unix.EISDIR || err == unix.ENOTEMPTY {
					if err = clearName(pfd, n.name); err == nil {
						err = unix.Renameat(orphFd, fname(f.Ino), pfd, n.name)
					}
				}
				if err != nil {
					r.problem(p, f.Ino, "not moved to its new name: %v", err)
					continue
				}
				parked = false
				src = &add[i]
				r.res.Moved++
				r.hook("place")
				continue
			}
			if *src == n {
				continue
			}
			sfd, err := cache.open(src.dir)
			if err == nil {
				sfd, err = unix.Dup(sfd)
			}
			if err == nil {
				var dfd int
				if dfd, err = cache.open(n.dir); err == nil {
					err = linkAt(sfd, src.name, dfd, n.name)
				}
				unix.Close(sfd)
			}
			if err != nil {
				r.problem(p, f.Ino, "new hard link not made: %v", err)
				continue
			}
			r.res.Moved++
			r.hook("place")
		}
	}
}

// noteCarried records the files kept from earlier sessions when phase 2
// was already done by an interrupted run.
func (r *run) noteCarried() {
	for i := range r.saved.Files {
		f := &r.saved.Files[i]
		if nf := r.tree.files[f.Ino]; nf != nil && compatible(f.Type, nf.typ) && len(nf.names) > 0 {
			r.carried[f.Ino] = true
		}
	}
}
