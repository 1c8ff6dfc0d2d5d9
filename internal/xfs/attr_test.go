package xfs_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

func atRand(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func atSet(t testing.TB, p, name string, v []byte) {
	t.Helper()
	if err := syscall.Setxattr(p, name, v, 0); err != nil {
		t.Fatalf("setxattr %s %s (%d bytes): %v", p, name, len(v), err)
	}
}

// atGetfattr is `getfattr -d -m - -e hex` as name -> value.
func atGetfattr(t testing.TB, p string) map[string][]byte {
	t.Helper()
	out := oracle.Run(t, "getfattr", "--absolute-names", "-d", "-m", "-", "-e", "hex", p)
	m := map[string][]byte{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(strings.TrimPrefix(v, "0x"))
		dtMust(t, err)
		m[k] = b
	}
	return m
}

// atListKernel lists attributes with listxattr/getxattr directly, for
// names getfattr would escape.
func atListKernel(t testing.TB, p string) map[string][]byte {
	t.Helper()
	buf := make([]byte, 1<<20)
	n, err := syscall.Listxattr(p, buf)
	dtMust(t, err)
	m := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 65536)
		k, err := syscall.Getxattr(p, name, v)
		dtMust(t, err)
		m[name] = v[:k]
	}
	return m
}

func atACL() []byte {
	return ondisk.PosixACLXattr([]ondisk.ACLEntry{
		{Tag: ondisk.ACLUserObj, Perm: 7}, {Tag: ondisk.ACLUser, Perm: 4, ID: 1000},
		{Tag: ondisk.ACLGroupObj, Perm: 5}, {Tag: ondisk.ACLMask, Perm: 5}, {Tag: ondisk.ACLOther, Perm: 1}})
}

var atCollide = dtCollisions("hashcollisions", 11)

type atFile struct {
	ino  uint64
	want map[string][]byte
}

// atSpecs fill one file each with a different attribute fork.
var atSpecs = []struct {
	name string
	dir  bool
	fill func(t testing.TB, p string)
}{
	{"none", false, func(t testing.TB, p string) {}},
	{"sf", false, func(t testing.TB, p string) {
		atSet(t, p, "user.a", []byte("hello"))
		atSet(t, p, "trusted.t", []byte{0, 1, 2})
		atSet(t, p, "security.s", []byte("label"))
		atSet(t, p, "user.empty", nil)
	}},
	{"leaf", false, func(t testing.TB, p string) {
		for i := 0; i < 20; i++ {
			atSet(t, p, fmt.Sprintf("user.leaf_attribute_%d", i), []byte(fmt.Sprintf("value_%d", i)))
		}
		atSet(t, p, "trusted.in_leaf", []byte("t"))
		atSet(t, p, "security.in_leaf", []byte("s"))
	}},
	{"attrs200", false, func(t testing.TB, p string) {
		for i := 0; i < 200; i++ {
			atSet(t, p, fmt.Sprintf("user.attr_%d", i), []byte(fmt.Sprintf("value_%d", i)))
		}
	}},
	{"node", false, func(t testing.TB, p string) {
		for i := 0; i < 2000; i++ {
			atSet(t, p, fmt.Sprintf("user.node_attribute_name_%d", i), atRand(uint64(i), i%60))
		}
		for i := 0; i < 2000; i += 4 {
			dtMust(t, syscall.Removexattr(p, fmt.Sprintf("user.node_attribute_name_%d", i)))
		}
		atSet(t, p, "trusted.node_root", []byte("r"))
	}},
	{"remote", false, func(t testing.TB, p string) {
		atSet(t, p, "user.v16k", atRand(16, 16384))
		atSet(t, p, "user.v64k", atRand(64, 65536))
		atSet(t, p, "trusted.v3000", atRand(3, 3000))
		atSet(t, p, "security.v5000", atRand(5, 5000))
		atSet(t, p, "user.small", []byte("x"))
	}},
	{"noderemote", false, func(t testing.TB, p string) {
		for i := 0; i < 300; i++ {
			atSet(t, p, fmt.Sprintf("user.mixed_%d", i), atRand(uint64(1000+i), []int{10, 2000, 7000}[i%3]))
		}
	}},
	{"acl", true, func(t testing.TB, p string) {
		atSet(t, p, "system.posix_acl_access", atACL())
		atSet(t, p, "system.posix_acl_default", atACL())
	}},
	{"collide", false, func(t testing.TB, p string) {
		for i, n := range atCollide {
			atSet(t, p, "user."+n, []byte(fmt.Sprintf("v%d", i)))
		}
	}},
}

func atBuild(t *testing.T, opts []string) (*xfs.FS, map[string]atFile) {
	t.Helper()
	oracle.Require(t, oracle.Attr)
	files := map[string]atFile{}
	fx := dtBuild(t, opts, nil, func(mnt string) {
		for _, s := range atSpecs {
			p := filepath.Join(mnt, s.name)
			if s.dir {
				dtMust(t, os.Mkdir(p, 0o755))
			} else {
				dtTouch(t, mnt, []string{s.name})
			}
			s.fill(t, p)
			want := atListKernel(t, p)
			if s.name != "collide" {
				// getfattr is the reference; it must agree with the syscalls.
				want = atGetfattr(t, p)
				if k := atListKernel(t, p); len(k) != len(want) {
					t.Fatalf("%s: getfattr shows %d attributes, listxattr %d", s.name, len(want), len(k))
				}
			}
			files[s.name] = atFile{dtStatIno(t, p), want}
		}
	})
	return fx.fs, files
}

// ListXattrs and GetXattr on every attribute fork form, compared with what
// getfattr (or listxattr/getxattr) shows through the kernel.
func TestXattrsAgainstKernel(t *testing.T) {
	geoms := []struct {
		name  string
		opts  []string
		forms []string
	}{
		{"4k", nil, []string{"local", "leaf", "node"}},
		{"1k-blocks", []string{"-b", "size=1024"}, []string{"local", "leaf", "node"}},
		{"64k-blocks", []string{"-b", "size=65536", "-i", "sparse=0"}, []string{"local", "leaf", "node"}},
	}
	for _, gm := range geoms {
		t.Run(gm.name, func(t *testing.T) {
			fsys, files := atBuild(t, gm.opts)
			forms := map[string]bool{}
			for _, s := range atSpecs {
				f := files[s.name]
				t.Run(s.name, func(t *testing.T) {
					ip, err := fsys.Inode(f.ino)
					dtMust(t, err)
					form := atForm(t, fsys, ip)
					forms[form] = true
					t.Logf("%s: %d attributes, %s form", s.name, len(f.want), form)
					got := atCheckList(t, fsys, ip, f.want)
					atCheckGet(t, fsys, ip, got, form, s.name == "collide")
				})
			}
			for _, w := range gm.forms {
				if !forms[w] {
					t.Errorf("no %s attribute fork exercised (saw %v)", w, forms)
				}
			}
		})
	}
}

// atForm names an attr fork: none, local, leaf or node.
func atForm(t *testing.T, fsys *xfs.FS, ip *xfs.Inode) string {
	if ip.ForkOff == 0 {
		return "none"
	}
	switch ip.AFormat {
	case ondisk.FmtLocal:
		return "local"
	case ondisk.FmtExtents, ondisk.FmtBtree:
		ext, err := fsys.Extents(ip, true)
		dtMust(t, err)
		if len(ext) == 0 {
			return "none"
		}
		b, err := fsys.ReadFSB(ext[0].StartBlock, 1)
		dtMust(t, err)
		if ondisk.DAMagic(b) == ondisk.DA3NodeMagic {
			return "node"
		}
		return "leaf"
	}
	return "unknown"
}

// atCheckList compares ListXattrs with the kernel, mapping stored ACLs to
// the system.posix_acl_* names and format Linux shows next to them.
func atCheckList(t *testing.T, fsys *xfs.FS, ip *xfs.Inode, want map[string][]byte) []xfs.Xattr {
	xs, err := fsys.ListXattrs(ip)
	dtMust(t, err)
	got := map[string][]byte{}
	for _, x := range xs {
		name := x.FullName()
		if _, dup := got[name]; dup {
			t.Errorf("duplicate %s", name)
		}
		got[name] = x.Value
		if lin, ok := ondisk.LinuxACLName(x.Namespace, x.Name); ok {
			ents, err := ondisk.DecodeXFSACL(x.Value)
			dtMust(t, err)
			got[lin] = ondisk.PosixACLXattr(ents)
		}
	}
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if g, ok := got[k]; !ok {
			t.Errorf("%q missing", k)
		} else if !bytes.Equal(g, want[k]) {
			t.Errorf("%q: %d bytes, kernel %d bytes, differ", k, len(g), len(want[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%q not shown by the kernel", k)
		}
	}
	// Streaming stops on the callback's error.
	stop := errors.New("stop")
	if len(xs) > 0 {
		if err := fsys.WalkXattrs(ip, func(xfs.Xattr) error { return stop }); err != stop {
			t.Errorf("WalkXattrs returned %v, want the callback's error", err)
		}
	}
	return xs
}

// atCheckGet looks every attribute up through the hash index and checks
// that misses, including same-name lookups in other namespaces, fail with
// ENODATA.
func atCheckGet(t *testing.T, fsys *xfs.FS, ip *xfs.Inode, xs []xfs.Xattr, form string, collide bool) {
	maxBlocks := 0
	for i, x := range xs {
		if collide && i%5 != 0 {
			continue
		}
		v, blocks, err := fsys.GetXattrWithStats(ip, x.Namespace, x.Name)
		if err != nil {
			t.Fatalf("GetXattr(%s): %v", x.FullName(), err)
		}
		if !bytes.Equal(v, x.Value) {
			t.Errorf("GetXattr(%s) differs from ListXattrs", x.FullName())
		}
		maxBlocks = max(maxBlocks, blocks)
		other := ondisk.NSTrusted
		if x.Namespace == ondisk.NSTrusted {
			other = ondisk.NSSecurity
		}
		if _, err := fsys.GetXattr(ip, other, x.Name); !errors.Is(err, syscall.ENODATA) && !atHas(xs, other, x.Name) {
			t.Errorf("GetXattr(%s in %s) = %v, want ENODATA", x.Name, other, err)
		}
	}
	for _, miss := range []string{"nope", "attr_99999", strings.Repeat("m", 255)} {
		if _, err := fsys.GetXattr(ip, ondisk.NSUser, []byte(miss)); !errors.Is(err, xfs.ErrNoXattr) {
			t.Errorf("GetXattr(user.%s) = %v, want ENODATA", miss, err)
		}
	}
	limit := map[string]int{"none": 0, "local": 0, "leaf": 1, "node": 4}[form]
	if collide {
		limit = 200 // the whole 2048-entry hash run may be scanned (137 1 KiB leaves)
	}
	if maxBlocks > limit {
		t.Errorf("a lookup in this %s attr fork read %d blocks (limit %d)", form, maxBlocks, limit)
	}
	t.Logf("GetXattr: at most %d leaf/node blocks", maxBlocks)
}

func atHas(xs []xfs.Xattr, ns ondisk.AttrNamespace, name []byte) bool {
	for _, x := range xs {
		if x.Namespace == ns && bytes.Equal(x.Name, name) {
			return true
		}
	}
	return false
}

// Damaged attribute blocks give located CorruptErrors from ListXattrs and
// GetXattr: leaf header and entry fields, and remote value block headers
// (offset, owner, CRC).
func TestXattrCorruption(t *testing.T) {
	oracle.Require(t, oracle.Attr)
	var ino uint64
	fx := dtBuild(t, nil, nil, func(mnt string) {
		p := filepath.Join(mnt, "f")
		dtTouch(t, mnt, []string{"f"})
		atSet(t, p, "user.big", atRand(1, 10000))
		for i := 0; i < 10; i++ {
			atSet(t, p, fmt.Sprintf("user.s%d", i), []byte("v"))
		}
		ino = dtStatIno(t, p)
	})
	w, err := os.OpenFile(fx.img, os.O_RDWR, 0)
	dtMust(t, err)
	defer w.Close()
	ip, err := fx.fs.Inode(ino)
	dtMust(t, err)
	ext, err := fx.fs.Extents(ip, true)
	dtMust(t, err)
	bs := int(fx.fs.SB.BlockSize)
	at := func(lblk uint64) int64 {
		for _, e := range ext {
			if lblk >= e.Offset && lblk < e.End() {
				return int64(fx.fs.SB.FSBToDaddr(e.StartBlock+lblk-e.Offset)) * 512
			}
		}
		t.Fatalf("attr block %d unmapped", lblk)
		return 0
	}
	leaf, err := fx.fs.ReadFSB(ext[0].StartBlock, 1)
	dtMust(t, err)
	l, err := ondisk.DecodeAttr3Leaf(leaf)
	dtMust(t, err)
	var rblk uint64
	for _, e := range l.Entries {
		if !e.IsLocal() {
			rblk = uint64(e.ValueBlk)
		}
	}
	if rblk == 0 {
		t.Fatal("no remote value")
	}
	cases := []struct {
		name   string
		lblk   uint64
		off    int
		crcOff int
	}{
		{"leaf magic", 0, 8, ondisk.DA3CRCOff},
		{"leaf owner", 0, 55, ondisk.DA3CRCOff},
		{"leaf entry hash", 0, ondisk.Attr3LeafHdrSize, ondisk.DA3CRCOff},
		{"leaf usedbytes", 0, 59, ondisk.DA3CRCOff},
		{"leaf crc", 0, 200, -1},
		{"remote offset", rblk + 1, 7, ondisk.Attr3RmtCRCOff},
		{"remote owner", rblk, 39, ondisk.Attr3RmtCRCOff},
		{"remote crc", rblk + 2, 100, -1},
		{"remote magic", rblk, 0, ondisk.Attr3RmtCRCOff},
	}
	for _, c := range cases {
		pos := at(c.lblk)
		orig := make([]byte, bs)
		_, err := w.ReadAt(orig, pos)
		dtMust(t, err)
		bad := append([]byte(nil), orig...)
		bad[c.off] ^= 0x10
		if c.crcOff >= 0 {
			ondisk.SetCRC(bad, c.crcOff)
		}
		_, err = w.WriteAt(bad, pos)
		dtMust(t, err)
		for _, op := range []string{"list", "get"} {
			var err error
			if op == "list" {
				_, err = fx.fs.ListXattrs(ip)
			} else {
				_, err = fx.fs.GetXattr(ip, ondisk.NSUser, []byte("big"))
			}
			var ce *ondisk.CorruptError
			if !errors.As(err, &ce) {
				t.Errorf("%s: %s: got %v, want a CorruptError", c.name, op, err)
			} else if !strings.Contains(ce.Where, fmt.Sprintf("inode %d attr block", ino)) {
				t.Errorf("%s: %s: %q does not locate the block", c.name, op, err)
			}
		}
		_, err = w.WriteAt(orig, pos)
		dtMust(t, err)
	}
	if _, err := fx.fs.ListXattrs(ip); err != nil {
		t.Fatalf("after restoring: %v", err)
	}
}
