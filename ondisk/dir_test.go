package ondisk_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// --- helpers shared by the dir/attr tests (dx prefix) ---

// dxImg is an image made by mkfs.xfs and filled through a kernel mount,
// read back here with plain file reads.
type dxImg struct {
	path string
	sb   *ondisk.Superblock
	f    *os.File
}

// dxBuild formats an image, mounts it, runs fill on the mount point and
// unmounts it before returning.
func dxBuild(t *testing.T, mkfsOpts []string, fill func(mnt string)) *dxImg {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "600m", mkfsOpts...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	fill(mnt)
	oracle.Unmount(t, mnt)
	if _, code := oracle.RunStatus("mountpoint", "-q", mnt); code == 0 {
		t.Fatalf("%s still mounted", mnt)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	im := &dxImg{path: img, f: f}
	sect := im.read(t, 0, 512)
	if im.sb, err = ondisk.DecodeSuperblock(sect); err != nil {
		t.Fatal(err)
	}
	return im
}

func (im *dxImg) read(t *testing.T, daddr uint64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := im.f.ReadAt(b, int64(daddr)*512); err != nil {
		t.Fatal(err)
	}
	return b
}

var dxBmapRE = regexp.MustCompile(`(?m)^(data|attr) offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)`)

// bmap lists a fork's extents as xfs_db sees them.
func (im *dxImg) bmap(t *testing.T, ino uint64, attr bool) []ondisk.Extent {
	t.Helper()
	cmd := "bmap"
	if attr {
		cmd = "bmap -a"
	}
	out := oracle.DB(t, im.path, []string{"-r"}, fmt.Sprintf("inode %d", ino), cmd)
	var ext []ondisk.Extent
	for _, m := range dxBmapRE.FindAllStringSubmatch(out, -1) {
		off, _ := strconv.ParseUint(m[2], 10, 64)
		sb, _ := strconv.ParseUint(m[3], 10, 64)
		n, _ := strconv.ParseUint(m[4], 10, 64)
		ext = append(ext, ondisk.Extent{Offset: off, StartBlock: sb, Length: n, Unwritten: m[5] == "1"})
	}
	return ext
}

// readLogical reads nblk filesystem blocks of a fork starting at logical
// block lblk (mapping each block separately, as discontiguous directory
// blocks need) and returns them with the daddr of the first block.
func (im *dxImg) readLogical(t *testing.T, ext []ondisk.Extent, lblk uint64, nblk int) ([]byte, uint64) {
	t.Helper()
	bs := int(im.sb.BlockSize)
	buf := make([]byte, 0, nblk*bs)
	var first uint64
	for i := 0; i < nblk; i++ {
		l := lblk + uint64(i)
		found := false
		for _, e := range ext {
			if l >= e.Offset && l < e.End() {
				d := im.sb.FSBToDaddr(e.StartBlock + l - e.Offset)
				if i == 0 {
					first = d
				}
				buf = append(buf, im.read(t, d, bs)...)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("logical block %d is not mapped", l)
		}
	}
	return buf, first
}

// forks returns the decoded inode and its data and attr fork bytes.
func (im *dxImg) forks(t *testing.T, ino uint64) (*ondisk.Dinode, []byte, []byte) {
	t.Helper()
	daddr, off := im.sb.InoToDaddr(ino)
	raw := im.read(t, daddr, int(im.sb.BlockSize))[off : off+int(im.sb.InodeSize)]
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		t.Fatal(err)
	}
	data, attr, err := d.Forks(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d, data, attr
}

const dxSep = "xfskit-separator"

// dbPrints runs one xfs_db session that prints each listed block of an
// inode's fork (`dblock`/`ablock` then `p`) and returns one field map per
// block.
func (im *dxImg) dbPrints(t *testing.T, ino uint64, attr bool, lblks []uint64) []map[string]string {
	t.Helper()
	cmds := []string{fmt.Sprintf("inode %d", ino)}
	sel := "dblock"
	if attr {
		sel = "ablock"
	}
	for _, l := range lblks {
		cmds = append(cmds, fmt.Sprintf("%s %d", sel, l), "p", "hash "+dxSep)
	}
	out := oracle.DB(t, im.path, []string{"-r"}, cmds...)
	sep := fmt.Sprintf("0x%x", ondisk.DAHash([]byte(dxSep)))
	var res []map[string]string
	var cur []string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == sep {
			res = append(res, dxParse(strings.Join(cur, "\n")))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	if len(res) != len(lblks) {
		t.Fatalf("xfs_db printed %d blocks for %d requested", len(res), len(lblks))
	}
	return res
}

var dxRowRE = regexp.MustCompile(`^(\d+):\[(.*)\]$`)
var dxPairRE = regexp.MustCompile(`(\d+):(\S+)`)

// dxParse turns xfs_db print output into "field" -> "value"; array tables
// ("x[0-2] = [a,b]" then "0:[1,2]" rows) become "x[0].a" etc., and
// "x[0-3] = 0:v 2:w" lists become "x[0]", "x[2]".
func dxParse(out string) map[string]string {
	m := map[string]string{}
	var tbl string
	var cols []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, " = "); ok {
			tbl, cols = "", nil
			base, _, isArr := strings.Cut(k, "[")
			switch {
			case isArr && strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]"):
				tbl, cols = base, strings.Split(strings.Trim(v, "[]"), ",")
			case isArr && dxPairRE.MatchString(v) && !strings.HasPrefix(v, "\""):
				for _, p := range dxPairRE.FindAllStringSubmatch(v, -1) {
					m[base+"["+p[1]+"]"] = p[2]
				}
			default:
				m[k] = v
			}
			continue
		}
		if r := dxRowRE.FindStringSubmatch(line); r != nil && tbl != "" {
			for i, v := range strings.Split(r[2], ",") {
				if i < len(cols) {
					m[fmt.Sprintf("%s[%s].%s", tbl, r[1], cols[i])] = v
				}
			}
		}
	}
	return m
}

// dxCheck compares a numeric xfs_db field; missing fields compare as 0
// (xfs_db leaves zero list members out).
func dxCheck(t *testing.T, m map[string]string, field string, got uint64, ctx string) {
	t.Helper()
	v, ok := m[field]
	if !ok {
		v = "0"
	}
	v = strings.Fields(v)[0]
	want, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		t.Fatalf("%s: xfs_db field %s = %q: %v", ctx, field, v, err)
	}
	if got != want {
		t.Errorf("%s: %s = %d (0x%x), xfs_db says %d (0x%x)", ctx, field, got, got, want, want)
	}
}

// dxCheckName compares a printable name with xfs_db's quoted string.
func dxCheckName(t *testing.T, m map[string]string, field string, name []byte, ctx string) {
	t.Helper()
	for _, c := range name {
		if c < ' ' || c > '~' || c == '\\' || c == '"' {
			return // xfs_db escapes these; kernel listings cover them
		}
	}
	if want := `"` + string(name) + `"`; m[field] != want {
		t.Errorf("%s: %s = %q, xfs_db says %s", ctx, field, name, m[field])
	}
}

func dxMkFiles(t *testing.T, dir string, names []string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func dxNames(prefix string, n, width int) []string {
	out := make([]string, n)
	for i := range out {
		s := fmt.Sprintf("%s%d_", prefix, i)
		if len(s) < width {
			s += strings.Repeat("x", width-len(s))
		}
		out[i] = s
	}
	return out
}

// dxKernelEntry is what the kernel reports for a directory entry.
type dxKernelEntry struct {
	ino   uint64
	ftype uint8
}

// dxListKernel lists dir through the mount (names, inode numbers, types),
// including "." and "..".
func dxListKernel(t *testing.T, dir string) map[string]dxKernelEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]dxKernelEntry{}
	for _, n := range append([]string{".", ".."}, func() []string {
		var s []string
		for _, e := range ents {
			s = append(s, e.Name())
		}
		return s
	}()...) {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, n), &st); err != nil {
			t.Fatal(err)
		}
		m[n] = dxKernelEntry{st.Ino, ondisk.DirFTypeFromMode(uint16(st.Mode))}
	}
	return m
}

// --- tests ---

type dxDir struct {
	name string
	ino  uint64
	want map[string]dxKernelEntry
}

// dxFillDirs makes every directory form: shortform (all file types),
// block, leaf and node directories with removals (stale leaf entries and
// free regions), and long and non-ASCII names.
func dxFillDirs(t *testing.T, mnt string, dirs *[]dxDir) {
	sf := filepath.Join(mnt, "sf")
	dxMkFiles(t, sf, []string{"reg"})
	os.Mkdir(filepath.Join(sf, "sub"), 0o755)
	os.Symlink("reg", filepath.Join(sf, "sym"))
	syscall.Mkfifo(filepath.Join(sf, "fifo"), 0o644)
	syscall.Mknod(filepath.Join(sf, "chr"), syscall.S_IFCHR|0o644, 1<<8|3)
	syscall.Mknod(filepath.Join(sf, "blk"), syscall.S_IFBLK|0o644, 7<<8|0)
	syscall.Mknod(filepath.Join(sf, "sock"), syscall.S_IFSOCK|0o644, 0)
	dxMkFiles(t, filepath.Join(mnt, "block"), dxNames("f", 60, 0))
	dxMkFiles(t, filepath.Join(mnt, "leaf"), dxNames("file_name_", 300, 0))
	dxMkFiles(t, filepath.Join(mnt, "node"), dxNames("a_rather_longer_file_name_", 2500, 40))
	var odd []string
	for i := 0; i < 40; i++ {
		odd = append(odd, strings.Repeat(string(rune('a'+i%26)), 200+i%56))
		odd = append(odd, fmt.Sprintf("ünïcødé-名前-%d-\x01\x7f\xff", i))
	}
	dxMkFiles(t, filepath.Join(mnt, "odd"), odd)
	for _, d := range []string{"leaf", "node"} {
		for i, n := range dxNames(map[string]string{"leaf": "file_name_", "node": "a_rather_longer_file_name_"}[d], map[string]int{"leaf": 300, "node": 2500}[d], map[string]int{"leaf": 0, "node": 40}[d]) {
			if i%5 == 2 {
				os.Remove(filepath.Join(mnt, d, n))
			}
		}
	}
	for _, d := range []string{"sf", "block", "leaf", "node", "odd"} {
		p := filepath.Join(mnt, d)
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		*dirs = append(*dirs, dxDir{d, st.Ino, dxListKernel(t, p)})
	}
}

// Decodes and verifies every block of kernel-made directories of every form
// and geometry; compares headers and entries with xfs_db's print of the
// same block, the union of entries with the kernel's listing, and
// re-encodes each block byte for byte.
func TestDirBlocksAgainstKernel(t *testing.T) {
	geoms := []struct {
		name string
		opts []string
	}{
		{"4k", nil},
		{"1k-blocks", []string{"-b", "size=1024"}},
		{"64k-dirblocks", []string{"-n", "size=65536"}},
	}
	for _, gm := range geoms {
		t.Run(gm.name, func(t *testing.T) {
			var dirs []dxDir
			im := dxBuild(t, gm.opts, func(mnt string) { dxFillDirs(t, mnt, &dirs) })
			seen := map[string]bool{}
			for _, d := range dirs {
				t.Run(d.name, func(t *testing.T) { dxCheckDir(t, im, d, seen) })
			}
			want := []string{"shortform", "XDB3", "XDD3", "leaf1", "leafn", "node", "XDF3"}
			if gm.name == "64k-dirblocks" {
				want = []string{"shortform", "XDB3"}
			}
			for _, w := range want {
				if !seen[w] {
					t.Errorf("no %s structure was exercised (saw %v)", w, seen)
				}
			}
		})
	}
}

func dxCheckDir(t *testing.T, im *dxImg, d dxDir, seen map[string]bool) {
	sb := im.sb
	g := ondisk.NewDirGeo(sb)
	di, data, _ := im.forks(t, d.ino)
	got := map[string]dxKernelEntry{}
	add := func(name []byte, ino uint64, ft uint8) {
		if _, dup := got[string(name)]; dup {
			t.Errorf("duplicate entry %q", name)
		}
		got[string(name)] = dxKernelEntry{ino, ft}
	}
	where := fmt.Sprintf("inode %d", d.ino)
	if di.Format == ondisk.FmtLocal {
		seen["shortform"] = true
		sf, err := ondisk.VerifyDirSF(data[:di.Size], sb, where)
		if err != nil {
			t.Fatal(err)
		}
		m := dxParse(oracle.DB(t, im.path, []string{"-r"}, fmt.Sprintf("inode %d", d.ino), "p u3"))
		dxCheck(t, m, "u3.sfdir3.hdr.count", uint64(sf.Count), "sf")
		dxCheck(t, m, "u3.sfdir3.hdr.i8count", uint64(sf.I8Count), "sf")
		dxCheck(t, m, "u3.sfdir3.hdr.parent.i4", sf.Parent, "sf")
		for i, e := range sf.Entries {
			p := fmt.Sprintf("u3.sfdir3.list[%d].", i)
			dxCheck(t, m, p+"offset", uint64(e.Offset), "sf")
			dxCheck(t, m, p+"inumber.i4", e.Ino, "sf")
			dxCheck(t, m, p+"filetype", uint64(e.FType), "sf")
			dxCheckName(t, m, p+"name", e.Name, "sf")
			add(e.Name, e.Ino, e.FType)
		}
		add([]byte("."), d.ino, ondisk.DirFTDir)
		add([]byte(".."), sf.Parent, ondisk.DirFTDir)
		// Round trip.
		out := make([]byte, len(data))
		n, err := sf.Encode(out, g.FType)
		if err != nil || !bytes.Equal(out[:n], data[:di.Size]) {
			t.Errorf("shortform re-encode differs (err %v)", err)
		}
		dxCompare(t, d, got)
		return
	}
	ext := im.bmap(t, d.ino, false)
	// Every directory block, by its first logical filesystem block.
	var lblks []uint64
	for _, e := range ext {
		for l := e.Offset; l < e.End(); l++ {
			if l%uint64(g.FSBPerBlock()) == 0 {
				lblks = append(lblks, l)
			}
		}
	}
	prints := im.dbPrints(t, d.ino, false, lblks)
	leafDA, freeDA := g.DBToDA(g.LeafDB), g.DBToDA(g.FreeDB)
	for i, l := range lblks {
		buf, daddr := im.readLogical(t, ext, l, g.FSBPerBlock())
		ctx := fmt.Sprintf("%s block %d (daddr %d)", d.name, l, daddr)
		m := prints[i]
		bw := fmt.Sprintf("%s dir block %d", where, l)
		switch {
		case l < leafDA:
			magic := uint32(ondisk.Dir3DataMagic)
			pfx, up := "dhdr.", "du"
			if len(ext) == 1 && ext[0].Length == uint64(g.FSBPerBlock()) {
				magic, pfx, up = ondisk.Dir3BlockMagic, "bhdr.", "bu"
			}
			db, err := ondisk.VerifyDirData(buf, magic, sb, daddr, d.ino, bw)
			if err != nil {
				t.Fatal(err)
			}
			seen[fmt.Sprintf("%c%c%c%c", magic>>24, magic>>16&0xff, magic>>8&0xff, magic&0xff)] = true
			dxCheck(t, m, pfx+"hdr.magic", uint64(db.Hdr.Magic), ctx)
			dxCheck(t, m, pfx+"hdr.bno", db.Hdr.Blkno, ctx)
			dxCheck(t, m, pfx+"hdr.owner", db.Hdr.Owner, ctx)
			for k, bf := range db.BestFree {
				dxCheck(t, m, fmt.Sprintf("%sbestfree[%d].offset", pfx, k), uint64(bf.Offset), ctx)
				dxCheck(t, m, fmt.Sprintf("%sbestfree[%d].length", pfx, k), uint64(bf.Length), ctx)
			}
			// xfs_db numbers entries and free regions together in block order.
			idx, ui := 0, 0
			for _, e := range db.Entries {
				for ui < len(db.Unused) && db.Unused[ui].Off < e.Off {
					u := db.Unused[ui]
					dxCheck(t, m, fmt.Sprintf("%s[%d].freetag", up, idx), 0xffff, ctx)
					dxCheck(t, m, fmt.Sprintf("%s[%d].length", up, idx), uint64(u.Length), ctx)
					dxCheck(t, m, fmt.Sprintf("%s[%d].tag", up, idx), uint64(u.Tag), ctx)
					idx++
					ui++
				}
				p := fmt.Sprintf("%s[%d].", up, idx)
				dxCheck(t, m, p+"inumber", e.Ino, ctx)
				dxCheck(t, m, p+"namelen", uint64(len(e.Name)), ctx)
				dxCheck(t, m, p+"filetype", uint64(e.FType), ctx)
				dxCheck(t, m, p+"tag", uint64(e.Tag), ctx)
				dxCheckName(t, m, p+"name", e.Name, ctx)
				add(e.Name, e.Ino, e.FType)
				idx++
			}
			if db.IsBlock() {
				dxCheck(t, m, "btail.count", uint64(db.Tail.Count), ctx)
				dxCheck(t, m, "btail.stale", uint64(db.Tail.Stale), ctx)
				for k, le := range db.Leaf {
					dxCheck(t, m, fmt.Sprintf("bleaf[%d].hashval", k), uint64(le.Hashval), ctx)
					dxCheck(t, m, fmt.Sprintf("bleaf[%d].address", k), uint64(le.Address), ctx)
				}
			}
			dxRoundTrip(t, ctx, buf, dxMaskData(db, len(buf)), func(out []byte) error { return db.Encode(out, g.FType) })
		case l < freeDA:
			switch ondisk.DAMagic(buf) {
			case ondisk.DA3NodeMagic:
				seen["node"] = true
				n, err := ondisk.VerifyDA3Node(buf, sb.MetaUUIDOrUUID(), daddr, d.ino, bw)
				if err != nil {
					t.Fatal(err)
				}
				dxCheck(t, m, "nhdr.info.hdr.forw", uint64(n.Info.Forw), ctx)
				dxCheck(t, m, "nhdr.info.hdr.back", uint64(n.Info.Back), ctx)
				dxCheck(t, m, "nhdr.info.bno", n.Info.Blkno, ctx)
				dxCheck(t, m, "nhdr.count", uint64(n.Count), ctx)
				dxCheck(t, m, "nhdr.level", uint64(n.Level), ctx)
				for k, e := range n.Entries {
					dxCheck(t, m, fmt.Sprintf("nbtree[%d].hashval", k), uint64(e.Hashval), ctx)
					dxCheck(t, m, fmt.Sprintf("nbtree[%d].before", k), uint64(e.Before), ctx)
					if uint64(e.Before) < leafDA || uint64(e.Before) >= freeDA {
						t.Errorf("%s: node entry %d points at block %d outside the leaf space", ctx, k, e.Before)
					}
				}
				dxRoundTrip(t, ctx, buf, [][2]int{{ondisk.DA3NodeHdrSize + len(n.Entries)*8, len(buf)}}, func(out []byte) error { return n.Encode(out) })
			case ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic:
				magic := ondisk.DAMagic(buf)
				lf, err := ondisk.VerifyDir3Leaf(buf, magic, sb, daddr, d.ino, bw)
				if err != nil {
					t.Fatal(err)
				}
				if lf.IsLeaf1() {
					seen["leaf1"] = true
					dxCheck(t, m, "ltail.bestcount", uint64(len(lf.Bests)), ctx)
					for k, b := range lf.Bests {
						dxCheck(t, m, fmt.Sprintf("lbests[%d]", k), uint64(b), ctx)
					}
				} else {
					seen["leafn"] = true
				}
				dxCheck(t, m, "lhdr.info.hdr.forw", uint64(lf.Info.Forw), ctx)
				dxCheck(t, m, "lhdr.info.hdr.back", uint64(lf.Info.Back), ctx)
				dxCheck(t, m, "lhdr.count", uint64(lf.Count), ctx)
				dxCheck(t, m, "lhdr.stale", uint64(lf.Stale), ctx)
				for k, e := range lf.Ents {
					dxCheck(t, m, fmt.Sprintf("lents[%d].hashval", k), uint64(e.Hashval), ctx)
					dxCheck(t, m, fmt.Sprintf("lents[%d].address", k), uint64(e.Address), ctx)
				}
				end := len(buf)
				if lf.IsLeaf1() {
					end -= 4 + 2*len(lf.Bests)
				}
				dxRoundTrip(t, ctx, buf, [][2]int{{ondisk.Dir3LeafHdrSize + 8*len(lf.Ents), end}}, func(out []byte) error { return lf.Encode(out) })
			default:
				t.Fatalf("%s: unexpected magic 0x%04x in the leaf space", ctx, ondisk.DAMagic(buf))
			}
		default:
			seen["XDF3"] = true
			fdb := int(g.DAToDB(l)) - int(g.FreeDB)
			fr, err := ondisk.VerifyDir3Free(buf, sb, daddr, d.ino, fdb, bw)
			if err != nil {
				t.Fatal(err)
			}
			dxCheck(t, m, "fhdr.firstdb", uint64(fr.FirstDB), ctx)
			dxCheck(t, m, "fhdr.nvalid", uint64(fr.NValid), ctx)
			dxCheck(t, m, "fhdr.nused", uint64(fr.NUsed), ctx)
			for k, b := range fr.Bests {
				dxCheck(t, m, fmt.Sprintf("fbests[%d]", k), uint64(b), ctx)
			}
			dxRoundTrip(t, ctx, buf, [][2]int{{ondisk.Dir3FreeHdrSize + 2*len(fr.Bests), len(buf)}}, func(out []byte) error { return fr.Encode(out) })
		}
	}
	dxCompare(t, d, got)
}

// dxMaskData lists the bytes of a data block that carry no information:
// the interiors of free regions and the padding inside entries, which the
// kernel never clears.
func dxMaskData(db *ondisk.DirData, n int) [][2]int {
	var r [][2]int
	for _, e := range db.Entries {
		r = append(r, [2]int{e.Off + 10 + len(e.Name), e.Off + ondisk.DirDataEntSize(len(e.Name), true) - 2})
	}
	for _, u := range db.Unused {
		r = append(r, [2]int{u.Off + 4, u.Off + int(u.Length) - 2})
	}
	return r
}

// dxRoundTrip re-encodes a block and compares it with the original, after
// zeroing the original's don't-care ranges and resealing its CRC.
func dxRoundTrip(t *testing.T, ctx string, orig []byte, mask [][2]int, enc func([]byte) error) {
	t.Helper()
	want := append([]byte(nil), orig...)
	for _, r := range mask {
		clear(want[r[0]:r[1]])
	}
	crcOff := ondisk.Dir3CRCOff
	switch ondisk.DAMagic(orig) {
	case ondisk.DA3NodeMagic, ondisk.Dir3Leaf1Magic, ondisk.Dir3LeafNMagic, ondisk.Attr3LeafMagic:
		crcOff = ondisk.DA3CRCOff
	}
	ondisk.SetCRC(want, crcOff)
	out := make([]byte, len(orig))
	for i := range out {
		out[i] = 0xa5 // Encode must overwrite everything
	}
	if err := enc(out); err != nil {
		t.Fatalf("%s: encode: %v", ctx, err)
	}
	if !bytes.Equal(out, want) {
		for i := range out {
			if out[i] != want[i] && (i < crcOff || i >= crcOff+4) {
				t.Fatalf("%s: re-encoded block differs first at byte %d (0x%02x, want 0x%02x)", ctx, i, out[i], want[i])
			}
		}
		t.Fatalf("%s: re-encoded block differs in the CRC only", ctx)
	}
}

func dxCompare(t *testing.T, d dxDir, got map[string]dxKernelEntry) {
	t.Helper()
	if len(got) != len(d.want) {
		t.Errorf("%s: decoded %d entries, kernel lists %d", d.name, len(got), len(d.want))
	}
	var names []string
	for n := range d.want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w := d.want[n]
		g, ok := got[n]
		if !ok {
			t.Errorf("%s: entry %q missing", d.name, n)
			continue
		}
		if g != w {
			t.Errorf("%s: entry %q = ino %d type %d, kernel says ino %d type %d", d.name, n, g.ino, g.ftype, w.ino, w.ftype)
		}
	}
}
