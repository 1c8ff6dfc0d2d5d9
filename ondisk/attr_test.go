package ondisk_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// dxGetfattr returns what `getfattr -d -m - -e hex` shows for path:
// full name -> value.
func dxGetfattr(t *testing.T, path string) map[string][]byte {
	t.Helper()
	oracle.Require(t, oracle.Attr)
	out := oracle.Run(t, "getfattr", "--absolute-names", "-d", "-m", "-", "-e", "hex", path)
	m := map[string][]byte{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(strings.TrimPrefix(v, "0x"))
		if err != nil {
			t.Fatalf("getfattr value %q: %v", v, err)
		}
		m[k] = b
	}
	return m
}

func dxSetxattr(t *testing.T, path, name string, value []byte) {
	t.Helper()
	if err := syscall.Setxattr(path, name, value, 0); err != nil {
		t.Fatalf("setxattr %s %s (%d bytes): %v", path, name, len(value), err)
	}
}

func dxRandBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// dxACL is a Linux-format access ACL granting uid 1000 read.
func dxACL() []byte {
	return ondisk.PosixACLXattr([]ondisk.ACLEntry{
		{Tag: ondisk.ACLUserObj, Perm: 6}, {Tag: ondisk.ACLUser, Perm: 4, ID: 1000},
		{Tag: ondisk.ACLGroupObj, Perm: 4}, {Tag: ondisk.ACLGroup, Perm: 5, ID: 2000},
		{Tag: ondisk.ACLMask, Perm: 5}, {Tag: ondisk.ACLOther, Perm: 0}})
}

// dxFillAttrs creates files with every attribute fork form: shortform in
// three namespaces, one leaf block, a node tree, remote values of 16 KiB
// and 64 KiB, and POSIX ACLs; it returns file name -> inode and the
// kernel's view of each file's attributes.
func dxFillAttrs(t *testing.T, mnt string) (map[string]uint64, map[string]map[string][]byte) {
	files := map[string]func(p string){
		"sf": func(p string) {
			dxSetxattr(t, p, "user.a", []byte("hello"))
			dxSetxattr(t, p, "trusted.t", []byte{1, 2, 3})
			dxSetxattr(t, p, "security.s", []byte("sec"))
			dxSetxattr(t, p, "user.empty", nil)
		},
		"leaf": func(p string) {
			for i := 0; i < 30; i++ {
				dxSetxattr(t, p, fmt.Sprintf("user.attr_%d", i), []byte(fmt.Sprintf("value_%d", i)))
			}
			dxSetxattr(t, p, "trusted.root_attr", []byte("r"))
		},
		"node": func(p string) {
			for i := 0; i < 2000; i++ {
				dxSetxattr(t, p, fmt.Sprintf("user.a_longer_attribute_name_%d", i), dxRandBytes(uint64(i), i%50))
			}
			for i := 0; i < 2000; i += 3 {
				syscall.Removexattr(p, fmt.Sprintf("user.a_longer_attribute_name_%d", i))
			}
		},
		"remote": func(p string) {
			dxSetxattr(t, p, "user.big16k", dxRandBytes(16, 16384))
			dxSetxattr(t, p, "user.big64k", dxRandBytes(64, 65536))
			dxSetxattr(t, p, "trusted.mid", dxRandBytes(5, 3000))
			dxSetxattr(t, p, "user.small", []byte("x"))
		},
		"acl": func(p string) {
			dxSetxattr(t, p, "system.posix_acl_access", dxACL())
			dxSetxattr(t, p, "system.posix_acl_default", dxACL())
		},
	}
	inos := map[string]uint64{}
	kern := map[string]map[string][]byte{}
	for name, fill := range files {
		p := filepath.Join(mnt, name)
		if name == "acl" {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fill(p)
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		inos[name] = st.Ino
		kern[name] = dxGetfattr(t, p)
	}
	return inos, kern
}

// dxAttrFull names an attribute the way getfattr shows it.
func dxAttrFull(flags uint8, name []byte) string {
	return ondisk.LinuxXattrName(ondisk.AttrNamespaceOf(flags), name)
}

// Decodes and verifies every attribute structure of kernel-made files
// (shortform, leaf, node, remote values, ACLs), compares leaf and node
// blocks with xfs_db, the attributes with getfattr, and re-encodes blocks.
func TestAttrFormsAgainstKernel(t *testing.T) {
	geoms := []struct {
		name string
		opts []string
	}{
		{"4k", nil},
		{"1k-blocks", []string{"-b", "size=1024"}},
		{"64k-blocks", []string{"-b", "size=65536"}},
	}
	for _, gm := range geoms {
		t.Run(gm.name, func(t *testing.T) {
			oracle.Require(t, oracle.Attr)
			var inos map[string]uint64
			var kern map[string]map[string][]byte
			im := dxBuild(t, gm.opts, func(mnt string) { inos, kern = dxFillAttrs(t, mnt) })
			seen := map[string]bool{}
			for name, ino := range inos {
				t.Run(name, func(t *testing.T) {
					got := dxDecodeAttrs(t, im, ino, seen)
					t.Logf("%s: %d attributes, kernel %d", name, len(got), len(kern[name]))
					dxCompareAttrs(t, got, kern[name])
				})
			}
			want := []string{"shortform", "leaf", "node", "remote"}
			if gm.name == "64k-blocks" {
				want = []string{"shortform", "leaf", "remote"}
			}
			for _, w := range want {
				if !seen[w] {
					t.Errorf("no %s attribute structure exercised (saw %v)", w, seen)
				}
			}
		})
	}
}

// dxDecodeAttrs reads all attributes of an inode with the ondisk decoders
// only and returns Linux name -> value.
func dxDecodeAttrs(t *testing.T, im *dxImg, ino uint64, seen map[string]bool) map[string][]byte {
	sb := im.sb
	uuid := sb.MetaUUIDOrUUID()
	di, _, afork := im.forks(t, ino)
	where := fmt.Sprintf("inode %d", ino)
	got := map[string][]byte{}
	add := func(flags uint8, name, value []byte) {
		full := dxAttrFull(flags, name)
		if _, dup := got[full]; dup {
			t.Errorf("duplicate attribute %s", full)
		}
		got[full] = append([]byte(nil), value...)
	}
	switch di.AFormat {
	case ondisk.FmtLocal:
		seen["shortform"] = true
		sf, err := ondisk.VerifyAttrSF(afork, where)
		if err != nil {
			t.Fatal(err)
		}
		m := dxParse(oracle.DB(t, im.path, []string{"-r"}, fmt.Sprintf("inode %d", ino), "p a"))
		dxCheck(t, m, "a.sfattr.hdr.totsize", uint64(sf.TotSize), "sf")
		dxCheck(t, m, "a.sfattr.hdr.count", uint64(sf.Count), "sf")
		for i, e := range sf.Entries {
			p := fmt.Sprintf("a.sfattr.list[%d].", i)
			dxCheck(t, m, p+"namelen", uint64(len(e.Name)), "sf")
			dxCheck(t, m, p+"valuelen", uint64(len(e.Value)), "sf")
			dxCheck(t, m, p+"root", uint64(e.Flags&ondisk.AttrRoot)>>1, "sf")
			dxCheck(t, m, p+"secure", uint64(e.Flags&ondisk.AttrSecure)>>2, "sf")
			dxCheckName(t, m, p+"name", e.Name, "sf")
			add(e.Flags, e.Name, e.Value)
		}
		out := make([]byte, len(afork))
		if n, err := sf.Encode(out); err != nil || !bytes.Equal(out[:n], afork[:sf.TotSize]) {
			t.Errorf("shortform attr re-encode differs (err %v)", err)
		}
	case ondisk.FmtExtents, ondisk.FmtBtree:
		ext := im.bmap(t, ino, true)

		// Walk the da-tree from the root at block 0 down the leftmost path,
		// then the leaf chain, checking every block against xfs_db.
		var leaves []uint64
		level := -1
		for blk := uint64(0); ; {
			buf, daddr := im.readLogical(t, ext, blk, 1)
			m := im.dbPrints(t, ino, true, []uint64{blk})[0]
			ctx := fmt.Sprintf("attr block %d", blk)
			if ondisk.DAMagic(buf) != ondisk.DA3NodeMagic {
				break
			}
			seen["node"] = true
			n, err := ondisk.VerifyDA3Node(buf, uuid, daddr, ino, where)
			if err != nil {
				t.Fatal(err)
			}
			if level >= 0 && int(n.Level) != level-1 {
				t.Fatalf("%s: level %d under level %d", ctx, n.Level, level)
			}
			level = int(n.Level)
			dxCheck(t, m, "hdr.count", uint64(n.Count), ctx)
			dxCheck(t, m, "hdr.level", uint64(n.Level), ctx)
			for k, e := range n.Entries {
				dxCheck(t, m, fmt.Sprintf("btree[%d].hashval", k), uint64(e.Hashval), ctx)
				dxCheck(t, m, fmt.Sprintf("btree[%d].before", k), uint64(e.Before), ctx)
			}
			dxRoundTrip(t, ctx, buf, [][2]int{{ondisk.DA3NodeHdrSize + 8*len(n.Entries), len(buf)}}, func(o []byte) error { return n.Encode(o) })
			blk = uint64(n.Entries[0].Before)
		}
		// The leftmost leaf is where the descent stopped; follow forw links.
		first := uint64(0)
		if seen["node"] {
			first = dxLeftmostLeaf(t, im, ext, ino)
		}
		for blk, prev := first, uint64(0); ; {
			leaves = append(leaves, blk)
			buf, daddr := im.readLogical(t, ext, blk, 1)
			seen["leaf"] = true
			l, err := ondisk.VerifyAttr3Leaf(buf, uuid, daddr, ino, fmt.Sprintf("%s attr block %d", where, blk))
			if err != nil {
				t.Fatal(err)
			}
			if uint64(l.Hdr.Info.Back) != prev {
				t.Errorf("attr leaf %d: back link %d, expected %d", blk, l.Hdr.Info.Back, prev)
			}
			for _, e := range l.Entries {
				if e.Flags&ondisk.AttrIncomplete != 0 {
					continue
				}
				if e.IsLocal() {
					add(e.Flags, e.Name, e.Value)
					continue
				}
				seen["remote"] = true
				add(e.Flags, e.Name, dxReadRemote(t, im, ext, ino, e.ValueBlk, int(e.ValueLen)))
			}
			dxRoundTrip(t, fmt.Sprintf("attr leaf %d", blk), buf, dxMaskAttrLeaf(l, len(buf)), func(o []byte) error { return l.Encode(o) })
			if l.Hdr.Info.Forw == 0 {
				break
			}
			prev, blk = blk, uint64(l.Hdr.Info.Forw)
		}
		// Compare leaf headers and entries with xfs_db.
		for i, m := range im.dbPrints(t, ino, true, leaves) {
			buf, _ := im.readLogical(t, ext, leaves[i], 1)
			l, _ := ondisk.DecodeAttr3Leaf(buf)
			ctx := fmt.Sprintf("attr leaf %d", leaves[i])
			dxCheck(t, m, "hdr.count", uint64(l.Hdr.Count), ctx)
			dxCheck(t, m, "hdr.usedbytes", uint64(l.Hdr.UsedBytes), ctx)
			if l.Hdr.FirstUsed < 0x10000 {
				dxCheck(t, m, "hdr.firstused", uint64(l.Hdr.FirstUsed), ctx)
			}
			dxCheck(t, m, "hdr.holes", uint64(l.Hdr.Holes), ctx)
			for k, fm := range l.Hdr.FreeMap {
				dxCheck(t, m, fmt.Sprintf("hdr.freemap[%d].base", k), uint64(fm.Base), ctx)
				dxCheck(t, m, fmt.Sprintf("hdr.freemap[%d].size", k), uint64(fm.Size), ctx)
			}
			for k, e := range l.Entries {
				p := fmt.Sprintf("entries[%d].", k)
				dxCheck(t, m, p+"hashval", uint64(e.Hashval), ctx)
				dxCheck(t, m, p+"nameidx", uint64(e.NameIdx), ctx)
				dxCheck(t, m, p+"local", uint64(e.Flags&ondisk.AttrLocal), ctx)
				dxCheck(t, m, p+"root", uint64(e.Flags&ondisk.AttrRoot)>>1, ctx)
				dxCheck(t, m, p+"secure", uint64(e.Flags&ondisk.AttrSecure)>>2, ctx)
				dxCheck(t, m, p+"incomplete", uint64(e.Flags&ondisk.AttrIncomplete)>>7, ctx)
			}
		}

	default:
		if di.ForkOff != 0 {
			t.Fatalf("unexpected attr fork format %d", di.AFormat)
		}
	}
	return got
}

// dxLeftmostLeaf descends first children from the root node.
func dxLeftmostLeaf(t *testing.T, im *dxImg, ext []ondisk.Extent, ino uint64) uint64 {
	blk := uint64(0)
	for {
		buf, _ := im.readLogical(t, ext, blk, 1)
		if ondisk.DAMagic(buf) != ondisk.DA3NodeMagic {
			return blk
		}
		n, err := ondisk.DecodeDA3Node(buf)
		if err != nil || len(n.Entries) == 0 {
			t.Fatalf("node %d: %v", blk, err)
		}
		blk = uint64(n.Entries[0].Before)
	}
}

// dxReadRemote reassembles a remote value block by block, verifying each
// block's header and checking offsets and byte counts, and compares the
// first block's header with xfs_db.
func dxReadRemote(t *testing.T, im *dxImg, ext []ondisk.Extent, ino uint64, vblk uint32, vlen int) []byte {
	t.Helper()
	bs := int(im.sb.BlockSize)
	nblk := ondisk.AttrRmtBlocks(bs, vlen)
	var val []byte
	for i := 0; i < nblk; i++ {
		buf, daddr := im.readLogical(t, ext, uint64(vblk)+uint64(i), 1)
		h, payload, err := ondisk.VerifyAttr3Rmt(buf, im.sb.MetaUUIDOrUUID(), daddr, ino, fmt.Sprintf("inode %d attr block %d", ino, int(vblk)+i))
		if err != nil {
			t.Fatal(err)
		}
		want := min(vlen-len(val), bs-ondisk.Attr3RmtHdrSize)
		if int(h.Offset) != len(val) || int(h.Bytes) != want {
			t.Fatalf("remote block %d: offset %d bytes %d, expected %d and %d", i, h.Offset, h.Bytes, len(val), want)
		}
		if i == 0 {
			m := im.dbPrints(t, ino, true, []uint64{uint64(vblk)})[0]
			dxCheck(t, m, "hdr.magic", uint64(h.Magic), "rmt")
			dxCheck(t, m, "hdr.bytes", uint64(h.Bytes), "rmt")
			dxCheck(t, m, "hdr.bno", h.Blkno, "rmt")
			dxCheck(t, m, "hdr.owner", h.Owner, "rmt")
		}
		// Round trip the block (bytes past the payload are don't-care).
		out := make([]byte, len(buf))
		h2 := h
		if err := ondisk.EncodeAttr3Rmt(out, &h2, payload); err != nil {
			t.Fatal(err)
		}
		ref := append([]byte(nil), buf...)
		clear(ref[ondisk.Attr3RmtHdrSize+len(payload):])
		ondisk.SetCRC(ref, ondisk.Attr3RmtCRCOff)
		if !bytes.Equal(out, ref) {
			t.Errorf("remote block %d re-encodes differently", i)
		}
		val = append(val, payload...)
	}
	return val
}

// dxMaskAttrLeaf lists the don't-care bytes of a leaf: everything after
// the entry table that no name struct covers, and the alignment padding
// at the end of each name struct.
func dxMaskAttrLeaf(l *ondisk.Attr3Leaf, n int) [][2]int {
	used := make([]bool, n)
	for _, e := range l.Entries {
		sz := 9 + len(e.Name)
		if e.IsLocal() {
			sz = 3 + len(e.Name) + len(e.Value)
		}
		for i := int(e.NameIdx); i < int(e.NameIdx)+sz && i < n; i++ {
			used[i] = true
		}
	}
	var r [][2]int
	for i := ondisk.Attr3LeafHdrSize + 8*len(l.Entries); i < n; i++ {
		if !used[i] {
			r = append(r, [2]int{i, i + 1})
		}
	}
	return r
}

// dxCompareAttrs compares decoded attributes with getfattr, mapping the
// stored ACLs to the system.posix_acl_* entries Linux adds.
func dxCompareAttrs(t *testing.T, got, kern map[string][]byte) {
	t.Helper()
	for _, raw := range []string{ondisk.SGIACLFile, ondisk.SGIACLDefault} {
		v, ok := got["trusted."+raw]
		if !ok {
			continue
		}
		ents, err := ondisk.DecodeXFSACL(v)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := ondisk.LinuxACLName(ondisk.NSTrusted, []byte(raw))
		got[name] = ondisk.PosixACLXattr(ents)
		if back := ondisk.EncodeXFSACL(ents); !bytes.Equal(back, v) {
			t.Errorf("%s: XFS ACL re-encodes differently", raw)
		}
		if p, err := ondisk.DecodePosixACLXattr(got[name]); err != nil || len(p) != len(ents) {
			t.Errorf("%s: Linux ACL decode: %v", raw, err)
		}
	}
	var names []string
	for k := range kern {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		g, ok := got[k]
		if !ok {
			t.Errorf("attribute %s missing", k)
		} else if !bytes.Equal(g, kern[k]) {
			t.Errorf("attribute %s: %d bytes differ from getfattr's %d bytes", k, len(g), len(kern[k]))
		}
	}
	for k := range got {
		if _, ok := kern[k]; !ok {
			t.Errorf("attribute %s not shown by getfattr", k)
		}
	}
	if len(kern) == 0 {
		t.Error("getfattr showed nothing")
	}
}
