// Package imagetree snapshots the tree of an XFS image through xfskit's own
// engine as a treecmp.Tree, so that tests (and tools) can compare what the
// engine reads with what the kernel shows.
package imagetree

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"xfskit/internal/treecmp"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// FromFS snapshots the tree of an XFS image through xfskit's own engine,
// producing entries that compare equal to FromDir's of the same filesystem
// mounted by the kernel.
func FromFS(fs *xfs.FS, opts treecmp.Options) (*treecmp.Tree, error) {
	var entries []treecmp.Entry
	type content struct {
		sha  string
		data []treecmp.Range
	}
	seen := map[uint64]content{}
	var walk func(ino uint64, rel string, depth int) error
	walk = func(ino uint64, rel string, depth int) error {
		if depth > 4096 {
			return fmt.Errorf("%s: directory tree deeper than 4096 levels (loop?)", rel)
		}
		ip, err := fs.Inode(ino)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		e, err := entryFromInode(fs, ip, rel)
		if err != nil {
			return err
		}
		if !opts.NoXattrs {
			if e.Xattrs, err = fsXattrs(fs, ip); err != nil {
				return fmt.Errorf("%s: xattrs: %w", rel, err)
			}
		}
		switch e.Type {
		case treecmp.Symlink:
			if e.Target, err = fs.Readlink(ip); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		case treecmp.Reg:
			if c, ok := seen[ino]; ok {
				e.SHA256, e.Data = c.sha, c.data
				break
			}
			if err := fsReadFile(fs, ip, &e, opts); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			seen[ino] = content{e.SHA256, e.Data}
		}
		entries = append(entries, e)
		if e.Type != treecmp.Dir {
			return nil
		}
		ents, err := fs.ReadDir(ip)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		sort.Slice(ents, func(i, j int) bool { return string(ents[i].Name) < string(ents[j].Name) })
		for _, de := range ents {
			name := string(de.Name)
			if name == "." || name == ".." {
				continue
			}
			child := name
			if rel != "." {
				child = rel + "/" + name
			}
			if opts.Skip != nil && opts.Skip(child, de.Type == ondisk.DirFTDir) {
				continue
			}
			if err := walk(de.Ino, child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(fs.SB.RootIno, ".", 0); err != nil {
		return nil, err
	}
	return treecmp.NewTree(entries), nil
}

func entryFromInode(fs *xfs.FS, ip *xfs.Inode, rel string) (treecmp.Entry, error) {
	t, ok := treecmp.TypeFromMode(uint32(ip.Mode))
	if !ok {
		return treecmp.Entry{}, fmt.Errorf("%s: inode %d: unknown file type in mode %#o", rel, ip.Ino, ip.Mode)
	}
	e := treecmp.Entry{
		Path:  rel,
		Type:  t,
		Mode:  treecmp.PermFromMode(uint32(ip.Mode)),
		UID:   ip.UID,
		GID:   ip.GID,
		Nlink: ip.Links(),
		Size:  int64(ip.Size),
		Mtime: treecmp.NewTimestamp(ip.Mtime.Sec, int64(ip.Mtime.Nsec)),
		Atime: treecmp.NewTimestamp(ip.Atime.Sec, int64(ip.Atime.Nsec)),
		Ino:   ip.Ino,
	}
	if t == treecmp.Chr || t == treecmp.Blk {
		dev, err := ip.Rdev()
		if err != nil {
			return e, fmt.Errorf("%s: %w", rel, err)
		}
		e.Rdev = treecmp.RdevFromXFS(dev)
	}
	return e, nil
}

// fsXattrs lists attributes under the names Linux shows, converting XFS's
// stored ACLs to the Linux xattr format as well. Parent pointers are not
// xattrs.
func fsXattrs(fs *xfs.FS, ip *xfs.Inode) (map[string][]byte, error) {
	xs, err := fs.ListXattrs(ip)
	if err != nil || len(xs) == 0 {
		return nil, err
	}
	out := make(map[string][]byte, len(xs))
	for _, x := range xs {
		var ns treecmp.Namespace
		switch x.Namespace {
		case ondisk.NSUser:
			ns = treecmp.NSUser
		case ondisk.NSTrusted:
			ns = treecmp.NSTrusted
		case ondisk.NSSecurity:
			ns = treecmp.NSSecurity
		default:
			continue
		}
		name := treecmp.XattrName(ns, string(x.Name))
		if ns == treecmp.NSTrusted && (string(x.Name) == "SGI_ACL_FILE" || string(x.Name) == "SGI_ACL_DEFAULT") {
			// Linux lists a stored ACL twice: as the raw trusted attribute
			// and converted, as system.posix_acl_*.
			acl, err := treecmp.ACLFromXFS(x.Value)
			if err != nil {
				return nil, err
			}
			out[name] = acl
			name = "trusted." + string(x.Name)
		}
		out[name] = x.Value
	}
	return out, nil
}

// fsReadFile hashes a regular file's content and records its data ranges
// (unwritten extents read as zeros and, like SEEK_DATA, count as holes).
func fsReadFile(fs *xfs.FS, ip *xfs.Inode, e *treecmp.Entry, opts treecmp.Options) error {
	f, err := fs.OpenFile(ip)
	if err != nil {
		return err
	}
	if !opts.NoContent {
		h := sha256.New()
		if _, err := f.WriteTo(h); err != nil {
			return err
		}
		e.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	if !opts.NoData {
		var rs []treecmp.Range
		for _, r := range f.DataMap() {
			if r.Kind == xfs.RunData {
				rs = append(rs, treecmp.Range{Off: r.Off, Len: r.Len})
			}
		}
		e.Data = treecmp.NormalizeRanges(rs, e.Size)
	}
	return nil
}
