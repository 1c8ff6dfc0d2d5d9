package build

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// The source tree is read on every core: listing directories, lstat,
// symlink targets and extended attributes are system calls that run in
// parallel well, and they are nearly all of the scan's time (mkfs -p and
// estimate both start with it). Workers read directories in any order;
// a second, sequential pass then builds the tree in walk order, so hard
// links, counters, warnings and the first error are exactly what a
// sequential walk gives.

// popScanItem is one directory entry as read by a worker.
type popScanItem struct {
	n     *popNode // nil when lstat failed
	warns []string
	err   error
	// readErr: err came from reading the entry's symlink target, device
	// number or attributes, which a later link to an inode never needs.
	readErr bool
	link    [2]uint64 // device and inode of a non-directory with other links
	kids    []*popScanItem
	listErr error // listing this directory failed
}

// popScanQueue hands directories to the workers.
type popScanQueue struct {
	skip    *[2]uint64 // device and inode of a file left out (the target image)
	mu      sync.Mutex
	cond    *sync.Cond
	dirs    []*popScanItem
	pending int // queued or being read
}

// popScan reads the tree rooted at dir with workers goroutines.
func popScan(dir string, workers int) (*popTree, error) { return popScanSkip(dir, workers, nil) }

// popScanSkip is popScan leaving out the file whose device and inode are
// skip (if not nil), with a warning: the target image inside the tree.
func popScanSkip(dir string, workers int, skip *[2]uint64) (*popTree, error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // -p may name a symlink to the tree
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	n := &popNode{}
	warns, err := popReadEntry(n, unix.AT_FDCWD, dir, "", &st, nil)
	if err != nil {
		return nil, err
	}
	root := &popScanItem{n: n, warns: warns}
	q := &popScanQueue{dirs: []*popScanItem{root}, pending: 1, skip: skip}
	q.cond = sync.NewCond(&q.mu)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.work()
		}()
	}
	wg.Wait()
	t := &popTree{}
	if err := t.build(root, nil, map[[2]uint64]*popNode{}); err != nil {
		return nil, err
	}
	t.root = root.n
	return t, nil
}

// work reads queued directories until none is left anywhere.
func (q *popScanQueue) work() {
	var b popScanBufs
	for {
		q.mu.Lock()
		for len(q.dirs) == 0 && q.pending > 0 {
			q.cond.Wait()
		}
		if len(q.dirs) == 0 {
			q.mu.Unlock()
			return
		}
		d := q.dirs[len(q.dirs)-1]
		q.dirs = q.dirs[:len(q.dirs)-1]
		q.mu.Unlock()

		sub := popReadDirItem(d, &b, q.skip)

		q.mu.Lock()
		q.dirs = append(q.dirs, sub...)
		q.pending += len(sub) - 1
		if q.pending == 0 || len(sub) > 0 {
			q.cond.Broadcast()
		}
		q.mu.Unlock()
	}
}

// popScanBufs are a worker's buffers, reused for every directory.
type popScanBufs struct {
	dirents []byte // getdents
	xattrs  []byte // attribute names
	name    []byte // an entry's name as a C string
}

// popReadDirItem reads directory d's entries and returns its
// subdirectories. Reading stops at the first entry that fails, as a
// sequential walk would stop there.
func popReadDirItem(d *popScanItem, b *popScanBufs, skip *[2]uint64) []*popScanItem {
	names, dirfd, err := popReadDirNames(d.n.src, b)
	if err != nil {
		d.listErr = err
		return nil
	}
	defer unix.Close(dirfd)
	// filepath.Join(d.n.src, name) for every name, in one concatenation.
	prefix := filepath.Join(d.n.src, "x")
	prefix = prefix[:len(prefix)-1]
	// One allocation per directory, not two per entry.
	items := make([]popScanItem, len(names))
	nodes := make([]popNode, len(names))
	var sub []*popScanItem
	d.kids = make([]*popScanItem, 0, len(names))
	for i, name := range names {
		p := prefix + name
		it := &items[i]
		d.kids = append(d.kids, it)
		var st unix.Stat_t
		// By name in the open directory: no walk of the whole path.
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			it.err = fmt.Errorf("%s: %w", p, err)
			break
		}
		if skip != nil && st.Dev == skip[0] && st.Ino == skip[1] {
			d.kids = d.kids[:len(d.kids)-1]
			d.warns = append(d.warns, fmt.Sprintf("%s is the target image: not copied into itself", name))
			continue
		}
		it.n = &nodes[i]
		it.warns, it.err = popReadEntry(it.n, dirfd, p, name, &st, b)
		it.readErr = it.err != nil
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			it.link = [2]uint64{st.Dev, st.Ino}
		} else if it.err != nil {
			break
		}
		if it.err == nil && it.n.isDir() {
			sub = append(sub, it)
		}
	}
	return sub
}

// build adds item it (the root when parent is nil) to the tree in walk
// order: it resolves hard links (the first entry in walk order owns the
// inode), counts, collects warnings and returns the first error.
func (t *popTree) build(it, parent *popScanItem, links map[[2]uint64]*popNode) error {
	n := it.n
	if parent != nil {
		if n == nil {
			return it.err
		}
		if it.link != [2]uint64{} {
			if first, ok := links[it.link]; ok {
				// Only the name and stat fields of a later link are kept.
				n.xattrs, n.target, n.rdev = nil, "", 0
				n.inode = first
				first.nlink++
				parent.n.kids = append(parent.n.kids, n)
				t.entries++
				return nil
			}
			links[it.link] = n
		}
		if it.err != nil {
			return it.err
		}
	}
	t.inodes++
	switch n.mode & unix.S_IFMT {
	case unix.S_IFDIR:
		t.dirs++
	case unix.S_IFREG:
		t.dataSize += n.blocks
	case unix.S_IFLNK:
		t.meta += int64(len(n.target))
	}
	for _, w := range it.warns {
		t.warnings = append(t.warnings, n.src+": "+w)
	}
	for _, x := range n.xattrs {
		t.meta += int64(len(x.Name) + len(x.Value) + 16)
	}
	if parent != nil {
		parent.n.kids = append(parent.n.kids, n)
		t.entries++
	}
	if !n.isDir() {
		return nil
	}
	if parent != nil {
		parent.n.subdirs++
	}
	if it.listErr != nil {
		return it.listErr
	}
	for _, k := range it.kids {
		if err := t.build(k, it, links); err != nil {
			return err
		}
	}
	t.meta += popDirBytes(n)
	return nil
}

// popScanWorkers is the number of scanning goroutines.
func popScanWorkers() int { return min(runtime.GOMAXPROCS(0), 8) }
