package xfs_test

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// corruptFixture is a 1 KiB-block image holding a file with a bmbt of
// height >= 3 and a two-block remote symlink, opened by the engine, with
// a writable handle to patch blocks of the image.
type corruptFixture struct {
	fs   *xfs.FS
	img  *os.File
	deep *xfs.Inode
	link *xfs.Inode
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m", "-b", "size=1024")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	f, err := os.Create(mnt + "/deep")
	inoMust(t, err)
	blk := inoRandom(11, 1024)
	for i := 0; i < 1500; i++ {
		_, err := f.WriteAt(blk, int64(2*i*1024))
		inoMust(t, err)
	}
	inoMust(t, f.Close())
	inoMust(t, os.Symlink(strings.Repeat("0123456789abcdef", 63), mnt+"/link"))
	var deepIno, linkIno uint64
	for name, p := range map[string]*uint64{"deep": &deepIno, "link": &linkIno} {
		st, err := os.Lstat(mnt + "/" + name)
		inoMust(t, err)
		*p = st.Sys().(*syscall.Stat_t).Ino
	}
	oracle.Unmount(t, mnt)
	fs, err := xfs.Open(img)
	inoMust(t, err)
	t.Cleanup(func() { fs.Close() })
	w, err := os.OpenFile(img, os.O_RDWR, 0)
	inoMust(t, err)
	t.Cleanup(func() { w.Close() })
	cf := &corruptFixture{fs: fs, img: w}
	cf.deep, err = fs.Inode(deepIno)
	inoMust(t, err)
	cf.link, err = fs.Inode(linkIno)
	inoMust(t, err)
	return cf
}

// patch rewrites the block at fsb with mut applied (resealing the CRC at
// crcOff when crcOff >= 0) and restores the original when the subtest ends.
func (cf *corruptFixture) patch(t *testing.T, fsb uint64, mut func(b []byte), crcOff int) {
	t.Helper()
	cf.patchN(t, fsb, 1, mut, crcOff)
}

// patchN is patch over n contiguous blocks sealed as one buffer.
func (cf *corruptFixture) patchN(t *testing.T, fsb uint64, n int, mut func(b []byte), crcOff int) {
	t.Helper()
	off := int64(cf.fs.SB.FSBToDaddr(fsb)) << ondisk.BBShift
	orig := make([]byte, n*int(cf.fs.SB.BlockSize))
	_, err := cf.img.ReadAt(orig, off)
	inoMust(t, err)
	b := append([]byte(nil), orig...)
	mut(b)
	if crcOff >= 0 {
		ondisk.SetCRC(b, crcOff)
	}
	_, err = cf.img.WriteAt(b, off)
	inoMust(t, err)
	t.Cleanup(func() { cf.img.WriteAt(orig, off) })
}

// patchInode rewrites inode ip's core with mut applied (CRC resealed).
func (cf *corruptFixture) patchInode(t *testing.T, ip *xfs.Inode, mut func(d *ondisk.Dinode, raw []byte)) {
	t.Helper()
	daddr, o := cf.fs.SB.InoToDaddr(ip.Ino)
	off := int64(daddr)<<ondisk.BBShift + int64(o)
	raw := append([]byte(nil), ip.Raw...)
	d, err := ondisk.DecodeDinode(raw)
	inoMust(t, err)
	mut(d, raw)
	d.Encode(raw)
	_, err = cf.img.WriteAt(raw, off)
	inoMust(t, err)
	t.Cleanup(func() { cf.img.WriteAt(ip.Raw, off) })
}

// path returns the blocks from the root's first child down to the
// leftmost leaf (index 0 is the highest level).
func (cf *corruptFixture) path(t *testing.T) []uint64 {
	t.Helper()
	root, err := ondisk.DecodeBmdr(cf.deep.DataFork, "deep")
	inoMust(t, err)
	if root.Level < 2 {
		t.Fatalf("deep: root level %d, want >= 2", root.Level)
	}
	p := []uint64{root.Ptrs[0]}
	for lvl := int(root.Level) - 1; lvl > 0; lvl-- {
		b, err := cf.fs.ReadFSB(p[len(p)-1], 1)
		inoMust(t, err)
		p = append(p, ondisk.BmbtGeom.Ptr(b, ondisk.LongHdrSize, 0))
	}
	return p
}

func wantCorrupt(t *testing.T, err error, ino uint64, substr string) {
	t.Helper()
	var ce *ondisk.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a CorruptError mentioning %q", err, substr)
	}
	if !strings.Contains(err.Error(), substr) || !strings.Contains(err.Error(), "inode "+strconv.FormatUint(ino, 10)) {
		t.Fatalf("error %q lacks %q or the inode number", err, substr)
	}
}

// Damaged bmbt blocks and inode roots are reported as corruption naming
// the inode, fork and block, never read past.
func TestBmbtCorruption(t *testing.T) {
	cf := newCorruptFixture(t)
	ext, err := cf.fs.Extents(cf.deep, false)
	inoMust(t, err)
	if uint64(len(ext)) != cf.deep.NExtents || len(ext) < 1500 {
		t.Fatalf("clean walk: %d extents, inode says %d", len(ext), cf.deep.NExtents)
	}
	path := cf.path(t)
	leaf, node := path[len(path)-1], path[len(path)-2]
	ino := cf.deep.Ino
	walk := func() error { _, err := cf.fs.Extents(cf.deep, false); return err }
	cases := []struct {
		name string
		run  func(t *testing.T)
		want string
	}{
		{"leaf bit flip", func(t *testing.T) { cf.patch(t, leaf, func(b []byte) { b[100] ^= 4 }, -1) }, "crc"},
		{"leaf records swapped", func(t *testing.T) {
			cf.patch(t, leaf, func(b []byte) {
				r0 := append([]byte(nil), b[72+16:72+32]...)
				copy(b[72+16:], b[72+32:72+48])
				copy(b[72+32:], r0)
			}, ondisk.LongCRCOff)
		}, "overlaps or precedes"},
		{"leaf owner", func(t *testing.T) {
			cf.patch(t, leaf, func(b []byte) { binary.BigEndian.PutUint64(b[56:], ino+1) }, ondisk.LongCRCOff)
		}, "owner"},
		{"leaf self address", func(t *testing.T) {
			cf.patch(t, leaf, func(b []byte) { binary.BigEndian.PutUint64(b[24:], 12345) }, ondisk.LongCRCOff)
		}, "daddr"},
		{"leaf level", func(t *testing.T) {
			cf.patch(t, leaf, func(b []byte) { binary.BigEndian.PutUint16(b[4:], 1) }, ondisk.LongCRCOff)
		}, "level"},
		{"leaf right sibling", func(t *testing.T) {
			cf.patch(t, leaf, func(b []byte) { binary.BigEndian.PutUint64(b[16:], ^uint64(0)) }, ondisk.LongCRCOff)
		}, "right sibling"},
		{"node key", func(t *testing.T) {
			cf.patch(t, node, func(b []byte) {
				k := binary.BigEndian.Uint64(b[72+8:])
				binary.BigEndian.PutUint64(b[72+8:], k+1)
			}, ondisk.LongCRCOff)
		}, "parent key"},
		{"node pointer cycle", func(t *testing.T) {
			cf.patch(t, node, func(b []byte) {
				ondisk.BmbtGeom.SetPtr(b, ondisk.LongHdrSize, 1, ondisk.BmbtGeom.Ptr(b, ondisk.LongHdrSize, 0))
			}, ondisk.LongCRCOff)
		}, "reached twice"},
		{"node pointer outside", func(t *testing.T) {
			cf.patch(t, node, func(b []byte) {
				ondisk.BmbtGeom.SetPtr(b, ondisk.LongHdrSize, 0, 1<<60)
			}, ondisk.LongCRCOff)
		}, "outside the filesystem"},
		{"extent count", func(t *testing.T) {
			cf.patchInode(t, cf.deep, func(d *ondisk.Dinode, raw []byte) { d.NExtents-- })
			ip, err := cf.fs.Inode(ino)
			inoMust(t, err)
			cf.deep, ip = ip, cf.deep
			t.Cleanup(func() { cf.deep = ip })
		}, "the map holds"},
		{"root level zero", func(t *testing.T) {
			cf.patchInode(t, cf.deep, func(d *ondisk.Dinode, raw []byte) {
				binary.BigEndian.PutUint16(raw[d.CoreSize():], 0)
			})
			ip, err := cf.fs.Inode(ino)
			inoMust(t, err)
			cf.deep, ip = ip, cf.deep
			t.Cleanup(func() { cf.deep = ip })
		}, "level 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t)
			wantCorrupt(t, walk(), ino, c.want)
		})
	}
	// Every patch was undone.
	if err := walk(); err != nil {
		t.Fatalf("after restoring: %v", err)
	}
	if out, code := oracle.Repair(t, cf.img.Name()); code != 0 {
		t.Fatalf("image not restored: xfs_repair -n exit %d\n%s", code, out)
	}
}

// Damaged remote symlink blocks are caught by CRC and header checks.
func TestSymlinkCorruption(t *testing.T) {
	cf := newCorruptFixture(t)
	want := strings.Repeat("0123456789abcdef", 63)
	got, err := cf.fs.Readlink(cf.link)
	inoMust(t, err)
	if got != want {
		t.Fatalf("clean readlink %q", got)
	}
	ext, err := cf.fs.Extents(cf.link, false)
	inoMust(t, err)
	if len(ext) == 0 {
		t.Fatal("remote symlink without extents")
	}
	// The kernel writes one header per mapping (here both blocks).
	first, n := ext[0].StartBlock, 1
	if len(ext) > 1 && ext[1].StartBlock == first+ext[0].Length {
		n = 2
	} else if ext[0].Length > 1 {
		n = int(ext[0].Length)
	}
	t.Run("crc", func(t *testing.T) {
		cf.patch(t, first, func(b []byte) { b[200] ^= 1 }, -1)
		_, err := cf.fs.Readlink(cf.link)
		wantCorrupt(t, err, cf.link.Ino, "crc")
	})
	t.Run("offset", func(t *testing.T) {
		cf.patchN(t, first, n, func(b []byte) { binary.BigEndian.PutUint32(b[4:], 7) }, ondisk.SymlinkCRCOff)
		_, err := cf.fs.Readlink(cf.link)
		wantCorrupt(t, err, cf.link.Ino, "header covers")
	})
	t.Run("owner", func(t *testing.T) {
		cf.patchN(t, first, n, func(b []byte) { binary.BigEndian.PutUint64(b[32:], 99) }, ondisk.SymlinkCRCOff)
		_, err := cf.fs.Readlink(cf.link)
		wantCorrupt(t, err, cf.link.Ino, "owner")
	})
}
