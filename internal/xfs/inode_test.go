package xfs_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// inoEntry is what the kernel shows for one name of a fixture image.
type inoEntry struct {
	name string
	st   syscall.Stat_t
	sum  [32]byte // regular files: sha256 of the content
	link string   // symlinks: target
	data []xfs.Run
}

type inoFixture struct {
	img   string
	mnt   string // read-only mount of img
	names []string
	want  map[string]*inoEntry
}

func inoMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// inoUtimes sets atime and mtime with nanoseconds without following symlinks.
func inoUtimes(t *testing.T, path string, atime, mtime time.Time) {
	t.Helper()
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(atime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
	p, err := syscall.BytePtrFromString(path)
	inoMust(t, err)
	atFDCWD, atSymlinkNofollow := -100, 0x100
	if _, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&ts[0])), uintptr(atSymlinkNofollow), 0, 0); e != 0 {
		t.Fatalf("utimensat %s: %v", path, e)
	}
}

func inoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func linuxDev(major, minor uint32) int {
	return int(minor&0xff | major<<8 | (minor&^0xff)<<12)
}

func splitLinuxDev(rdev uint64) (uint32, uint32) {
	return uint32((rdev>>8)&0xfff | (rdev>>32)&^0xfff), uint32(rdev&0xff | (rdev>>12)&^0xff)
}

// inoBuild makes an image, fills it through a kernel mount, unmounts it,
// remounts it read-only and records what the kernel shows of every name
// (stat, SEEK_DATA/SEEK_HOLE map, content hash, link target). The image
// stays mounted read-only until the test ends.
func inoBuild(t *testing.T, opts []string, fill func(p func(string) string) []string) *inoFixture {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m", opts...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	names := fill(func(n string) string { return filepath.Join(mnt, n) })
	oracle.Unmount(t, mnt)
	ro := oracle.Mount(t, img, true)
	fx := &inoFixture{img: img, mnt: ro, names: names, want: map[string]*inoEntry{}}
	for _, n := range names {
		e := &inoEntry{name: n}
		p := filepath.Join(ro, n)
		inoMust(t, syscall.Lstat(p, &e.st))
		switch e.st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			// Map holes before reading: reading unwritten ranges would put
			// zero pages in the cache, which SEEK_DATA then reports.
			e.data = seekMap(t, p, e.st.Size)
			b, err := os.ReadFile(p)
			inoMust(t, err)
			e.sum = sha256.Sum256(b)
		case syscall.S_IFLNK:
			l, err := os.Readlink(p)
			inoMust(t, err)
			e.link = l
		}
		fx.want[n] = e
	}
	return fx
}

// seekMap describes a file as data and hole runs with SEEK_DATA/SEEK_HOLE.
func seekMap(t *testing.T, path string, size int64) []xfs.Run {
	f, err := os.Open(path)
	inoMust(t, err)
	defer f.Close()
	fd := int(f.Fd())
	var runs []xfs.Run
	var pos int64
	for pos < size {
		d, err := syscall.Seek(fd, pos, 3) // SEEK_DATA
		if errors.Is(err, syscall.ENXIO) {
			d = size
		} else {
			inoMust(t, err)
		}
		if d > pos {
			runs = append(runs, xfs.Run{Off: pos, Len: d - pos, Kind: xfs.RunHole})
		}
		if d >= size {
			break
		}
		h, err := syscall.Seek(fd, d, 4) // SEEK_HOLE
		inoMust(t, err)
		runs = append(runs, xfs.Run{Off: d, Len: h - d, Kind: xfs.RunData})
		pos = h
	}
	return runs
}

// holesAsKernelSees folds unwritten runs into holes, as SEEK_HOLE does for
// clean unwritten extents.
func holesAsKernelSees(runs []xfs.Run) []xfs.Run {
	var out []xfs.Run
	for _, r := range runs {
		if r.Kind == xfs.RunUnwritten {
			r.Kind = xfs.RunHole
		}
		if n := len(out); n > 0 && out[n-1].Kind == r.Kind {
			out[n-1].Len += r.Len
			continue
		}
		out = append(out, r)
	}
	return out
}

// fillCommon creates every kind of file the engine must read.
func fillCommon(t *testing.T, p func(string) string, bs int, bigtime bool) []string {
	w := func(n string, b []byte) { inoMust(t, os.WriteFile(p(n), b, 0o644)) }
	w("empty", nil)
	w("tiny", []byte("hello\n"))
	w("oneblock", inoRandom(1, bs))
	w("multi", inoRandom(2, 300<<10+123))
	f, err := os.Create(p("sparse"))
	inoMust(t, err)
	_, err = f.Write(inoRandom(3, 5000))
	inoMust(t, err)
	_, err = f.WriteAt(inoRandom(4, 7000), 10<<20+100)
	inoMust(t, err)
	inoMust(t, f.Truncate(20<<20))
	inoMust(t, f.Close())
	// Unwritten: preallocated, partly written.
	f, err = os.Create(p("unwritten"))
	inoMust(t, err)
	inoMust(t, syscall.Fallocate(int(f.Fd()), 0, 0, 1<<20))
	_, err = f.WriteAt(inoRandom(5, 3*bs), 512<<10)
	inoMust(t, err)
	inoMust(t, f.Close())
	// Preallocated beyond EOF.
	f, err = os.Create(p("prealloc"))
	inoMust(t, err)
	_, err = f.Write(inoRandom(6, 2*bs+10))
	inoMust(t, err)
	inoMust(t, syscall.Fallocate(int(f.Fd()), 1 /* KEEP_SIZE */, 0, 1<<20))
	inoMust(t, f.Close())
	// Punch every other block: many extents, a btree data fork.
	f, err = os.Create(p("punched"))
	inoMust(t, err)
	_, err = f.Write(inoRandom(7, 512*bs))
	inoMust(t, err)
	inoMust(t, f.Sync())
	for i := 1; i < 512; i += 2 {
		inoMust(t, syscall.Fallocate(int(f.Fd()), 3 /* PUNCH_HOLE|KEEP_SIZE */, int64(i*bs), int64(bs)))
	}
	inoMust(t, f.Close())
	// Two files written in turns with O_SYNC fragment each other.
	fa, err := os.OpenFile(p("frag-a"), os.O_CREATE|os.O_WRONLY|os.O_SYNC, 0o644)
	inoMust(t, err)
	fb, err := os.OpenFile(p("frag-b"), os.O_CREATE|os.O_WRONLY|os.O_SYNC, 0o644)
	inoMust(t, err)
	for i := 0; i < 40; i++ {
		_, err = fa.Write(inoRandom(uint64(100+i), 2*bs))
		inoMust(t, err)
		_, err = fb.Write(inoRandom(uint64(200+i), 3*bs))
		inoMust(t, err)
	}
	inoMust(t, fa.Close())
	inoMust(t, fb.Close())
	inoMust(t, os.Link(p("tiny"), p("hardlink")))
	w("owned", []byte("owned"))
	inoMust(t, os.Chown(p("owned"), 1234, 5678))
	inoMust(t, syscall.Chmod(p("owned"), 0o6755))
	inoMust(t, os.Symlink("t", p("link-short")))
	inoMust(t, os.Symlink(strings.Repeat("m", 200), p("link-mid")))
	long := make([]byte, 1023)
	for i := range long {
		long[i] = 'a' + byte(i%26)
		if i%50 == 49 {
			long[i] = '/'
		}
	}
	inoMust(t, os.Symlink(string(long), p("link-max")))
	inoMust(t, syscall.Mknod(p("chr"), syscall.S_IFCHR|0o620, linuxDev(259, 70000)))
	inoMust(t, syscall.Mknod(p("blk"), syscall.S_IFBLK|0o660, linuxDev(8, 1)))
	inoMust(t, syscall.Mkfifo(p("fifo"), 0o600))
	inoMust(t, syscall.Mknod(p("sock"), syscall.S_IFSOCK|0o755, 0))
	inoMust(t, os.Mkdir(p("dir"), 0o750))
	// Times with nanoseconds; past 2038 and before 1970 where the format allows.
	late := time.Date(2037, 12, 31, 23, 59, 59, 999999999, time.UTC)
	if bigtime {
		late = time.Date(2242, 3, 4, 5, 6, 7, 890123456, time.UTC)
	}
	early := time.Date(1950, 6, 7, 8, 9, 10, 111111111, time.UTC)
	w("times", []byte("t"))
	inoUtimes(t, p("times"), late, early)
	inoUtimes(t, p("link-mid"), early, late)
	inoUtimes(t, p("dir"), late, late)
	if out, err := exec.Command("cp", "--reflink=always", p("multi"), p("reflinked")).CombinedOutput(); err != nil {
		t.Fatalf("cp --reflink: %v\n%s", err, out)
	}
	return []string{".", "empty", "tiny", "oneblock", "multi", "sparse", "unwritten", "prealloc", "punched",
		"frag-a", "frag-b", "hardlink", "owned", "link-short", "link-mid", "link-max", "chr", "blk", "fifo",
		"sock", "dir", "times", "reflinked"}
}

func tsOf(ts syscall.Timespec) ondisk.Timestamp {
	return ondisk.Timestamp{Sec: ts.Sec, Nsec: uint32(ts.Nsec)}
}

// Reads every kind of kernel-made inode and checks the engine against the
// kernel (stat, content, hole map, link targets) and xfs_db (extent maps).
func TestKernelImage(t *testing.T) {
	cases := []struct {
		name    string
		opts    []string
		bs      int
		bigtime bool
	}{
		{"4k-bigtime", nil, 4096, true},
		{"1k-classic-nrext64", []string{"-b", "size=1024", "-m", "bigtime=0", "-i", "nrext64=1"}, 1024, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := inoBuild(t, tc.opts, func(p func(string) string) []string {
				names := fillCommon(t, p, tc.bs, tc.bigtime)
				if tc.bs == 1024 {
					// Alternate blocks: thousands of extents, a bmbt of height >= 3.
					f, err := os.Create(p("deep"))
					inoMust(t, err)
					blk := inoRandom(9, tc.bs)
					for i := 0; i < 3000; i++ {
						blk[0] = byte(i)
						_, err := f.WriteAt(blk, int64(2*i*tc.bs))
						inoMust(t, err)
					}
					inoMust(t, f.Close())
					names = append(names, "deep")
				}
				return names
			})
			fs, err := xfs.Open(fx.img)
			inoMust(t, err)
			defer fs.Close()
			for _, n := range fx.names {
				t.Run(n, func(t *testing.T) { checkEntry(t, fs, fx, fx.want[n], tc.bigtime) })
			}
			ip, err := fs.Inode(fx.want["punched"].st.Ino)
			inoMust(t, err)
			if ip.Format != ondisk.FmtBtree {
				t.Errorf("punched: data fork in %s format, want btree", ondisk.FormatName(ip.Format))
			}
			if tc.bs == 1024 {
				ip, err := fs.Inode(fx.want["deep"].st.Ino)
				inoMust(t, err)
				root, err := ondisk.DecodeBmdr(ip.DataFork, "deep")
				inoMust(t, err)
				if root.Level < 2 {
					t.Errorf("deep: bmbt root level %d, want >= 2", root.Level)
				}
				if ip.NExtents < 3000 {
					t.Errorf("deep: %d extents", ip.NExtents)
				}
				if !ip.HasNrext64() || ip.HasBigtime() {
					t.Errorf("deep: flags2 0x%x on a nrext64, non-bigtime filesystem", ip.Flags2)
				}
				// The iterator stops early without error.
				k := 0
				for _, err := range fs.ExtentSeq(ip, false) {
					inoMust(t, err)
					if k++; k == 100 {
						break
					}
				}
				if k != 100 {
					t.Errorf("ExtentSeq yielded %d before stopping", k)
				}
			}
			// Bad numbers are refused; a free inode in an allocated chunk reads.
			for _, bad := range []uint64{0, fs.SB.RootIno + 1<<40, ^uint64(0)} {
				if _, err := fs.Inode(bad); err == nil {
					t.Errorf("inode %d accepted", bad)
				}
			}
			if free, err := fs.Inode(fs.SB.RootIno + 63); err != nil || !free.Free() {
				t.Errorf("last inode of the root chunk: %v (free=%v)", err, err == nil && free.Free())
			}
			dir, err := fs.Inode(fx.want["dir"].st.Ino)
			inoMust(t, err)
			if _, err := fs.OpenFile(dir); err == nil {
				t.Error("OpenFile on a directory succeeded")
			}
			if _, err := fs.Readlink(dir); err == nil {
				t.Error("Readlink on a directory succeeded")
			}
			// xfs_db agrees on the fixture's dinode fields for a few inodes.
			compareWithXFSDB(t, fs, fx, []string{"owned", "times", "chr", "punched"})
		})
	}
}

func checkEntry(t *testing.T, fs *xfs.FS, fx *inoFixture, e *inoEntry, bigtime bool) {
	ip, err := fs.Inode(e.st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if uint32(ip.Mode) != e.st.Mode || ip.UID != e.st.Uid || ip.GID != e.st.Gid || uint64(ip.NLink) != e.st.Nlink {
		t.Errorf("mode 0%o uid %d gid %d nlink %d; kernel: 0%o %d %d %d", ip.Mode, ip.UID, ip.GID, ip.NLink, e.st.Mode, e.st.Uid, e.st.Gid, e.st.Nlink)
	}
	if int64(ip.Size) != e.st.Size {
		t.Errorf("size %d, kernel %d", ip.Size, e.st.Size)
	}
	if ip.Atime != tsOf(e.st.Atim) || ip.Mtime != tsOf(e.st.Mtim) || ip.Ctime != tsOf(e.st.Ctim) {
		t.Errorf("times a=%v m=%v c=%v; kernel a=%v m=%v c=%v", ip.Atime.Time(), ip.Mtime.Time(), ip.Ctime.Time(),
			tsOf(e.st.Atim).Time(), tsOf(e.st.Mtim).Time(), tsOf(e.st.Ctim).Time())
	}
	if ip.HasBigtime() != bigtime {
		t.Errorf("bigtime flag %v", ip.HasBigtime())
	}
	if int64(ip.NBlocks)*int64(fs.SB.BlockSize)/512 != e.st.Blocks {
		t.Errorf("nblocks %d (%d sectors), kernel %d sectors", ip.NBlocks, int64(ip.NBlocks)*int64(fs.SB.BlockSize)/512, e.st.Blocks)
	}
	switch e.st.Mode & syscall.S_IFMT {
	case syscall.S_IFCHR, syscall.S_IFBLK:
		maj, min, err := ip.DevNumbers()
		inoMust(t, err)
		kmaj, kmin := splitLinuxDev(e.st.Rdev)
		if maj != kmaj || min != kmin {
			t.Errorf("device %d:%d, kernel %d:%d", maj, min, kmaj, kmin)
		}
	case syscall.S_IFLNK:
		got, err := fs.Readlink(ip)
		inoMust(t, err)
		if got != e.link {
			t.Errorf("readlink %q, kernel %q", got, e.link)
		}
		if len(e.link) > 300 && ip.Format == ondisk.FmtLocal {
			t.Errorf("%d-byte target stored inline", len(e.link))
		}
		if ip.Format != ondisk.FmtLocal {
			compareBmap(t, fs, fx.img, ip)
		}
	case syscall.S_IFREG:
		checkFile(t, fs, fx, e, ip)
	}
	if ip.ForkOff != 0 {
		// Attr forks walk too (usually an LSM label in local format).
		if _, err := fs.Extents(ip, true); err != nil {
			t.Errorf("attr fork: %v", err)
		}
	}
}

func checkFile(t *testing.T, fs *xfs.FS, fx *inoFixture, e *inoEntry, ip *xfs.Inode) {
	f, err := fs.OpenFile(ip)
	inoMust(t, err)
	h := sha256.New()
	n, err := f.WriteTo(h)
	inoMust(t, err)
	if n != e.st.Size || !bytes.Equal(h.Sum(nil), e.sum[:]) {
		t.Errorf("content: %d bytes, sha256 mismatch=%v", n, !bytes.Equal(h.Sum(nil), e.sum[:]))
	}
	if got := holesAsKernelSees(f.DataMap()); fmt.Sprint(got) != fmt.Sprint(e.data) {
		t.Errorf("data map %v\nkernel SEEK_DATA/HOLE %v\n(engine raw %v)", got, e.data, f.DataMap())
	}
	var streamed []xfs.Run
	inoMust(t, fs.WalkDataMap(ip, func(r xfs.Run) error { streamed = append(streamed, r); return nil }))
	if fmt.Sprint(streamed) != fmt.Sprint(f.DataMap()) {
		t.Errorf("WalkDataMap %v, DataMap %v", streamed, f.DataMap())
	}
	// Random reads, some across EOF, against the kernel's view.
	kf, err := os.Open(filepath.Join(fx.mnt, e.name))
	inoMust(t, err)
	defer kf.Close()
	r := rand.New(rand.NewPCG(uint64(e.st.Ino), 1))
	for i := 0; i < 40; i++ {
		size := e.st.Size + 1
		off := r.Int64N(size + 5000)
		l := r.IntN(3*int(fs.SB.BlockSize) + 1)
		if i%8 == 0 {
			l = r.IntN(2 << 20)
		}
		a, b := make([]byte, l), make([]byte, l)
		na, ea := f.ReadAt(a, off)
		nb, eb := kf.ReadAt(b, off)
		if na != nb || !bytes.Equal(a[:na], b[:nb]) || (ea == io.EOF) != (eb == io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; kernel %d, %v (equal %v)", l, off, na, ea, nb, eb, bytes.Equal(a[:na], b[:nb]))
		}
	}
	sr := f.SectionReader()
	all, err := io.ReadAll(sr)
	inoMust(t, err)
	if sha256.Sum256(all) != e.sum {
		t.Error("SectionReader content differs")
	}
	compareBmap(t, fs, fx.img, ip)
	t.Logf("%d extents (%s), data map %v", ip.NExtents, ondisk.FormatName(ip.Format), f.DataMap())
}

// compareBmap checks the engine's data extent map against xfs_db's bmap.
func compareBmap(t *testing.T, fs *xfs.FS, img string, ip *xfs.Inode) {
	t.Helper()
	ext, err := fs.Extents(ip, false)
	inoMust(t, err)
	var got []string
	for _, e := range ext {
		agno, agbno := fs.SB.FSBToAG(e.StartBlock)
		flag := 0
		if e.Unwritten {
			flag = 1
		}
		got = append(got, fmt.Sprintf("data offset %d startblock %d (%d/%d) count %d flag %d", e.Offset, e.StartBlock, agno, agbno, e.Length, flag))
	}
	want := strings.TrimSpace(oracle.DB(t, img, []string{"-r"}, "inode "+strconv.FormatUint(ip.Ino, 10), "bmap"))
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("extent map (%d extents) differs from xfs_db bmap:\n%.2000s\nxfs_db:\n%.2000s", len(ext), g, want)
	}
	if uint64(len(ext)) != ip.NExtents {
		t.Errorf("%d extents, inode says %d", len(ext), ip.NExtents)
	}
}

func compareWithXFSDB(t *testing.T, fs *xfs.FS, fx *inoFixture, names []string) {
	t.Setenv("TZ", "UTC")
	for _, n := range names {
		ip, err := fs.Inode(fx.want[n].st.Ino)
		inoMust(t, err)
		out := oracle.DB(t, fx.img, []string{"-r"}, "inode "+strconv.FormatUint(ip.Ino, 10), "print")
		for field, got := range map[string]uint64{
			"core.mode": uint64(ip.Mode), "core.uid": uint64(ip.UID), "core.gid": uint64(ip.GID),
			"core.nlinkv2": uint64(ip.NLink), "core.size": ip.Size, "core.nblocks": ip.NBlocks,
			"core.nextents": ip.NExtents, "core.forkoff": uint64(ip.ForkOff), "core.gen": uint64(ip.Gen),
			"v3.flags2": ip.Flags2, "v3.change_count": ip.ChangeCount, "v3.inumber": ip.Ino,
		} {
			v, err := oracle.Field(out, field)
			inoMust(t, err)
			want, err := strconv.ParseUint(strings.Fields(v)[0], 0, 64)
			inoMust(t, err)
			if got != want {
				t.Errorf("%s: %s = %d, xfs_db %d", n, field, got, want)
			}
		}
		for name, ts := range map[string]ondisk.Timestamp{"core.atime": ip.Atime, "core.mtime": ip.Mtime, "v3.crtime": ip.Crtime} {
			s, err := oracle.Field(out, name+".sec")
			inoMust(t, err)
			tm, err := time.Parse(time.ANSIC, s)
			inoMust(t, err)
			ns, err := oracle.Field(out, name+".nsec")
			inoMust(t, err)
			if strconv.FormatInt(tm.Unix(), 10)+"."+ns != strconv.FormatInt(ts.Sec, 10)+"."+strconv.Itoa(int(ts.Nsec)) {
				t.Errorf("%s: %s = %d.%09d, xfs_db %s + %s ns", n, name, ts.Sec, ts.Nsec, s, ns)
			}
		}
	}
}
