package pack_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// tnode is one inode of a test tree together with what the kernel and
// the engine should show for it.
type tnode struct {
	paths  []string // every name (hard links), relative to the mount
	in     pack.Inode
	kids   []*tnode // directory children, in entry order (links repeat)
	names  []string // names of kids
	data   map[int64][]byte
	xattrs map[string][]byte // Linux names and values as the kernel shows them
	res    *pack.Result
	// fragment: pack this inode with single-block allocations in
	// descending order, so its block mappings need bmbt forms.
	fragment bool
}

func (n *tnode) ftype() uint16 { return n.in.Mode & ondisk.ModeTypeMask }

// testTree builds a tree of inodes in preallocated chunks of a testImage.
type testTree struct {
	t      testing.TB
	ti     *testImage
	free   []uint64 // unused inode numbers, in order
	chunks []uint64
	nodes  []*tnode
	root   *tnode
	now    ondisk.Timestamp
}

func newTestTree(t testing.TB, ti *testImage, chunks int) *testTree {
	tr := &testTree{t: t, ti: ti, now: ondisk.Timestamp{Sec: 1700000000, Nsec: 123456789}}
	for i := 0; i < chunks; i++ {
		first := ti.allocChunk()
		tr.chunks = append(tr.chunks, first)
		for j := uint64(0); j < ondisk.InodesPerChunk; j++ {
			tr.free = append(tr.free, first+j)
		}
	}
	// The existing root directory keeps its inode; its entries are
	// rewritten by pack like any other directory.
	d := ti.readInode(ti.sb.RootIno)
	tr.root = &tnode{paths: []string{""}, in: pack.Inode{
		Ino: ti.sb.RootIno, Mode: d.Mode, UID: d.UID, GID: d.GID, NLink: 2, Parent: ti.sb.RootIno,
		Gen: d.Gen, Atime: d.Atime, Mtime: d.Mtime, Ctime: d.Ctime, Crtime: d.Crtime,
	}}
	return tr
}

func (tr *testTree) newNode(parent *tnode, name string, mode uint16) *tnode {
	tr.t.Helper()
	if len(tr.free) == 0 {
		tr.t.Fatal("test tree ran out of preallocated inodes")
	}
	ino := tr.free[0]
	tr.free = tr.free[1:]
	// Distinct times per inode so that mixing them up shows.
	k := int64(len(tr.nodes))
	n := &tnode{in: pack.Inode{
		Ino: ino, Mode: mode, UID: uint32(1000 + k), GID: uint32(2000 + k), NLink: 1,
		Gen:   pack.Generation(tr.ti.sb.UUID, ino),
		Atime: ondisk.Timestamp{Sec: 1600000000 + k, Nsec: uint32(k * 7)},
		Mtime: ondisk.Timestamp{Sec: 1500000000 + k, Nsec: uint32(999999999 - k)},
		Ctime: tr.now, Crtime: tr.now,
	}}
	tr.nodes = append(tr.nodes, n)
	tr.link(parent, name, n)
	n.in.NLink = 1
	return n
}

func (tr *testTree) link(parent *tnode, name string, n *tnode) {
	parent.kids = append(parent.kids, n)
	parent.names = append(parent.names, name)
	n.paths = append(n.paths, path.Join(parent.paths[0], name))
	n.in.NLink++
}

func (tr *testTree) dir(parent *tnode, name string) *tnode {
	n := tr.newNode(parent, name, ondisk.ModeDir|0o755)
	n.in.Parent = parent.in.Ino
	n.in.NLink = 2
	parent.in.NLink++
	return n
}

func (tr *testTree) symlink(parent *tnode, name, target string) *tnode {
	n := tr.newNode(parent, name, ondisk.ModeSymlink|0o777)
	n.in.Target = []byte(target)
	return n
}

func (tr *testTree) device(parent *tnode, name string, mode uint16, major, minor uint32) *tnode {
	n := tr.newNode(parent, name, mode)
	if dev, ok := ondisk.MakeDev(major, minor); ok {
		n.in.Rdev = dev
	} else {
		tr.t.Fatalf("device %d:%d does not fit", major, minor)
	}
	return n
}

// file makes a regular file of size bytes whose data blocks are the given
// file block numbers (each filled with a pattern), allocated one at a time
// so that non-adjacent blocks make separate extents.
func (tr *testTree) file(parent *tnode, name string, size int64, blocks []uint64) *tnode {
	tr.t.Helper()
	n := tr.newNode(parent, name, ondisk.ModeReg|0o640)
	n.in.Size = uint64(size)
	n.data = map[int64][]byte{}
	bs := int64(tr.ti.sb.BlockSize)
	for _, b := range blocks {
		runs, err := tr.ti.alloc(pack.Request{Len: 1})
		if err != nil {
			tr.t.Fatal(err)
		}
		buf := make([]byte, bs)
		for i := range buf {
			buf[i] = byte(int(b)*7 + i/97 + 1)
		}
		if end := size - int64(b)*bs; end < bs {
			clear(buf[max(end, 0):]) // the kernel shows zeros past EOF
		}
		tr.ti.writeAt(buf, int64(tr.ti.sb.FSBToDaddr(runs[0].FSB))<<ondisk.BBShift)
		n.in.Extents = append(n.in.Extents, ondisk.Extent{Offset: b, StartBlock: runs[0].FSB, Length: 1})
		n.data[int64(b)*bs] = buf[:min(bs, size-int64(b)*bs)]
	}
	return n
}

// xattr adds an attribute by its Linux name. ACL values are given in the
// Linux format, which is also what the kernel shows.
func (tr *testTree) xattr(n *tnode, name string, value []byte) {
	tr.t.Helper()
	x, err := pack.XattrFromLinux(name, value)
	if err != nil {
		tr.t.Fatal(err)
	}
	n.in.Xattrs = append(n.in.Xattrs, x)
	if n.xattrs == nil {
		n.xattrs = map[string][]byte{}
	}
	n.xattrs[name] = value
	if stored, ok := ondisk.LinuxACLName(x.NS, x.Name); ok && stored == name {
		// As root the kernel also lists the stored form.
		n.xattrs[ondisk.LinuxXattrName(x.NS, x.Name)] = x.Value
	}
}

// pack builds every inode and writes the chunks and the root.
func (tr *testTree) pack() {
	tr.t.Helper()
	isz := int(tr.ti.sb.InodeSize)
	enc := map[uint64][]byte{}
	for _, n := range append([]*tnode{tr.root}, tr.nodes...) {
		if n.ftype() == ondisk.ModeDir {
			n.in.Entries = n.in.Entries[:0]
			for i, k := range n.kids {
				n.in.Entries = append(n.in.Entries, pack.DirEntry{Name: []byte(n.names[i]), Ino: k.in.Ino, FType: ondisk.DirFTypeFromMode(k.in.Mode)})
			}
		}
		buf := make([]byte, isz)
		tr.ti.frag, tr.ti.reverse = 0, false
		if n.fragment {
			tr.ti.frag, tr.ti.reverse = 1, true
		}
		res, err := tr.ti.p.Pack(&n.in, buf)
		tr.ti.frag, tr.ti.reverse = 0, false
		if err != nil {
			tr.t.Fatalf("%s: %v", n.paths[0], err)
		}
		n.res = res
		enc[n.in.Ino] = buf
		tr.ti.addRmaps(n.in.Ino, res)
	}
	tr.ti.writeInode(tr.root.in.Ino, enc[tr.root.in.Ino])
	for _, c := range tr.chunks {
		tr.ti.writeChunk(c, enc)
	}
	tr.ti.finish()
}

func (tr *testTree) lookup(p string) *tnode {
	for _, n := range append([]*tnode{tr.root}, tr.nodes...) {
		if slices.Contains(n.paths, p) {
			return n
		}
	}
	tr.t.Fatalf("no test node %q", p)
	return nil
}

// posixACL encodes a Linux-format ACL from (tag, perm, id) triples.
func posixACL(ents ...[3]uint32) []byte {
	b := make([]byte, 4+8*len(ents))
	binary.LittleEndian.PutUint32(b, 2)
	for i, e := range ents {
		binary.LittleEndian.PutUint16(b[4+8*i:], uint16(e[0]))
		binary.LittleEndian.PutUint16(b[6+8*i:], uint16(e[1]))
		binary.LittleEndian.PutUint32(b[8+8*i:], e[2])
	}
	return b
}

func name(prefix string, i, length int) string {
	s := fmt.Sprintf("%s%06d", prefix, i)
	for len(s) < length {
		s += "-" + s
	}
	return s[:length]
}

func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7 + i/251)
	}
	return b
}

// buildCorpus makes the test tree: every directory, attribute, symlink
// and data fork form pack can produce, with names and sizes chosen to
// cross each boundary. big adds the 50,000-entry directory.
func buildCorpus(tr *testTree, big bool) {
	sb := tr.ti.sb
	bs := int(sb.BlockSize)
	lit := int(sb.InodeSize) - ondisk.DinodeV3CoreSize
	top := tr.dir(tr.root, "t")
	target := tr.file(top, "target", 6, []uint64{0})

	dirs := tr.dir(top, "dirs")
	tr.dir(dirs, "empty")
	for _, d := range []struct {
		name  string
		n     int
		nlen  int
		links bool
	}{
		{"sf", 5, 10, true}, {"block", 60, 20, true}, {"leaf", 400, 24, true},
		{"node", 5000, 40, true}, {"long-names", 300, 255, true},
	} {
		dn := tr.dir(dirs, d.name)
		for i := 0; i < d.n; i++ {
			tr.link(dn, name(d.name, i, d.nlen), target)
		}
	}
	utf := tr.dir(dirs, "utf8")
	for i, s := range []string{"é", "日本語のファイル名", "Ωμέγα", "emoji-🎉", "Grüße", "\xff\xfe-not-utf8"} {
		tr.file(utf, s, int64(i), nil)
	}
	if big {
		huge := tr.dir(dirs, "huge")
		for i := 0; i < 50000; i++ {
			tr.link(huge, name("h", i, 100), target)
		}
	}
	// A directory whose blocks are scattered so its mapping needs a bmbt.
	frag := tr.dir(dirs, "fragmented")
	frag.fragment = true
	for i := 0; i < 3000; i++ {
		tr.link(frag, name("f", i, 60), target)
	}
	sub := tr.dir(dirs, "with-subdirs")
	for i := 0; i < 40; i++ {
		tr.dir(sub, fmt.Sprintf("d%02d", i))
	}

	files := tr.dir(top, "files")
	tr.file(files, "empty", 0, nil)
	tr.file(files, "small", 100, []uint64{0})
	tr.file(files, "hole-at-end", int64(bs)*10+5, []uint64{0})
	tr.file(files, "all-hole", 1<<30, nil)
	var sparse []uint64
	for i := uint64(0); i < 300; i++ {
		sparse = append(sparse, 2*i+1)
	}
	tr.file(files, "sparse-300", int64(bs)*601, sparse)
	var sparse2 []uint64
	for i := uint64(0); i < 2500; i++ {
		sparse2 = append(sparse2, 3*i)
	}
	bt := tr.file(files, "sparse-2500", int64(bs)*7500-17, sparse2)
	tr.xattr(bt, "user.with-btree", []byte("data fork in btree form with an attr fork"))
	far := tr.file(files, "far", 1<<40+100, []uint64{1 << 28})
	_ = far

	links := tr.dir(top, "symlinks")
	tr.symlink(links, "short", "../files/small")
	tr.symlink(links, "fits", string(bytes.Repeat([]byte("a"), min(lit, 1023))))
	if lit < 1023 {
		tr.symlink(links, "just-over", string(bytes.Repeat([]byte("b"), lit+1)))
	}
	tr.symlink(links, "max", strings.Repeat("c/", 511)+"d")
	sl := tr.symlink(links, "attr-remote", string(bytes.Repeat([]byte("e"), 200)))
	tr.xattr(sl, "trusted.on-symlink", []byte("v"))
	sl2 := tr.symlink(links, "attr-inline", "short-target")
	tr.xattr(sl2, "trusted.t", []byte("tv"))

	devs := tr.dir(top, "devices")
	tr.device(devs, "null", ondisk.ModeChar|0o666, 1, 3)
	tr.device(devs, "loop0", ondisk.ModeBlock|0o660, 7, 0)
	tr.device(devs, "big-minor", ondisk.ModeChar|0o600, 259, 100000)
	tr.device(devs, "fifo", ondisk.ModeFIFO|0o644, 0, 0)
	tr.device(devs, "sock", ondisk.ModeSocket|0o755, 0, 0)
	ad := tr.device(devs, "with-attrs", ondisk.ModeChar|0o644, 4, 64)
	for i := 0; i < 5; i++ {
		tr.xattr(ad, fmt.Sprintf("trusted.dev%d", i), pattern(i, 40))
	}
	ad2 := tr.device(devs, "with-leaf-attrs", ondisk.ModeBlock|0o644, 8, 1)
	for i := 0; i < 10; i++ {
		tr.xattr(ad2, fmt.Sprintf("security.dev%d", i), pattern(i, 100))
	}

	xa := tr.dir(top, "xattrs")
	f := tr.file(xa, "sf", 10, []uint64{0})
	tr.xattr(f, "user.a", []byte("1"))
	tr.xattr(f, "trusted.b", []byte("22"))
	tr.xattr(f, "security.c", []byte("333"))
	tr.xattr(f, "user.empty", nil)
	f = tr.file(xa, "sf-grows", 0, nil)
	for i := 0; i < 6; i++ { // more than the default attr fork holds
		tr.xattr(f, fmt.Sprintf("user.g%d", i), pattern(i, 30))
	}
	f = tr.file(xa, "sf-max-entry", 0, nil)
	tr.xattr(f, "user."+name("n", 0, 200), pattern(1, 100))
	// Linux names are at most 255 bytes with the prefix.
	f = tr.file(xa, "name-max", 0, nil)
	tr.xattr(f, "user."+name("x", 1, 250), []byte("v"))
	f = tr.file(xa, "value-255", 0, nil)
	tr.xattr(f, "user.v", pattern(2, 255))
	f = tr.file(xa, "leaf", 0, nil)
	for i := 0; i < 20; i++ {
		tr.xattr(f, fmt.Sprintf("user.leaf%02d", i), pattern(i, 100))
	}
	f = tr.file(xa, "node", 0, nil)
	f.fragment = true
	for i := 0; i < 600; i++ {
		tr.xattr(f, name("user.node", i, 30), pattern(i, 50+i%40))
	}
	f = tr.file(xa, "remote", 0, nil)
	tr.xattr(f, "user.local-max", pattern(5, bs/2+bs/4-3-12-4))
	tr.xattr(f, "user.remote-min", pattern(6, bs/2+bs/4))
	tr.xattr(f, "user.big", pattern(7, 60000))
	tr.xattr(f, "trusted.max", pattern(8, 65536))
	tr.xattr(f, "security.one-block", pattern(9, bs-56))
	f = tr.file(xa, "many-remote", 0, nil)
	for i := 0; i < 40; i++ {
		tr.xattr(f, fmt.Sprintf("user.r%02d", i), pattern(i, 3000+i))
	}
	acl := posixACL([3]uint32{ondisk.ACLUserObj, 7, ondisk.ACLUndefinedID}, [3]uint32{ondisk.ACLUser, 5, 1000},
		[3]uint32{ondisk.ACLGroupObj, 5, ondisk.ACLUndefinedID}, [3]uint32{ondisk.ACLGroup, 4, 3000},
		[3]uint32{ondisk.ACLMask, 5, ondisk.ACLUndefinedID}, [3]uint32{ondisk.ACLOther, 4, ondisk.ACLUndefinedID})
	d := tr.dir(xa, "acl-dir")
	tr.xattr(d, "system.posix_acl_access", acl)
	tr.xattr(d, "system.posix_acl_default", acl)
	tr.file(d, "child", 0, nil)
	d = tr.dir(xa, "dir-leaf-attrs")
	for i := 0; i < 30; i++ {
		tr.xattr(d, fmt.Sprintf("user.x%02d", i), pattern(i, 80))
		tr.link(d, fmt.Sprintf("l%02d", i), target)
	}
}

func sortedNames(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
