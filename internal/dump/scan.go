package dump

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"xfskit/internal/stream"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// inodeInfo is what the first pass keeps of every allocated inode: enough
// to select, partition and count, never the inode itself.
type inodeInfo struct {
	ino     uint64
	bytes   int64 // data bytes to expect (regular files), for balancing and progress
	mode    uint16
	changed bool // ctime or mtime not before the base session's start
	bad     bool // could not be decoded; never dumped (see fsModel.bad)
}

func (i *inodeInfo) isDir() bool { return uint32(i.mode)&stream.ModeTypeMask == stream.ModeDir }

// dirInfo is a directory as the stream records it.
type dirInfo struct {
	meta    stream.FileMeta
	parent  uint64
	xattrs  []stream.Xattr
	entries []stream.DirEntry // without "." and ".."
	dropped []string          // entries left out (naming free inodes), as problems
}

// fsModel is what dump knows of the filesystem: every allocated inode
// (from the first pass) and the directories read so far.
type fsModel struct {
	fs     *xfs.FS
	inodes []inodeInfo // ascending inode numbers
	root   uint64
	bad    map[uint64]string // why an inode could not be decoded

	mu    sync.Mutex
	dirs  map[uint64]*dirInfo
	early map[uint64]*dirInfo // read during the scan, entries not typed yet
}

// lookup returns the info of ino, or nil if the inode is not allocated.
func (m *fsModel) lookup(ino uint64) *inodeInfo {
	if i := m.index(ino); i >= 0 {
		return &m.inodes[i]
	}
	return nil
}

// index returns the position of ino in m.inodes, or -1.
func (m *fsModel) index(ino uint64) int {
	i := sort.Search(len(m.inodes), func(i int) bool { return m.inodes[i].ino >= ino })
	if i < len(m.inodes) && m.inodes[i].ino == ino {
		return i
	}
	return -1
}

// dir returns a directory read by loadDirs.
func (m *fsModel) dir(ino uint64) *dirInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dirs[ino]
}

// scanCounters let the progress display follow the first pass.
type scanCounters struct {
	inodes atomic.Int64
}

// scan walks every allocated inode once, in inode order with large
// sequential reads, keeping a small record per inode. Directories are read
// later, only those the selection needs (loadDirs); with eagerDirs (a dump
// of the whole filesystem, which needs them all) they are read during the
// walk instead, on other goroutines.
func scan(ctx context.Context, fs *xfs.FS, since *stream.Timestamp, cnt *scanCounters, eagerDirs bool) (*fsModel, error) {
	m := &fsModel{fs: fs, dirs: map[uint64]*dirInfo{}, root: fs.SB.RootIno, bad: map[uint64]string{}}
	// The superblock's count of inodes in use, if plausible, saves
	// regrowing the list (it is only a hint: the walk decides).
	if n := fs.SB.ICount - fs.SB.IFree; fs.SB.IFree <= fs.SB.ICount && n <= 1<<22 {
		m.inodes = make([]inodeInfo, 0, n)
	}
	blockLog := fs.SB.BlockLog
	var dirs chan *xfs.Inode
	var readers sync.WaitGroup
	if eagerDirs {
		m.early = map[uint64]*dirInfo{}
		dirs = make(chan *xfs.Inode, 256)
		for range max(1, runtime.GOMAXPROCS(0)-1) {
			readers.Go(func() {
				for ip := range dirs {
					if ctx.Err() != nil {
						continue
					}
					// A failure is left for loadDirs to meet again, if
					// the selection needs the directory.
					if d, err := readDirEntries(fs, ip); err == nil {
						m.mu.Lock()
						m.early[ip.Ino] = d
						m.mu.Unlock()
					}
				}
			})
		}
	}
	err := fs.WalkInodes(ctx, func(ino uint64, raw []byte) error {
		if cnt != nil {
			cnt.inodes.Add(1)
		}
		ip, err := fs.DecodeInodeShared(ino, raw) // nothing of it is kept
		if err != nil {
			m.inodes = append(m.inodes, inodeInfo{ino: ino, bad: true})
			m.bad[ino] = err.Error()
			return nil
		}
		info := inodeInfo{ino: ino, mode: ip.Mode}
		info.changed = since == nil || notBefore(ip.Ctime, *since) || notBefore(ip.Mtime, *since)
		if ip.IsReg() {
			info.bytes = max(0, min(int64(ip.Size), int64(ip.NBlocks<<blockLog)))
		}
		m.inodes = append(m.inodes, info)
		if dirs != nil && ip.IsDir() {
			own, err := fs.DecodeInode(ino, raw)
			if err == nil {
				dirs <- own
			}
		}
		return nil
	})
	if dirs != nil {
		close(dirs)
		readers.Wait()
	}
	if err != nil {
		return nil, err
	}
	if r := m.lookup(m.root); r == nil || r.bad || !r.isDir() {
		return nil, ondisk.Corrupt("superblock", fs.Name(), "sb_rootino", "root inode %d is not an allocated, readable directory", m.root)
	}
	return m, nil
}

// loadDirs reads the directories not read yet among inos, in parallel.
// A directory that cannot be read fails the dump: an incomplete directory
// in the stream would make a restore delete what it lost.
func (m *fsModel) loadDirs(ctx context.Context, inos []uint64) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	for _, ino := range inos {
		if m.dir(ino) != nil {
			continue
		}
		m.mu.Lock()
		d := m.early[ino]
		delete(m.early, ino)
		m.mu.Unlock()
		if d != nil {
			// Read during the scan: only the typing is left.
			if err := m.typeEntries(ino, d); err != nil {
				return err
			}
			m.mu.Lock()
			m.dirs[ino] = d
			m.mu.Unlock()
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			d, err := m.readDir(ino)
			if err != nil {
				return err
			}
			m.mu.Lock()
			m.dirs[ino] = d
			m.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// readDir reads a directory's metadata, attributes and entries, typing
// the entries from the inodes themselves (they are what a restore creates,
// and filesystems without ftype store no types).
func (m *fsModel) readDir(ino uint64) (*dirInfo, error) {
	ip, err := m.fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	d, err := readDirEntries(m.fs, ip)
	if err != nil {
		return nil, err
	}
	return d, m.typeEntries(ino, d)
}

// readDirEntries reads a directory's metadata, attributes and entries
// (typed as the directory says).
func readDirEntries(fs *xfs.FS, ip *xfs.Inode) (*dirInfo, error) {
	where := fmt.Sprintf("inode %d", ip.Ino)
	if !ip.IsDir() {
		return nil, ondisk.Corrupt("directory", where, "mode", "named as a directory but mode is 0%o", ip.Mode)
	}
	meta, err := metaOf(fs, ip)
	if err != nil {
		return nil, err
	}
	xattrs, err := xattrsOf(fs, ip)
	if err != nil {
		return nil, fmt.Errorf("directory %s: attributes: %w", where, err)
	}
	d := &dirInfo{meta: meta, xattrs: xattrs}
	haveParent := false
	err = fs.WalkDir(ip, func(e xfs.DirEntry) error {
		switch string(e.Name) {
		case ".":
			return nil
		case "..":
			d.parent, haveParent = e.Ino, true
			return nil
		}
		d.entries = append(d.entries, stream.DirEntry{Name: string(e.Name), Ino: e.Ino, Type: stream.FileType(e.Type)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveParent {
		return nil, ondisk.Corrupt("directory", where, "..", "no parent entry")
	}
	return d, nil
}

// typeEntries types d's entries from the inodes they name (the first pass
// must be complete), dropping those that name free inodes.
func (m *fsModel) typeEntries(ino uint64, d *dirInfo) error {
	kept := d.entries[:0]
	for _, e := range d.entries {
		t := m.lookup(e.Ino)
		switch {
		case e.Type == stream.TypeDir && (t == nil || t.bad || !t.isDir()):
			// Leaving a directory out would make a restore delete
			// everything below it.
			return ondisk.Corrupt("directory", fmt.Sprintf("inode %d", ino), "", "entry %q names directory inode %d, which is free, unreadable or not a directory: repair the filesystem before dumping it", e.Name, e.Ino)
		case t == nil:
			d.dropped = append(d.dropped, fmt.Sprintf("directory inode %d: entry %q names free inode %d: entry not dumped", ino, e.Name, e.Ino))
			continue
		case t.bad:
			// Keep the name, typed as the entry says, so that a restore of
			// an incremental keeps what it has.
		default:
			e.Type = stream.TypeOfMode(uint32(t.mode))
		}
		kept = append(kept, e)
	}
	d.entries = kept
	return nil
}
