package dump

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"xfskit/internal/stream"
)

// selection is what a session writes: the directory section (the same in
// every stream) and the non-directory inodes whose records are written.
type selection struct {
	dirs  []*dirInfo // ascending inode numbers; ancestors of subtrees hold only the entries on the way
	files []fileRef  // ascending inode numbers: what this level dumps
	named int        // non-directory inodes named by the directory section (all levels)
}

// fileRef is one inode to dump.
type fileRef struct {
	ino   uint64
	bytes int64
}

// perFileWeight is the cost of a file record in bytes of data, so that
// streams of many small files balance against streams of few big ones.
const perFileWeight = 4096

// selectTree chooses the directories and files of a session: everything
// reachable from the root, or from the subtrees (relative paths, already
// canonical) plus the directories on the way to them; of the non-directory
// inodes, only those changed since the base (m's changed flags). It reads
// the directories it needs, and only those. Inodes of the selection that
// cannot be dumped are returned as problems.
func selectTree(ctx context.Context, m *fsModel, subtrees []string) (*selection, []string, error) {
	full := map[uint64]bool{} // directories dumped with all their entries
	var targets []uint64      // non-directories named directly by a subtree
	partial := map[uint64]map[string]bool{}
	var roots []uint64
	if len(subtrees) == 0 {
		roots = []uint64{m.root}
	}
	type step struct {
		dir  uint64
		name string
	}
	var paths [][]step
	for _, st := range subtrees {
		cur := m.root
		var steps []step
		comps := strings.Split(st, "/")
		for i, c := range comps {
			if info := m.lookup(cur); info == nil || !info.isDir() {
				return nil, nil, usagef("subtree %q: %q is not a directory", st, strings.Join(comps[:i], "/"))
			}
			if err := m.loadDirs(ctx, []uint64{cur}); err != nil {
				return nil, nil, err
			}
			d := m.dir(cur)
			var found *stream.DirEntry
			for k := range d.entries {
				if d.entries[k].Name == c {
					found = &d.entries[k]
					break
				}
			}
			if found == nil {
				return nil, nil, usagef("subtree %q: no such file or directory", st)
			}
			if found.Type == stream.TypeSymlink && i < len(comps)-1 {
				return nil, nil, usagef("subtree %q: %q is a symbolic link (subtree paths are not resolved through links)", st, strings.Join(comps[:i+1], "/"))
			}
			steps = append(steps, step{cur, c})
			cur = found.Ino
		}
		paths = append(paths, steps)
		if info := m.lookup(cur); info != nil && info.isDir() && !info.bad {
			roots = append(roots, cur)
		} else {
			targets = append(targets, cur)
		}
	}
	// Everything below the roots, a level at a time (each level's
	// directories read in parallel), guarding against directory cycles
	// that a corrupted image could hold.
	frontier := roots
	for len(frontier) > 0 {
		if err := m.loadDirs(ctx, frontier); err != nil {
			return nil, nil, err
		}
		var next []uint64
		for _, d := range frontier {
			if full[d] {
				continue
			}
			full[d] = true
			for _, e := range m.dir(d).entries {
				if e.Type == stream.TypeDir && !full[e.Ino] {
					next = append(next, e.Ino)
				}
			}
		}
		frontier = next
	}
	for _, steps := range paths {
		for _, s := range steps {
			if full[s.dir] {
				continue
			}
			if partial[s.dir] == nil {
				partial[s.dir] = map[string]bool{}
			}
			partial[s.dir][s.name] = true
		}
	}

	sel := &selection{}
	var problems []string
	// Non-directories named by the selection, by position in m.inodes
	// (which is in inode order: no sorting afterwards).
	files := make([]bool, len(m.inodes))
	mark := func(ino uint64) {
		if i := m.index(ino); i >= 0 {
			files[i] = true
		}
	}
	addDir := func(dino uint64, keep map[string]bool) {
		d := m.dir(dino)
		out := *d
		if keep != nil {
			out.entries = nil
			for _, e := range d.entries {
				if keep[e.Name] {
					out.entries = append(out.entries, e)
				}
			}
		} else {
			problems = append(problems, d.dropped...)
		}
		for _, e := range out.entries {
			if e.Type != stream.TypeDir {
				mark(e.Ino)
			}
		}
		sel.dirs = append(sel.dirs, &out)
	}
	for d := range full {
		addDir(d, nil)
	}
	for d, keep := range partial {
		addDir(d, keep)
	}
	for _, t := range targets {
		mark(t)
	}
	sort.Slice(sel.dirs, func(i, j int) bool { return sel.dirs[i].meta.Ino < sel.dirs[j].meta.Ino })
	for i, named := range files {
		if !named {
			continue
		}
		sel.named++
		switch info := &m.inodes[i]; {
		case info.bad:
			problems = append(problems, m.bad[info.ino]+": not dumped")
		case info.changed:
			sel.files = append(sel.files, fileRef{ino: info.ino, bytes: info.bytes})
		}
	}
	sort.Strings(problems)
	return sel, problems, nil
}

// canonicalSubtrees cleans subtree paths to the relative form the stream
// and inventory record ("a/b"), sorted, without duplicates or paths inside
// other selected paths, refusing paths that climb with "..". A selection
// naming the root is the whole filesystem (empty).
func canonicalSubtrees(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		if s == "" {
			return nil, fmt.Errorf("empty subtree path")
		}
		for _, c := range strings.Split(s, "/") {
			if c == ".." {
				return nil, fmt.Errorf("subtree %q: paths may not contain \"..\"", s)
			}
		}
		c := strings.TrimPrefix(path.Clean("/"+s), "/")
		if c == "" {
			return nil, nil
		}
		out = append(out, c)
	}
	// Duplicates and paths inside other selected paths add nothing.
	sort.Strings(out)
	var kept []string
next:
	for _, s := range out {
		for _, k := range kept {
			if s == k || strings.HasPrefix(s, k+"/") {
				continue next
			}
		}
		kept = append(kept, s)
	}
	return kept, nil
}

// inoRange is the inclusive range of inode numbers a stream dumps; Lo >
// Hi is an empty range.
type inoRange struct {
	Lo, Hi uint64
}

// in reports whether ino lies in r.
func (r inoRange) in(ino uint64) bool { return ino >= r.Lo && ino <= r.Hi }

// partition cuts the files (ascending inode numbers) into n contiguous
// inode ranges of about equal weight (data bytes plus a per-file cost).
// The ranges cover every inode number, so a stream's share is fixed by its
// range alone (which is what a resumed session records).
func partition(files []fileRef, n int) []inoRange {
	var total int64
	for _, f := range files {
		total += f.bytes + perFileWeight
	}
	// cut[k] is the index of the first file of stream k; each cut lands
	// where the running weight is closest to k/n of the total.
	cut := make([]int, n+1)
	cut[n] = len(files)
	i := 0
	var acc int64
	for k := 1; k < n; k++ {
		target := total * int64(k) / int64(n)
		for i < len(files) {
			w := files[i].bytes + perFileWeight
			if acc+w > target && acc+w-target > target-acc {
				break
			}
			acc += w
			i++
		}
		cut[k] = i
	}
	// bound[k] is the last inode number of stream k-1's share.
	bound := func(k int) uint64 {
		if cut[k] == 0 {
			return 0
		}
		return files[cut[k]-1].ino
	}
	out := make([]inoRange, n)
	for k := 0; k < n; k++ {
		r := inoRange{Lo: 0, Hi: ^uint64(0)}
		if k > 0 {
			r.Lo = bound(k) + 1
		}
		if k < n-1 {
			r.Hi = bound(k + 1)
		}
		out[k] = r
	}
	return out
}
