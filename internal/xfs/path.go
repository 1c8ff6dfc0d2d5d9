package xfs

import (
	"fmt"
	"strings"
	"syscall"
)

// MaxSymlinkFollows is how many symlinks one path resolution may follow,
// as Linux allows (MAXSYMLINKS).
const MaxSymlinkFollows = 40

// ResolvePath walks path from the root directory (a leading "/" is
// optional; "." and ".." work as usual, ".." of the root is the root) and
// returns the inode it names. Symlinks met on the way are followed:
// absolute targets restart at the root, relative ones continue in the
// directory holding the link. The final component is followed only if
// followFinalSymlink. Errors wrap syscall errnos, so errors.Is works with
// fs.ErrNotExist (ENOENT), syscall.ENOTDIR, syscall.ELOOP and
// syscall.ENAMETOOLONG.
func (f *FS) ResolvePath(path string, followFinalSymlink bool) (*Inode, error) {
	root, err := f.Inode(f.SB.RootIno)
	if err != nil {
		return nil, err
	}
	r := &resolver{fs: f, root: root, orig: path}
	return r.walk(root, path, followFinalSymlink)
}

type resolver struct {
	fs      *FS
	root    *Inode
	orig    string
	follows int
}

func (r *resolver) fail(errno syscall.Errno, format string, a ...any) error {
	return fmt.Errorf("resolve %q: %s: %w", r.orig, fmt.Sprintf(format, a...), errno)
}

// walk resolves path starting in dir.
func (r *resolver) walk(dir *Inode, path string, followFinal bool) (*Inode, error) {
	if strings.HasPrefix(path, "/") {
		dir = r.root
	}
	comps := strings.Split(path, "/")
	// Trailing slashes require a directory and imply following.
	trailing := len(comps) > 1 && comps[len(comps)-1] == ""
	var parts []string
	for _, c := range comps {
		if c != "" && c != "." {
			parts = append(parts, c)
		}
	}
	if trailing || len(parts) > 0 && len(comps) > 0 && comps[len(comps)-1] == "." {
		followFinal = true
	}
	cur := dir
	for i, name := range parts {
		if !cur.IsDir() {
			return nil, r.fail(syscall.ENOTDIR, "inode %d before %q is not a directory", cur.Ino, name)
		}
		if len(name) > 255 {
			return nil, r.fail(syscall.ENAMETOOLONG, "component of %d bytes", len(name))
		}
		var next uint64
		if name == ".." && cur.Ino == r.root.Ino {
			next = cur.Ino
		} else {
			e, err := r.fs.Lookup(cur, []byte(name))
			if err != nil {
				return nil, fmt.Errorf("resolve %q: %w", r.orig, err)
			}
			next = e.Ino
		}
		ip, err := r.fs.Inode(next)
		if err != nil {
			return nil, fmt.Errorf("resolve %q: %q: %w", r.orig, name, err)
		}
		last := i == len(parts)-1
		if ip.IsSymlink() && (!last || followFinal) {
			r.follows++
			if r.follows > MaxSymlinkFollows {
				return nil, r.fail(syscall.ELOOP, "more than %d symlinks", MaxSymlinkFollows)
			}
			target, err := r.fs.Readlink(ip)
			if err != nil {
				return nil, fmt.Errorf("resolve %q: %w", r.orig, err)
			}
			// The link's target resolves from the directory holding it;
			// the rest of the path continues from wherever it leads.
			ip, err = r.walk(cur, target, true)
			if err != nil {
				return nil, err
			}
		}
		cur = ip
	}
	if trailing && !cur.IsDir() {
		return nil, r.fail(syscall.ENOTDIR, "inode %d is not a directory", cur.Ino)
	}
	return cur, nil
}
