package ondisk_test

import (
	"bytes"
	"errors"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// inoKernelImage makes an image with mkfs opts, fills it through a kernel
// mount with populate (given the mount point) and unmounts it. It returns
// the image path and the inode number of every name populate made.
func inoKernelImage(t *testing.T, opts []string, names []string, populate func(mnt string)) (string, map[string]uint64) {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m", opts...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	populate(mnt)
	inos := map[string]uint64{}
	for _, n := range names {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mnt, n), &st); err != nil {
			t.Fatal(err)
		}
		inos[n] = st.Ino
	}
	oracle.Unmount(t, mnt)
	return img, inos
}

func inoImageSB(t *testing.T, img string) *ondisk.Superblock {
	t.Helper()
	sb, err := ondisk.DecodeSuperblock(inodeReadAt(t, img, 0, 512))
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func inodeReadAt(t *testing.T, img string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func inoRawInode(t *testing.T, img string, sb *ondisk.Superblock, ino uint64) []byte {
	t.Helper()
	daddr, off := sb.InoToDaddr(ino)
	return inodeReadAt(t, img, int64(daddr)*512+int64(off), int(sb.InodeSize))
}

func inoDBNum(t *testing.T, out, name string) uint64 {
	t.Helper()
	v, err := oracle.Field(out, name)
	if err != nil {
		t.Fatal(err)
	}
	v = strings.Fields(v)[0]
	if v == "null" {
		return ^uint64(0)
	}
	if n, err := strconv.ParseInt(v, 0, 64); err == nil && n < 0 {
		return uint64(n)
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, v, err)
	}
	return n
}

// inoDBTime parses xfs_db's "core.atime.sec" (ctime(3) format, run under
// TZ=UTC) and ".nsec" pair.
func inoDBTime(t *testing.T, out, name string) ondisk.Timestamp {
	t.Helper()
	s, err := oracle.Field(out, name+".sec")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := time.Parse(time.ANSIC, s)
	if err != nil {
		t.Fatalf("%s.sec = %q: %v", name, s, err)
	}
	return ondisk.Timestamp{Sec: tm.Unix(), Nsec: uint32(inoDBNum(t, out, name+".nsec"))}
}

func inoUtimes(t *testing.T, path string, atime, mtime time.Time) {
	t.Helper()
	ts := []syscall.Timespec{syscall.NsecToTimespec(atime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
	if err := syscall.UtimesNano(path, ts); err != nil {
		t.Fatal(err)
	}
}

// Decodes kernel-written inodes of every kind, compares each core field
// with xfs_db, re-encodes them byte for byte and checks the verifier
// accepts them and rejects targeted corruptions.
func TestDinodeAgainstXFSDB(t *testing.T) {
	t.Setenv("TZ", "UTC")
	cases := []struct {
		name string
		opts []string
	}{
		{"bigtime", nil},
		{"classic-nrext64", []string{"-b", "size=1024", "-m", "bigtime=0", "-i", "nrext64=1"}},
	}
	names := []string{".", "empty", "small", "sparse", "dir", "link", "longlink", "chr", "fifo", "owned", "frag"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, inos := inoKernelImage(t, tc.opts, names, func(mnt string) {
				p := func(n string) string { return filepath.Join(mnt, n) }
				must := func(err error) {
					if err != nil {
						t.Fatal(err)
					}
				}
				must(os.WriteFile(p("empty"), nil, 0o600))
				must(os.WriteFile(p("small"), []byte("hello, inode\n"), 0o644))
				f, err := os.Create(p("sparse"))
				must(err)
				_, err = f.WriteAt([]byte("tail"), 5<<20)
				must(err)
				must(f.Close())
				must(os.Mkdir(p("dir"), 0o755))
				must(os.Symlink("short/target", p("link")))
				must(os.Symlink(strings.Repeat("x/", 300), p("longlink")))
				must(syscall.Mknod(p("chr"), syscall.S_IFCHR|0o640, int((259<<8)|(70000&0xff)|((70000&^0xff)<<12))))
				must(syscall.Mkfifo(p("fifo"), 0o600))
				must(os.WriteFile(p("owned"), []byte("x"), 0o4751))
				must(os.Chown(p("owned"), 1234, 5678))
				must(syscall.Chmod(p("owned"), 0o4751)) // after chown, which clears setuid
				inoUtimes(t, p("owned"), time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC), time.Date(1969, 12, 31, 23, 59, 58, 987654321, time.UTC))
				ff, err := os.Create(p("frag"))
				must(err)
				for i := 0; i < 200; i++ {
					_, err = ff.WriteAt(bytes.Repeat([]byte{byte(i)}, 512), int64(i)*8192)
					must(err)
				}
				must(ff.Close())
			})
			sb := inoImageSB(t, img)
			for _, n := range names {
				ino := inos[n]
				raw := inoRawInode(t, img, sb, ino)
				d, err := ondisk.DecodeDinode(raw)
				if err != nil {
					t.Fatalf("%s: %v", n, err)
				}
				if err := d.Verify(raw, ino, sb); err != nil {
					t.Fatalf("%s: verify: %v", n, err)
				}
				out := oracle.DB(t, img, []string{"-r"}, "inode "+strconv.FormatUint(ino, 10), "print")
				checks := []struct {
					field string
					got   uint64
				}{
					{"core.mode", uint64(d.Mode)}, {"core.version", uint64(d.Version)}, {"core.format", uint64(d.Format)},
					{"core.onlink", uint64(d.OnLink)}, {"core.uid", uint64(d.UID)}, {"core.gid", uint64(d.GID)},
					{"core.nlinkv2", uint64(d.NLink)}, {"core.projid_lo", uint64(d.ProjIDLo)}, {"core.projid_hi", uint64(d.ProjIDHi)},
					{"core.size", d.Size}, {"core.nblocks", d.NBlocks}, {"core.extsize", uint64(d.ExtSize)},
					{"core.nextents", d.NExtents}, {"core.naextents", uint64(d.ANExtents)}, {"core.forkoff", uint64(d.ForkOff)},
					{"core.aformat", uint64(d.AFormat)}, {"core.dmevmask", uint64(d.DMEvMask)}, {"core.dmstate", uint64(d.DMState)},
					{"core.gen", uint64(d.Gen)}, {"next_unlinked", uint64(d.NextUnlinked)},
					// xfs_db shows the little-endian CRC field as a big-endian number.
					{"v3.crc", uint64(bits.ReverseBytes32(d.CRC))},
					{"v3.change_count", d.ChangeCount}, {"v3.lsn", d.LSN}, {"v3.flags2", d.Flags2},
					{"v3.cowextsize", uint64(d.CowExtSize)}, {"v3.inumber", d.Ino},
				}
				for _, c := range checks {
					want := inoDBNum(t, out, c.field)
					if c.field == "next_unlinked" {
						want = uint64(uint32(want))
					}
					if c.got != want {
						t.Errorf("%s (inode %d): %s = %d, xfs_db says %d", n, ino, c.field, c.got, want)
					}
				}
				if u, _ := oracle.Field(out, "v3.uuid"); u != d.UUID.String() {
					t.Errorf("%s: uuid %s, xfs_db says %s", n, d.UUID, u)
				}
				for _, tf := range []struct {
					name string
					got  ondisk.Timestamp
				}{{"core.atime", d.Atime}, {"core.mtime", d.Mtime}, {"core.ctime", d.Ctime}, {"v3.crtime", d.Crtime}} {
					if want := inoDBTime(t, out, tf.name); tf.got != want {
						t.Errorf("%s: %s = %+v, xfs_db says %+v", n, tf.name, tf.got, want)
					}
				}
				if (tc.name == "bigtime") != d.HasBigtime() || (tc.name != "bigtime") != d.HasNrext64() {
					t.Errorf("%s: bigtime=%v nrext64=%v on image %s", n, d.HasBigtime(), d.HasNrext64(), tc.name)
				}
				// Byte-exact re-encode (into a scrambled copy of the core).
				enc := append([]byte(nil), raw...)
				for i := 0; i < d.CoreSize(); i++ {
					enc[i] ^= 0x5a
				}
				d2 := *d
				d2.Encode(enc)
				if !bytes.Equal(enc, raw) {
					t.Errorf("%s: re-encoded inode differs from disk", n)
				}
				if n == "chr" {
					data, _, err := d.Forks(raw)
					if err != nil {
						t.Fatal(err)
					}
					dev, err := ondisk.DecodeRdev(data)
					if err != nil {
						t.Fatal(err)
					}
					if ondisk.DevMajor(dev) != 259 || ondisk.DevMinor(dev) != 70000 {
						t.Errorf("chr: device %d:%d, want 259:70000", ondisk.DevMajor(dev), ondisk.DevMinor(dev))
					}
					if u3, _ := oracle.Field(out, "u3.dev"); inoDBNum(t, "x = "+u3, "x") != uint64(dev) {
						t.Errorf("chr: dev 0x%x, xfs_db says %s", dev, u3)
					}
				}
				if n == "owned" {
					if d.Mode != 0o104751 || d.UID != 1234 || d.GID != 5678 {
						t.Errorf("owned: mode 0%o uid %d gid %d", d.Mode, d.UID, d.GID)
					}
					wantA := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
					if !d.Atime.Time().Equal(wantA) {
						t.Errorf("owned: atime %v, want %v", d.Atime.Time(), wantA)
					}
					if d.Mtime != (ondisk.Timestamp{Sec: -2, Nsec: 987654321}) {
						t.Errorf("owned: mtime %+v, want -2 s + 987654321 ns", d.Mtime)
					}
				}
				if n == "frag" && d.Format != ondisk.FmtBtree {
					t.Errorf("frag: format %s, want btree", ondisk.FormatName(d.Format))
				}
				if n == "frag" {
					data, _, _ := d.Forks(raw)
					root, err := ondisk.DecodeBmdr(data, "frag")
					if err != nil {
						t.Fatal(err)
					}
					if lv := inoDBNum(t, out, "u3.bmbt.level"); uint64(root.Level) != lv {
						t.Errorf("frag: root level %d, xfs_db says %d", root.Level, lv)
					}
					ptrs, _ := oracle.Field(out, "u3.bmbt.ptrs[1-"+strconv.Itoa(int(root.NumRecs))+"]")
					var want []string
					for i, p := range root.Ptrs {
						want = append(want, strconv.Itoa(i+1)+":"+strconv.FormatUint(p, 10))
					}
					if ptrs != strings.Join(want, " ") {
						t.Errorf("frag: root ptrs %q, xfs_db says %q", strings.Join(want, " "), ptrs)
					}
					enc := make([]byte, len(data))
					root.Encode(enc)
					if !bytes.Equal(enc[:4+int(root.NumRecs)*8], data[:4+int(root.NumRecs)*8]) {
						t.Errorf("frag: bmdr keys re-encode differently")
					}
				}
				inoVerifyRejects(t, n, raw, ino, sb)
			}
		})
	}
}

// inoVerifyRejects corrupts copies of a good inode and checks each is caught.
func inoVerifyRejects(t *testing.T, name string, raw []byte, ino uint64, sb *ondisk.Superblock) {
	t.Helper()
	try := func(what string, mut func(d *ondisk.Dinode, b []byte), reseal bool) {
		b := append([]byte(nil), raw...)
		d, _ := ondisk.DecodeDinode(b)
		mut(d, b)
		if reseal {
			d.Encode(b)
		}
		d, err := ondisk.DecodeDinode(b)
		if err == nil {
			err = d.Verify(b, ino, sb)
		}
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %s: verifier accepted it (err %v)", name, what, err)
		}
	}
	try("flipped bit", func(d *ondisk.Dinode, b []byte) { b[len(b)-1] ^= 1 }, false)
	try("wrong inode number", func(d *ondisk.Dinode, b []byte) { d.Ino++ }, true)
	try("wrong uuid", func(d *ondisk.Dinode, b []byte) { d.UUID[0] ^= 1 }, true)
	try("bad magic", func(d *ondisk.Dinode, b []byte) { d.Magic = 0x4e49 }, true)
	try("forkoff past literal area", func(d *ondisk.Dinode, b []byte) { d.ForkOff = 200 }, true)
	try("too many extents", func(d *ondisk.Dinode, b []byte) {
		if d.Format == ondisk.FmtDev || d.Format == ondisk.FmtLocal {
			d.Format = ondisk.FmtExtents // a device or short dir never has extents
		}
		d.NExtents = d.MaxNextents(false) + 1
		d.NBlocks = 1 << 50
	}, true)
	try("bad file type", func(d *ondisk.Dinode, b []byte) { d.Mode = 0o170644 }, true)
	try("unknown flags2", func(d *ondisk.Dinode, b []byte) { d.Flags2 |= 1 << 40 }, true)
	try("reflink without feature", func(d *ondisk.Dinode, b []byte) {
		if !sb.HasReflink() {
			d.Flags2 |= ondisk.Diflag2Reflink
		} else {
			d.Mode = ondisk.ModeDir | 0o755
			d.Flags2 |= ondisk.Diflag2Reflink
		}
	}, true)
}

func TestTimestampConversions(t *testing.T) {
	cases := []time.Time{
		time.Unix(0, 0),
		time.Date(1901, 12, 13, 20, 45, 52, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2038, 1, 19, 3, 14, 7, 1, time.UTC),
		time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC),
		time.Date(2200, 2, 3, 4, 5, 6, 7, time.UTC),
		time.Date(2486, 7, 2, 20, 20, 24, 0, time.UTC),
	}
	for _, c := range cases {
		ts := ondisk.TimestampOf(c)
		raw := ts.Encode(true)
		if got := ondisk.DecodeTimestamp(raw, true); got != ts || !got.Time().Equal(c) {
			t.Errorf("bigtime %v: round trip gave %+v", c, got)
		}
		if want := uint64(c.Unix()+1<<31)*1e9 + uint64(c.Nanosecond()); raw != want {
			t.Errorf("bigtime %v: raw %d, want %d", c, raw, want)
		}
		legacy := ondisk.DecodeTimestamp(ts.Encode(false), false)
		if c.Unix() >= -1<<31 && c.Unix() < 1<<31 {
			if legacy != ts {
				t.Errorf("classic %v: round trip gave %+v", c, legacy)
			}
		} else if legacy.Sec != 1<<31-1 {
			t.Errorf("classic %v: not clamped to 2038 (%d)", c, legacy.Sec)
		}
	}
	// Bigtime zero is the classic minimum, 2^31 s before the Unix epoch.
	if got := ondisk.DecodeTimestamp(0, true); got.Sec != -1<<31 || got.Nsec != 0 {
		t.Errorf("bigtime 0 = %+v", got)
	}
	if got := ondisk.DecodeTimestamp(0xffffffff_3b9ac9ff, false); got.Sec != -1 || got.Nsec != 999999999 {
		t.Errorf("classic -1 s = %+v", got)
	}
	if got := ondisk.TimestampOf(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)).Encode(true); got != ondisk.BigtimeTimeMax*1e9 {
		t.Errorf("bigtime past 2486 not clamped: %d", got)
	}
}

func TestDevNumbers(t *testing.T) {
	d, ok := ondisk.MakeDev(259, 70000)
	if !ok || d != 0x40d1170 {
		t.Fatalf("MakeDev(259, 70000) = 0x%x, %v; want 0x40d1170 (as xfs_db prints)", d, ok)
	}
	if ondisk.DevMajor(d) != 259 || ondisk.DevMinor(d) != 70000 {
		t.Fatalf("split 0x%x wrong", d)
	}
	if _, ok := ondisk.MakeDev(1<<14, 0); ok {
		t.Error("major 16384 accepted")
	}
	if _, ok := ondisk.MakeDev(0, 1<<18); ok {
		t.Error("minor 2^18 accepted")
	}
}

func TestForksAndSizes(t *testing.T) {
	raw := make([]byte, 512)
	d := &ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 3, ForkOff: 24}
	d.Encode(raw)
	data, attr, err := d.Forks(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 192 || len(attr) != 512-176-192 || d.DataForkSize(512) != 192 || d.AttrForkSize(512) != 144 {
		t.Fatalf("fork sizes %d/%d", len(data), len(attr))
	}
	d.ForkOff = 42 // 336 bytes: the whole literal area, no room for attrs
	if _, _, err := d.Forks(raw); err == nil {
		t.Fatal("forkoff at the end of the literal area accepted")
	}
	d.ForkOff = 0
	if data, attr, _ := d.Forks(raw); len(data) != 336 || attr != nil {
		t.Fatalf("no attr fork: %d/%v", len(data), attr)
	}
	v2 := &ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 2, FlushIter: 0x1234, NExtents: 7, ANExtents: 3}
	b := make([]byte, 256)
	v2.Encode(b)
	got, err := ondisk.DecodeDinode(b)
	if err != nil || got.FlushIter != 0x1234 || got.NExtents != 7 || got.ANExtents != 3 || got.CoreSize() != 100 {
		t.Fatalf("v2 round trip: %+v %v", got, err)
	}
	if b[30] != 0x12 || b[31] != 0x34 || b[79] != 7 || b[81] != 3 {
		t.Fatalf("v2 layout wrong: % x", b[24:84])
	}
	// nrext64 moves the data counter to offset 24 and widens the attr one.
	n := &ondisk.Dinode{Magic: ondisk.DinodeMagic, Version: 3, Flags2: ondisk.Diflag2Nrext64, NExtents: 1<<40 + 5, ANExtents: 1<<20 + 1}
	b = make([]byte, 512)
	n.Encode(b)
	if got, _ := ondisk.DecodeDinode(b); got.NExtents != n.NExtents || got.ANExtents != n.ANExtents {
		t.Fatalf("nrext64 counters: %d/%d", got.NExtents, got.ANExtents)
	}
	if b[24] != 0 || b[26] != 1 || b[31] != 5 || b[77] != 0x10 || b[79] != 1 {
		t.Fatalf("nrext64 layout wrong: % x / % x", b[24:32], b[76:82])
	}
	if _, err := ondisk.DecodeDinode(b[:150]); err == nil {
		t.Fatal("short v3 buffer accepted")
	}
}
