package treecmp

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTimestamp(t *testing.T) {
	if got := NewTimestamp(-1, 500000000); got != (Timestamp{-1, 500000000}) {
		t.Errorf("NewTimestamp(-1, 5e8) = %+v", got)
	}
	if got := NewTimestamp(0, -1); got != (Timestamp{-1, 999999999}) {
		t.Errorf("NewTimestamp(0, -1) = %+v", got)
	}
	if got := NewTimestamp(1, 2500000000); got != (Timestamp{3, 500000000}) {
		t.Errorf("NewTimestamp(1, 2.5e9) = %+v", got)
	}
	// Pre-1901 (XFS minimum), pre-1970, leap days, 2038, bigtime's end.
	for _, sec := range []int64{-(1 << 31), -300000000, -1, 0, 951782400, 1 << 31, 4102444800, 15032385535, 1<<34 - 1} {
		ts := Timestamp{Sec: sec, Nsec: 123456789}
		want := time.Unix(sec, 123456789).UTC().Format("2006-01-02T15:04:05.000000000Z")
		if got := ts.String(); got != want {
			t.Errorf("Timestamp{%d}.String() = %s, want %s", sec, got, want)
		}
	}
}

func TestRdev(t *testing.T) {
	for _, r := range []Rdev{{1, 3}, {241, 70000}, {4095, 1 << 19}, {259, 0}} {
		if got := RdevFromLinux(unix.Mkdev(r.Major, r.Minor)); got != r {
			t.Errorf("RdevFromLinux(Mkdev(%d, %d)) = %v", r.Major, r.Minor, got)
		}
	}
	// XFS keeps major<<18 | minor; Linux reads back 9 bits of major.
	if got := RdevFromXFS(241<<18 | 70000); got != (Rdev{241, 70000}) {
		t.Errorf("RdevFromXFS = %v", got)
	}
	if got := RdevFromXFS(0x3fff<<18 | 5); got != (Rdev{0x1ff, 5}) {
		t.Errorf("RdevFromXFS(major 0x3fff) = %v", got)
	}
}

func TestTypeFromMode(t *testing.T) {
	for mode, want := range map[uint32]Type{0o100644: Reg, 0o40755: Dir, 0o120777: Symlink, 0o20666: Chr, 0o60660: Blk, 0o10644: Fifo, 0o140755: Sock} {
		if got, ok := TypeFromMode(mode); !ok || got != want {
			t.Errorf("TypeFromMode(0%o) = %v, %v", mode, got, ok)
		}
	}
	if _, ok := TypeFromMode(0o170000); ok {
		t.Error("TypeFromMode accepted S_IFMT 0170000")
	}
	if PermFromMode(0o107755) != 0o7755 {
		t.Error("PermFromMode lost bits")
	}
}

func TestNormalizeRanges(t *testing.T) {
	got := NormalizeRanges([]Range{{8192, 4096}, {0, 4096}, {4096, 4096}, {20000, 0}, {16384, 8192}, {30000, 10}}, 20000)
	want := []Range{{0, 12288}, {16384, 3616}}
	if !slices.Equal(got, want) {
		t.Errorf("NormalizeRanges = %v, want %v", got, want)
	}
	if got := NormalizeRanges(nil, 100); got == nil || len(got) != 0 {
		t.Errorf("NormalizeRanges(nil) = %#v, want empty non-nil", got)
	}
	if got := NormalizeRanges([]Range{{0, 1 << 62}, {1 << 62, 1 << 62}}, 1<<62+5); !slices.Equal(got, []Range{{0, 1<<62 + 5}}) {
		t.Errorf("huge ranges: %v", got)
	}
}

func xfsACL(entries [][3]uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, e[0])
		b = binary.BigEndian.AppendUint32(b, e[1])
		b = binary.BigEndian.AppendUint16(b, uint16(e[2]))
		b = append(b, 0, 0)
	}
	return b
}

func TestACLFromXFS(t *testing.T) {
	disk := xfsACL([][3]uint32{{1, 0xffffffff, 6}, {2, 1234, 4}, {4, 0, 4}, {8, 5678, 6}, {0x10, 0xffffffff, 6}, {0x20, 0, 0}})
	got, err := ACLFromXFS(disk)
	if err != nil {
		t.Fatal(err)
	}
	want := ACLXattr([]ACLEntry{{1, 6, 0}, {2, 4, 1234}, {4, 4, 0}, {8, 6, 5678}, {0x10, 6, 0}, {0x20, 0, 0}})
	if !bytes.Equal(got, want) {
		t.Errorf("ACLFromXFS = %x\nwant           %x", got, want)
	}
	for name, bad := range map[string][]byte{
		"short":       {0, 0},
		"count":       xfsACL([][3]uint32{{1, 0, 6}})[:10],
		"huge count":  {0xff, 0xff, 0xff, 0xff},
		"unknown tag": xfsACL([][3]uint32{{0x40, 0, 6}}),
	} {
		if _, err := ACLFromXFS(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzACLFromXFS(f *testing.F) {
	f.Add(xfsACL([][3]uint32{{1, 0, 6}, {4, 0, 4}, {0x20, 0, 4}}))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := ACLFromXFS(b)
		if err == nil && len(out) != 4+8*int(binary.BigEndian.Uint32(b)) {
			t.Fatalf("%d bytes out", len(out))
		}
	})
}

func TestXattrName(t *testing.T) {
	for _, c := range []struct {
		ns   Namespace
		name string
		want string
	}{
		{NSUser, "a", "user.a"}, {NSTrusted, "t", "trusted.t"}, {NSSecurity, "selinux", "security.selinux"},
		{NSTrusted, "SGI_ACL_FILE", "system.posix_acl_access"}, {NSTrusted, "SGI_ACL_DEFAULT", "system.posix_acl_default"},
		{NSUser, "SGI_ACL_FILE", "user.SGI_ACL_FILE"},
	} {
		if got := XattrName(c.ns, c.name); got != c.want {
			t.Errorf("XattrName(%d, %q) = %q, want %q", c.ns, c.name, got, c.want)
		}
	}
}

func sample() []Entry {
	ts := Timestamp{1000, 5}
	return []Entry{
		{Path: "b/link2", Type: Reg, Mode: 0o644, Size: 3, SHA256: HashBytes([]byte("abc")), Mtime: ts, Ino: 10, Nlink: 2},
		{Path: ".", Type: Dir, Mode: 0o755, Mtime: ts, Ino: 1},
		{Path: "a", Type: Reg, Mode: 0o644, Size: 3, SHA256: HashBytes([]byte("abc")), Mtime: ts, Ino: 10, Nlink: 2,
			Xattrs: map[string][]byte{"user.x": []byte("1"), "security.selinux": []byte("ctx")}},
		{Path: "b", Type: Dir, Mode: 0o755, Mtime: ts, Ino: 2},
		{Path: "c", Type: Symlink, Mode: 0o777, Size: 1, Target: "a", Mtime: ts, Ino: 11},
		{Path: "d", Type: Chr, Mode: 0o600, Rdev: Rdev{1, 3}, Mtime: ts, Ino: 12},
	}
}

func TestNewTree(t *testing.T) {
	tr := NewTree(sample())
	var paths []string
	for _, e := range tr.Entries {
		paths = append(paths, e.Path)
	}
	if !slices.Equal(paths, []string{".", "a", "b", "b/link2", "c", "d"}) {
		t.Errorf("order %v", paths)
	}
	if tr.Lookup("a").LinkGroup != "a" || tr.Lookup("b/link2").LinkGroup != "a" || tr.Lookup("c").LinkGroup != "" {
		t.Errorf("link groups: %+v", tr.Entries)
	}
	if tr.Lookup("nope") != nil {
		t.Error("Lookup of a missing path")
	}
	tr.Lookup("a").Data = []Range{} // all hole: must not come back as "not recorded"
	var buf bytes.Buffer
	if err := tr.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(tr, back, DiffOptions{Atime: true, Sparse: true, Nlink: true}); len(d) > 0 {
		t.Errorf("JSON round trip: %v", d)
	}
	if back.Lookup("a").Data == nil || back.Lookup("c").Data != nil {
		t.Errorf("JSON round trip: data ranges %v / %v, want empty / nil", back.Lookup("a").Data, back.Lookup("c").Data)
	}
	if _, err := ReadJSON(strings.NewReader(`{"entries":[{"path":"b"},{"path":"a"}]}`)); err == nil {
		t.Error("ReadJSON accepted unsorted entries")
	}
}

func TestDiff(t *testing.T) {
	base := NewTree(sample())
	change := func(f func(es []Entry) []Entry) *Tree { return NewTree(f(sample())) }
	find := func(es []Entry, p string) *Entry {
		for i := range es {
			if es[i].Path == p {
				return &es[i]
			}
		}
		panic(p)
	}
	cases := []struct {
		name string
		b    *Tree
		opts DiffOptions
		want []string
	}{
		{"same", base, DiffOptions{}, nil},
		{"mtime", change(func(es []Entry) []Entry { find(es, "c").Mtime.Nsec = 6; return es }), DiffOptions{},
			[]string{"c: mtime 1970-01-01T00:16:40.000000005Z != 1970-01-01T00:16:40.000000006Z"}},
		{"dir mtime ignored", change(func(es []Entry) []Entry { find(es, "b").Mtime.Sec = 1; return es }), DiffOptions{IgnoreDirMtime: true}, nil},
		{"atime off", change(func(es []Entry) []Entry { find(es, "c").Atime.Sec = 1; return es }), DiffOptions{}, nil},
		{"atime on", change(func(es []Entry) []Entry { find(es, "c").Atime.Sec = 1; return es }), DiffOptions{Atime: true},
			[]string{"c: atime 1970-01-01T00:00:00.000000000Z != 1970-01-01T00:00:01.000000000Z"}},
		{"xattr value", change(func(es []Entry) []Entry { find(es, "a").Xattrs = map[string][]byte{"user.x": {0xff}}; return es }),
			DiffOptions{IgnoreXattrPrefixes: []string{"security.selinux"}}, []string{`a: xattr user.x value "1" != 0xff`}},
		{"xattr gone", change(func(es []Entry) []Entry { delete(find(es, "a").Xattrs, "user.x"); return es }), DiffOptions{},
			[]string{"a: xattr user.x only in a"}},
		{"owner", change(func(es []Entry) []Entry { find(es, "d").UID = 7; return es }), DiffOptions{}, []string{"d: uid 0 != 7"}},
		{"owner ignored", change(func(es []Entry) []Entry { find(es, "d").UID = 7; return es }), DiffOptions{IgnoreOwners: true}, nil},
		{"device", change(func(es []Entry) []Entry { find(es, "d").Rdev.Minor = 4; return es }), DiffOptions{}, []string{"d: device 1:3 != 1:4"}},
		{"type", change(func(es []Entry) []Entry { find(es, "d").Type = Fifo; return es }), DiffOptions{}, []string{"d: type chr != fifo"}},
		{"unlinked", change(func(es []Entry) []Entry { find(es, "b/link2").Ino = 99; return es }), DiffOptions{},
			[]string{"a: hard links [a b/link2] != []", "b/link2: hard links [a b/link2] != []"}},
		{"content", change(func(es []Entry) []Entry { find(es, "a").SHA256 = HashBytes([]byte("abd")); return es }), DiffOptions{},
			[]string{"a: content sha256 ba7816bf8f01cfea... != a52d159f262b2c6d..."}},
		{"removed", change(func(es []Entry) []Entry { return slices.DeleteFunc(es, func(e Entry) bool { return e.Path == "c" }) }), DiffOptions{},
			[]string{"c: only in a (symlink)"}},
		{"skip", change(func(es []Entry) []Entry { return slices.DeleteFunc(es, func(e Entry) bool { return e.Path == "c" }) }),
			DiffOptions{Skip: func(p string) bool { return p == "c" }}, nil},
		{"sparse", change(func(es []Entry) []Entry { find(es, "a").Data = []Range{{0, 3}}; return es }), DiffOptions{Sparse: true}, nil},
		{"max", change(func(es []Entry) []Entry { find(es, "c").Mode = 0; find(es, "d").Mode = 0; return es }), DiffOptions{Max: 1},
			[]string{"c: mode 0777 != 0000", "... and 1 more differences"}},
	}
	for _, c := range cases {
		if got := Diff(base, c.b, c.opts); !slices.Equal(got, c.want) {
			t.Errorf("%s: Diff =\n%q\nwant\n%q", c.name, got, c.want)
		}
	}
	// Data ranges: only compared when both sides recorded them.
	a := NewTree(sample())
	a.Lookup("a").Data = []Range{{0, 3}}
	b := NewTree(sample())
	b.Lookup("a").Data = []Range{}
	if got := Diff(a, b, DiffOptions{Sparse: true}); !slices.Equal(got, []string{"a: data ranges [0+3] != []"}) {
		t.Errorf("sparse diff: %q", got)
	}
	if got := Diff(a, b, DiffOptions{}); len(got) != 0 {
		t.Errorf("sparse compared without Sparse: %q", got)
	}
	// Only in b, from an empty tree.
	if got := Diff(NewTree(nil), NewTree([]Entry{{Path: ".", Type: Dir}}), DiffOptions{}); !slices.Equal(got, []string{".: only in b (dir)"}) {
		t.Errorf("only in b: %q", got)
	}
}
