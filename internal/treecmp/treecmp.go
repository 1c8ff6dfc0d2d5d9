// Package treecmp takes comparable snapshots of directory trees: every
// entry's type, permissions, owner, size, content hash, timestamps, symlink
// target, device numbers, extended attributes, hard-link grouping and data
// ranges (sparseness). Two snapshots are compared with Diff, which returns
// human-readable differences.
//
// A snapshot can come from a mounted directory (FromDir) or from any other
// reader of a filesystem (such as xfskit's own engine), which builds Entry
// values with the field constructors in this file and calls NewTree. Entry
// holds only plain, OS-independent fields so that both sides produce
// identical values for identical trees.
package treecmp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// Type is the kind of a directory entry.
type Type string

// Entry types, named as short lowercase words so diffs read naturally.
const (
	Reg     Type = "reg"
	Dir     Type = "dir"
	Symlink Type = "symlink"
	Chr     Type = "chr"
	Blk     Type = "blk"
	Fifo    Type = "fifo"
	Sock    Type = "sock"
)

// Mode type bits (S_IFMT) as stored by Linux and by XFS in di_mode.
const (
	modeTypeMask = 0o170000
	modeSock     = 0o140000
	modeLink     = 0o120000
	modeReg      = 0o100000
	modeBlk      = 0o060000
	modeDir      = 0o040000
	modeChr      = 0o020000
	modeFifo     = 0o010000
)

// TypeFromMode returns the entry type encoded in the S_IFMT bits of mode, or
// false for an unknown type.
func TypeFromMode(mode uint32) (Type, bool) {
	switch mode & modeTypeMask {
	case modeReg:
		return Reg, true
	case modeDir:
		return Dir, true
	case modeLink:
		return Symlink, true
	case modeChr:
		return Chr, true
	case modeBlk:
		return Blk, true
	case modeFifo:
		return Fifo, true
	case modeSock:
		return Sock, true
	}
	return "", false
}

// PermFromMode keeps the permission, setuid, setgid and sticky bits of mode.
func PermFromMode(mode uint32) uint32 { return mode & 0o7777 }

// Timestamp is seconds and nanoseconds since the Unix epoch. It is not a
// single int64 of nanoseconds because XFS bigtime reaches the year 2486,
// past what int64 nanoseconds can hold (2262).
type Timestamp struct {
	Sec  int64  `json:"sec"`
	Nsec uint32 `json:"nsec"`
}

// NewTimestamp builds a Timestamp, normalising nsec into [0, 1e9).
func NewTimestamp(sec, nsec int64) Timestamp {
	sec += nsec / 1e9
	nsec %= 1e9
	if nsec < 0 {
		nsec += 1e9
		sec--
	}
	return Timestamp{Sec: sec, Nsec: uint32(nsec)}
}

// String formats t as an RFC 3339 UTC time with nanoseconds, computed by
// hand so that years outside time.Time's formatting range still print.
func (t Timestamp) String() string {
	days := t.Sec / 86400
	rem := t.Sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civilFromDays(days)
	return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", y, m, d, rem/3600, rem/60%60, rem%60, t.Nsec)
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// Rdev is a device number split into major and minor.
type Rdev struct {
	Major uint32 `json:"major"`
	Minor uint32 `json:"minor"`
}

// RdevFromLinux splits a Linux dev_t (as in stat's st_rdev).
func RdevFromLinux(dev uint64) Rdev {
	major := (dev>>8)&0x00000fff | (dev>>32)&0xfffff000
	minor := dev&0x000000ff | (dev>>12)&0xffffff00
	return Rdev{Major: uint32(major), Minor: uint32(minor)}
}

// RdevFromXFS decodes the 32-bit device number XFS stores in a device
// inode's data fork (14-bit major, 18-bit minor). Linux keeps only 9 bits
// of that major when it reads the inode, and so does this.
func RdevFromXFS(dev uint32) Rdev {
	return Rdev{Major: (dev >> 18) & 0x1ff, Minor: dev & 0x3ffff}
}

// Range is a byte range [Off, Off+Len) of a file that holds data.
type Range struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// String formats r as "off+len".
func (r Range) String() string { return fmt.Sprintf("%d+%d", r.Off, r.Len) }

// NormalizeRanges sorts data ranges, merges overlapping or adjacent ones,
// drops empty ones and clips them to size, so that ranges built from an
// extent map compare equal to those found with SEEK_DATA/SEEK_HOLE.
// Unwritten (preallocated) extents must not be passed: they read as holes.
func NormalizeRanges(rs []Range, size int64) []Range {
	var in []Range
	for _, r := range rs {
		if r.Len <= 0 || r.Off < 0 || r.Off >= size {
			continue
		}
		if r.Off+r.Len > size || r.Off+r.Len < r.Off {
			r.Len = size - r.Off
		}
		in = append(in, r)
	}
	sort.Slice(in, func(i, j int) bool { return in[i].Off < in[j].Off })
	out := []Range{}
	for _, r := range in {
		if n := len(out); n > 0 && r.Off <= out[n-1].Off+out[n-1].Len {
			if end := r.Off + r.Len; end > out[n-1].Off+out[n-1].Len {
				out[n-1].Len = end - out[n-1].Off
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// HashReader returns the hex SHA-256 of everything r yields.
func HashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashBytes returns the hex SHA-256 of b.
func HashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Namespace is an extended attribute namespace as XFS stores it.
type Namespace int

// XFS attribute namespaces: no flag (user), XFS_ATTR_ROOT (trusted),
// XFS_ATTR_SECURE (security).
const (
	NSUser Namespace = iota
	NSTrusted
	NSSecurity
)

// XattrName returns the name Linux shows for an attribute stored by XFS in
// namespace ns under name. XFS keeps POSIX ACLs as root-namespace
// attributes with SGI_ACL_* names; Linux shows them as system.posix_acl_*.
// Their values need ACLFromXFS.
func XattrName(ns Namespace, name string) string {
	switch ns {
	case NSTrusted:
		switch name {
		case "SGI_ACL_FILE":
			return "system.posix_acl_access"
		case "SGI_ACL_DEFAULT":
			return "system.posix_acl_default"
		}
		return "trusted." + name
	case NSSecurity:
		return "security." + name
	}
	return "user." + name
}

// POSIX ACL tags (the same numbers in the XFS and the Linux xattr format).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// ACLFromXFS converts an ACL as XFS stores it (struct xfs_acl: big-endian
// count, then {tag, id, perm, pad} entries) to the little-endian
// system.posix_acl_* value Linux returns from getxattr (version 2 header,
// then {tag, perm, id} entries, id 0xffffffff where the tag has none).
func ACLFromXFS(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("xfs ACL: %d bytes, need at least 4", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)) != 4+uint64(n)*12 {
		return nil, fmt.Errorf("xfs ACL: %d entries need %d bytes, have %d", n, 4+uint64(n)*12, len(b))
	}
	out := make([]byte, 4, 4+8*int(n))
	binary.LittleEndian.PutUint32(out, 2)
	for i := 0; i < int(n); i++ {
		e := b[4+12*i:]
		tag := binary.BigEndian.Uint32(e)
		id := binary.BigEndian.Uint32(e[4:])
		perm := binary.BigEndian.Uint16(e[8:])
		switch tag {
		case aclUser, aclGroup:
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			id = 0xffffffff
		default:
			return nil, fmt.Errorf("xfs ACL: entry %d: unknown tag 0x%x", i, tag)
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(tag))
		out = binary.LittleEndian.AppendUint16(out, perm)
		out = binary.LittleEndian.AppendUint32(out, id)
	}
	return out, nil
}

// ACLEntry is one entry of a POSIX ACL, for building test ACL values.
type ACLEntry struct {
	Tag  uint16 // 1 user_obj, 2 user, 4 group_obj, 8 group, 0x10 mask, 0x20 other
	Perm uint16 // rwx bits
	ID   uint32 // uid/gid for user/group entries
}

// ACLXattr encodes entries as a Linux system.posix_acl_* xattr value.
func ACLXattr(entries []ACLEntry) []byte {
	out := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		id := e.ID
		if e.Tag != aclUser && e.Tag != aclGroup {
			id = 0xffffffff
		}
		out = binary.LittleEndian.AppendUint16(out, e.Tag)
		out = binary.LittleEndian.AppendUint16(out, e.Perm)
		out = binary.LittleEndian.AppendUint32(out, id)
	}
	return out
}

// Entry describes one file in a tree. Fields that do not apply to a type
// stay at their zero value.
type Entry struct {
	Path   string    `json:"path"` // relative to the root, "/"-separated; "." is the root
	Type   Type      `json:"type"`
	Mode   uint32    `json:"mode"` // permissions + setuid/setgid/sticky (PermFromMode)
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	Nlink  uint32    `json:"nlink"`
	Size   int64     `json:"size"`             // bytes; symlinks: target length; directories: 0 (filesystem-specific)
	SHA256 string    `json:"sha256,omitempty"` // hex, regular files only
	Mtime  Timestamp `json:"mtime"`
	Atime  Timestamp `json:"atime"`
	Target string    `json:"target,omitempty"` // symlink target
	Rdev   Rdev      `json:"rdev"`             // char and block devices
	// Xattrs maps full Linux names ("user.x", "trusted.y", "security.z",
	// "system.posix_acl_access") to values.
	Xattrs map[string][]byte `json:"xattrs,omitempty"`
	// LinkGroup is set by NewTree for non-directories sharing an inode with
	// another entry of the tree: the first (smallest) path of the group,
	// which identifies the group the same way in any tree.
	LinkGroup string `json:"link_group,omitempty"`
	// Data lists the ranges holding data (NormalizeRanges form) of a
	// regular file; nil when not recorded, empty when the file has none
	// (no omitempty: JSON must keep that difference).
	Data []Range `json:"data"`
	// Ino identifies the inode within its own tree (hard links share it).
	// It is never compared.
	Ino uint64 `json:"ino"`
}

// Tree is a snapshot: entries sorted by path.
type Tree struct {
	Entries []Entry `json:"entries"`
	index   map[string]int
}

// NewTree sorts entries by path and assigns LinkGroup to every
// non-directory whose Ino is shared with another entry.
func NewTree(entries []Entry) *Tree {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	count := map[uint64]int{}
	for _, e := range entries {
		if e.Type != Dir {
			count[e.Ino]++
		}
	}
	leader := map[uint64]string{}
	for i := range entries {
		e := &entries[i]
		e.LinkGroup = ""
		if e.Type == Dir || count[e.Ino] < 2 {
			continue
		}
		if _, ok := leader[e.Ino]; !ok {
			leader[e.Ino] = e.Path
		}
		e.LinkGroup = leader[e.Ino]
	}
	return &Tree{Entries: entries}
}

// Lookup returns the entry at path, or nil.
func (t *Tree) Lookup(path string) *Entry {
	if t.index == nil {
		t.index = make(map[string]int, len(t.Entries))
		for i, e := range t.Entries {
			t.index[e.Path] = i
		}
	}
	if i, ok := t.index[path]; ok {
		return &t.Entries[i]
	}
	return nil
}

// WriteJSON writes t as JSON.
func (t *Tree) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(t)
}

// ReadJSON reads a tree written by WriteJSON.
func ReadJSON(r io.Reader) (*Tree, error) {
	var t Tree
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return nil, fmt.Errorf("tree snapshot: %w", err)
	}
	if !slices.IsSortedFunc(t.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) }) {
		return nil, fmt.Errorf("tree snapshot: entries not sorted by path")
	}
	return &t, nil
}

// groups maps each link-group leader to its members, for messages.
func (t *Tree) groups() map[string][]string {
	g := map[string][]string{}
	for _, e := range t.Entries {
		if e.LinkGroup != "" {
			g[e.LinkGroup] = append(g[e.LinkGroup], e.Path)
		}
	}
	return g
}

// preview shows an attribute value briefly: quoted when printable.
func preview(v []byte) string {
	const max = 32
	s := v
	more := ""
	if len(s) > max {
		s, more = s[:max], fmt.Sprintf("...(%d bytes)", len(v))
	}
	printable := true
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		return fmt.Sprintf("%q%s", s, more)
	}
	return "0x" + hex.EncodeToString(s) + more
}

func equalXattr(a, b []byte) bool { return bytes.Equal(a, b) }
