package dump

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"

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
	bad     bool // could not be decoded; never dumped
}

// dirInfo is a directory as the stream records it.
type dirInfo struct {
	meta    stream.FileMeta
	parent  uint64
	xattrs  []stream.Xattr
	entries []stream.DirEntry // without "." and ".."
}

// fsModel is the result of the first pass over the inodes.
type fsModel struct {
	inodes []inodeInfo // ascending inode numbers
	dirs   map[uint64]*dirInfo
	root   uint64
	// problems found while scanning that make inodes undumpable.
	problems []string
}

// lookup returns the info of ino, or nil if the inode is not allocated.
func (m *fsModel) lookup(ino uint64) *inodeInfo {
	i := sort.Search(len(m.inodes), func(i int) bool { return m.inodes[i].ino >= ino })
	if i < len(m.inodes) && m.inodes[i].ino == ino {
		return &m.inodes[i]
	}
	return nil
}

// scanCounters let the progress display follow the first pass.
type scanCounters struct {
	inodes atomic.Int64
}

// scan walks every allocated inode once, in inode order with large
// sequential reads, keeping a small record per inode and reading every
// directory (entries and attributes) as it goes. A directory that cannot
// be read fails the scan: an incomplete directory in the stream would make
// a restore delete what it lost.
func scan(ctx context.Context, fs *xfs.FS, since *stream.Timestamp, cnt *scanCounters) (*fsModel, error) {
	m := &fsModel{dirs: map[uint64]*dirInfo{}, root: fs.SB.RootIno}
	blockLog := fs.SB.BlockLog
	err := fs.WalkInodes(ctx, func(ino uint64, raw []byte) error {
		if cnt != nil {
			cnt.inodes.Add(1)
		}
		ip, err := fs.DecodeInode(ino, raw)
		if err != nil {
			m.inodes = append(m.inodes, inodeInfo{ino: ino, bad: true})
			m.problems = append(m.problems, err.Error()+": not dumped")
			return nil
		}
		info := inodeInfo{ino: ino, mode: ip.Mode}
		info.changed = since == nil || notBefore(ip.Ctime, *since) || notBefore(ip.Mtime, *since)
		if ip.IsReg() {
			info.bytes = min(int64(ip.Size), int64(ip.NBlocks<<blockLog))
			if info.bytes < 0 {
				info.bytes = 0
			}
		}
		m.inodes = append(m.inodes, info)
		if ip.IsDir() {
			d, err := readDirInfo(fs, ip)
			if err != nil {
				return fmt.Errorf("directory inode %d: %w", ino, err)
			}
			m.dirs[ino] = d
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if m.dirs[m.root] == nil {
		return nil, ondisk.Corrupt("superblock", fs.Name(), "sb_rootino", "root inode %d is not an allocated directory", m.root)
	}
	// Entry types come from the inodes themselves: they are what a restore
	// creates, and filesystems without ftype store none.
	for dino, d := range m.dirs {
		kept := d.entries[:0]
		for _, e := range d.entries {
			t := m.lookup(e.Ino)
			switch {
			case e.Type == stream.TypeDir && (t == nil || t.bad || m.dirs[e.Ino] == nil):
				// Leaving a directory out would make a restore delete
				// everything below it.
				return nil, ondisk.Corrupt("directory", fmt.Sprintf("inode %d", dino), "", "entry %q names directory inode %d, which is free or unreadable: repair the filesystem before dumping it", e.Name, e.Ino)
			case t == nil:
				m.problems = append(m.problems, fmt.Sprintf("directory inode %d: entry %q names free inode %d: entry not dumped", dino, e.Name, e.Ino))
				continue
			case t.bad:
				// Keep the name (typed as the entry says), so that a
				// restore of an incremental keeps what it has; the inode
				// itself was reported by the walk.
			default:
				e.Type = stream.TypeOfMode(uint32(t.mode))
			}
			kept = append(kept, e)
		}
		d.entries = kept
	}
	return m, nil
}

// readDirInfo reads a directory's metadata, attributes and entries.
func readDirInfo(fs *xfs.FS, ip *xfs.Inode) (*dirInfo, error) {
	meta, err := metaOf(fs, ip)
	if err != nil {
		return nil, err
	}
	xattrs, err := xattrsOf(fs, ip)
	if err != nil {
		return nil, err
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
		return nil, ondisk.Corrupt("directory", fmt.Sprintf("inode %d", ip.Ino), "..", "no parent entry")
	}
	return d, nil
}
