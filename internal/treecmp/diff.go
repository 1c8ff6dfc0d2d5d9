package treecmp

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DiffOptions choose what Diff compares. The zero value compares everything
// that is stable across a copy of a tree: type, mode, owner, size, content,
// mtime, symlink target, device numbers, xattrs and hard-link groups.
type DiffOptions struct {
	Atime        bool // compare atimes (reading a file may change them)
	Sparse       bool // compare data ranges (only meaningful between filesystems with the same block size)
	Nlink        bool // compare link counts (links from outside the tree count too)
	IgnoreOwners bool // skip uid/gid
	// IgnoreDirMtime skips directory mtimes, which change whenever an entry
	// is added or removed.
	IgnoreDirMtime bool
	// IgnoreXattrPrefixes drops attributes whose full name starts with any
	// of these, e.g. "security.selinux" that an LSM adds on its own.
	IgnoreXattrPrefixes []string
	// Skip drops paths from the comparison; a skipped directory's
	// children are checked separately, so match them too.
	Skip func(path string) bool
	// Max caps the number of differences reported (0: no cap); a final
	// line says how many more there were.
	Max int
}

// Diff returns one human-readable line per difference between a and b,
// ordered by path. An empty result means the trees are equal under opts.
func Diff(a, b *Tree, opts DiffOptions) []string {
	var out []string
	d := &differ{ga: a.groups(), gb: b.groups(), same: map[[2]string]bool{}, opts: opts}
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		var ea, eb *Entry
		switch {
		case j >= len(b.Entries) || (i < len(a.Entries) && a.Entries[i].Path < b.Entries[j].Path):
			ea = &a.Entries[i]
			i++
		case i >= len(a.Entries) || b.Entries[j].Path < a.Entries[i].Path:
			eb = &b.Entries[j]
			j++
		default:
			ea, eb = &a.Entries[i], &b.Entries[j]
			i++
			j++
		}
		path := pathOf(ea, eb)
		if opts.Skip != nil && opts.Skip(path) {
			continue
		}
		switch {
		case eb == nil:
			out = append(out, fmt.Sprintf("%s: only in a (%s)", path, ea.Type))
		case ea == nil:
			out = append(out, fmt.Sprintf("%s: only in b (%s)", path, eb.Type))
		default:
			out = append(out, d.entry(ea, eb)...)
		}
	}
	if opts.Max > 0 && len(out) > opts.Max {
		n := len(out) - opts.Max
		out = append(out[:opts.Max], fmt.Sprintf("... and %d more differences", n))
	}
	return out
}

func pathOf(a, b *Entry) string {
	if a != nil {
		return a.Path
	}
	return b.Path
}

// differ holds what comparing entries needs besides the entries.
type differ struct {
	ga, gb map[string][]string // link-group leader -> members
	same   map[[2]string]bool  // memoised group comparisons (groups can be huge)
	opts   DiffOptions
}

// sameLinks reports whether two link groups have the same members.
func (d *differ) sameLinks(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	k := [2]string{a, b}
	v, ok := d.same[k]
	if !ok {
		v = slices.Equal(d.ga[a], d.gb[b])
		d.same[k] = v
	}
	return v
}

func (d *differ) entry(a, b *Entry) []string {
	opts := d.opts
	var out []string
	add := func(format string, args ...any) {
		out = append(out, a.Path+": "+fmt.Sprintf(format, args...))
	}
	if a.Type != b.Type {
		add("type %s != %s", a.Type, b.Type)
		return out
	}
	if a.Mode != b.Mode {
		add("mode %04o != %04o", a.Mode, b.Mode)
	}
	if !opts.IgnoreOwners {
		if a.UID != b.UID {
			add("uid %d != %d", a.UID, b.UID)
		}
		if a.GID != b.GID {
			add("gid %d != %d", a.GID, b.GID)
		}
	}
	if opts.Nlink && a.Nlink != b.Nlink {
		add("nlink %d != %d", a.Nlink, b.Nlink)
	}
	// Directory sizes are filesystem-specific, so only files and symlinks.
	if (a.Type == Reg || a.Type == Symlink) && a.Size != b.Size {
		add("size %d != %d", a.Size, b.Size)
	}
	if a.Type == Reg && a.SHA256 != "" && b.SHA256 != "" && a.SHA256 != b.SHA256 {
		add("content sha256 %.16s... != %.16s...", a.SHA256, b.SHA256)
	}
	if a.Mtime != b.Mtime && !(opts.IgnoreDirMtime && a.Type == Dir) {
		add("mtime %s != %s", a.Mtime, b.Mtime)
	}
	if opts.Atime && a.Atime != b.Atime {
		add("atime %s != %s", a.Atime, b.Atime)
	}
	if a.Target != b.Target {
		add("symlink target %q != %q", a.Target, b.Target)
	}
	if (a.Type == Chr || a.Type == Blk) && a.Rdev != b.Rdev {
		add("device %d:%d != %d:%d", a.Rdev.Major, a.Rdev.Minor, b.Rdev.Major, b.Rdev.Minor)
	}
	for _, name := range xattrNames(a, b, opts.IgnoreXattrPrefixes) {
		va, okA := a.Xattrs[name]
		vb, okB := b.Xattrs[name]
		switch {
		case !okB:
			add("xattr %s only in a", name)
		case !okA:
			add("xattr %s only in b", name)
		case !equalXattr(va, vb):
			add("xattr %s value %s != %s", name, preview(va), preview(vb))
		}
	}
	if a.Type != Dir && !d.sameLinks(a.LinkGroup, b.LinkGroup) {
		add("hard links [%s] != [%s]", linkList(d.ga[a.LinkGroup]), linkList(d.gb[b.LinkGroup]))
	}
	if opts.Sparse && a.Type == Reg && a.Data != nil && b.Data != nil && !slices.Equal(a.Data, b.Data) {
		add("data ranges %v != %v", a.Data, b.Data)
	}
	return out
}

// xattrNames is the sorted union of both entries' attribute names, minus
// ignored prefixes.
func xattrNames(a, b *Entry, ignore []string) []string {
	seen := map[string]bool{}
	for _, m := range []map[string][]byte{a.Xattrs, b.Xattrs} {
		for k := range m {
			seen[k] = true
		}
	}
	var names []string
next:
	for k := range seen {
		for _, p := range ignore {
			if strings.HasPrefix(k, p) {
				continue next
			}
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// linkList formats a link group's members, shortened when long.
func linkList(members []string) string {
	const max = 8
	if len(members) > max {
		return strings.Join(members[:max], " ") + fmt.Sprintf(" ...(%d paths)", len(members))
	}
	return strings.Join(members, " ")
}
