package xfs_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// iwImage is a kernel-filled image and what the kernel showed of it.
type iwImage struct {
	img     string
	want    map[uint64]bool // allocated inodes: reachable ones plus sb metadata inodes
	deleted []uint64        // inodes of files deleted before unmount
}

// iwBuild makes an image with opts, lets prep shape free space, creates
// files in dirs directories (deleting every third), records the inode
// numbers find(1) sees and unmounts.
func iwBuild(t testing.TB, size string, opts []string, dirs, files int, prep func(mnt string)) *iwImage {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, size, opts...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	if prep != nil {
		prep(mnt)
	}
	res := &iwImage{img: img, want: map[uint64]bool{}}
	for d := 0; d < dirs; d++ {
		dir := filepath.Join(mnt, fmt.Sprint("d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < files; i++ {
			p := filepath.Join(dir, strconv.Itoa(i))
			var err error
			switch i % 10 {
			case 7:
				err = os.Symlink("target-"+strconv.Itoa(i), p)
			case 8:
				err = os.Mkdir(p, 0o700)
			default:
				err = os.WriteFile(p, []byte(p), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for d := 0; d < dirs; d++ {
		for i := 0; i < files; i += 3 {
			p := filepath.Join(mnt, fmt.Sprint("d", d), strconv.Itoa(i))
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			res.deleted = append(res.deleted, st.Ino)
		}
	}
	out, err := exec.Command("find", mnt, "-xdev", "-printf", "%i\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Fields(string(out)) {
		n, err := strconv.ParseUint(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		res.want[n] = true
	}
	oracle.Unmount(t, mnt)
	sb, err := ondisk.DecodeSuperblock(iwRead(t, img, 0, 512))
	if err != nil {
		t.Fatal(err)
	}
	// Allocated but reachable from no directory.
	for _, ino := range []uint64{sb.RBMIno, sb.RSumIno, sb.UQuotIno, sb.GQuotIno, sb.PQuotIno} {
		if ino != 0 && ino != ondisk.NullIno {
			res.want[ino] = true
		}
	}
	return res
}

func iwRead(t testing.TB, img string, off int64, n int) []byte {
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

// iwCheckWalk walks fs and checks the result against the kernel's view:
// the same set of inodes, strictly increasing, each raw buffer holding that
// very inode (v3 core magic and di_ino).
func iwCheckWalk(t *testing.T, fs *xfs.FS, im *iwImage) []uint64 {
	t.Helper()
	var got []uint64
	isize := int(fs.SB.InodeSize)
	raws := map[uint64][]byte{}
	err := fs.WalkInodes(context.Background(), func(ino uint64, raw []byte) error {
		if len(raw) != isize || cap(raw) != isize {
			return fmt.Errorf("inode %d: %d bytes (cap %d), want %d", ino, len(raw), cap(raw), isize)
		}
		if binary.BigEndian.Uint16(raw) != 0x494e {
			return fmt.Errorf("inode %d: no inode magic", ino)
		}
		if di := binary.BigEndian.Uint64(raw[152:]); di != ino {
			return fmt.Errorf("inode %d: raw bytes belong to inode %d", ino, di)
		}
		if len(got) > 0 && ino <= got[len(got)-1] {
			return fmt.Errorf("inode %d after %d", ino, got[len(got)-1])
		}
		got = append(got, ino)
		if len(got)%97 == 1 {
			raws[ino] = append([]byte(nil), raw...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing, extra []uint64
	seen := map[uint64]bool{}
	for _, ino := range got {
		seen[ino] = true
		if !im.want[ino] {
			extra = append(extra, ino)
		}
	}
	for ino := range im.want {
		if !seen[ino] {
			missing = append(missing, ino)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("walk found %d inodes, kernel %d; missing %v; not in the kernel's view %v", len(got), len(im.want), iwHead(missing), iwHead(extra))
	}
	// The single-inode readers agree with the walk.
	for ino, raw := range raws {
		r, err := fs.InodeRaw(ino)
		if err != nil || string(r) != string(raw) {
			t.Errorf("InodeRaw(%d): %v, same bytes %v", ino, err, string(r) == string(raw))
		}
		if r, err := fs.InodeRawAllocated(ino); err != nil || string(r) != string(raw) {
			t.Errorf("InodeRawAllocated(%d): %v", ino, err)
		}
	}
	return got
}

func iwHead(s []uint64) []uint64 {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// iwCheckChunks compares the chunk walk with the AGIs (and with the number
// of inodes an inode walk visited, unless walked < 0) and returns the
// records by AG.
func iwCheckChunks(t *testing.T, fs *xfs.FS, walked int) map[uint32][]ondisk.InobtRec {
	t.Helper()
	recs := map[uint32][]ondisk.InobtRec{}
	err := fs.WalkInodeChunks(context.Background(), func(agno uint32, r ondisk.InobtRec) error {
		recs[agno] = append(recs[agno], r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var alloc int
	for ag := uint32(0); ag < fs.SB.AGCount; ag++ {
		agi, err := fs.AGI(ag)
		if err != nil {
			t.Fatal(err)
		}
		var count, free uint32
		for i, r := range recs[ag] {
			if i > 0 && r.StartIno <= recs[ag][i-1].StartIno {
				t.Errorf("AG %d: chunk %d starts at %d, before its predecessor", ag, i, r.StartIno)
			}
			count += uint32(r.Count)
			free += r.FreeCount
			alloc += int(r.Count) - int(r.FreeCount)
		}
		if count != agi.Count || free != agi.FreeCount {
			t.Errorf("AG %d: chunks hold %d inodes, %d free; AGI says %d, %d", ag, count, free, agi.Count, agi.FreeCount)
		}
	}
	if walked >= 0 && alloc != walked {
		t.Errorf("chunks list %d allocated inodes, the walk visited %d", alloc, walked)
	}
	return recs
}

func TestWalkInodes(t *testing.T) {
	geometries := []struct {
		name  string
		opts  []string
		dirs  int
		files int
	}{
		{"default", []string{"-d", "agcount=4"}, 10, 300},
		// 128 inodes per block, two records per block; mkfs.xfs writes
		// spino_align 0 here.
		{"64k blocks", []string{"-b", "size=65536"}, 4, 150},
		{"1k blocks", []string{"-b", "size=1024"}, 4, 150}, // 32-block chunks
		{"2k inodes", []string{"-i", "size=2048"}, 4, 150},
		{"no sparse no finobt", []string{"-i", "sparse=0", "-m", "finobt=0"}, 4, 150},
	}
	for _, g := range geometries {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			im := iwBuild(t, "600m", g.opts, g.dirs, g.files, nil)
			fs, err := xfs.Open(im.img)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			walked := iwCheckWalk(t, fs, im)
			recs := iwCheckChunks(t, fs, len(walked))
			partial := false
			for _, rs := range recs {
				for _, r := range rs {
					partial = partial || r.FreeCount > 0 && r.FreeCount < uint32(r.Count)
				}
			}
			if !partial {
				t.Error("no partly free chunk: deletions did not reach the inode B-tree")
			}
			// Deleted files' inodes are free in the inode B-tree.
			freed := 0
			for _, ino := range im.deleted {
				ok, err := fs.InodeAllocated(ino)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					t.Errorf("deleted inode %d still allocated per LookupInobt", ino)
					continue
				}
				freed++
				if _, err := fs.InodeRawAllocated(ino); !errors.Is(err, xfs.ErrInodeNotAllocated) {
					t.Errorf("InodeRawAllocated(deleted %d): %v", ino, err)
				}
			}
			if freed == 0 {
				t.Error("no deleted inodes to check")
			}
		})
	}
}

// iwFragment leaves free space only in 7-block pieces, so that the kernel
// can no longer find an aligned full inode chunk and allocates sparse ones.
func iwFragment(t testing.TB, mnt string) {
	t.Helper()
	oracle.Run(t, "xfs_io", "-x", "-c", "resblks 0", mnt) // no hidden reserve of contiguous space
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	bs := st.Bsize
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	var off int64
	for size := int64(64 << 20); size >= bs; {
		if err := syscall.Fallocate(fd, 0, off, size); err != nil {
			size /= 2
			continue
		}
		off += size
	}
	const punch = 0x2 | 0x1 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	for o := int64(0); o+16*bs <= off; o += 16 * bs {
		if err := syscall.Fallocate(fd, punch, o, 7*bs); err != nil {
			t.Fatal(err)
		}
	}
}

// iwRecorder is a Device that records the byte ranges read through it.
type iwRecorder struct {
	image.Device
	mu    sync.Mutex
	reads [][2]int64
}

func (r *iwRecorder) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads = append(r.reads, [2]int64{off, off + int64(len(p))})
	r.mu.Unlock()
	return r.Device.ReadAt(p, off)
}

// Sparse inode chunks: the walk finds exactly the kernel's inodes and never
// reads the holes, which are not inode space.
func TestWalkInodesSparse(t *testing.T) {
	im := iwBuild(t, "320m", []string{"-d", "agcount=4", "-m", "reflink=0,finobt=0", "-i", "sparse=1"}, 3, 400,
		func(mnt string) { iwFragment(t, mnt) })
	dev, err := image.Open(im.img, false)
	if err != nil {
		t.Fatal(err)
	}
	rec := &iwRecorder{Device: dev}
	fs, err := xfs.OpenDevice(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	sb := fs.SB
	recs := iwCheckChunks(t, fs, -1) // the walk is compared below
	// Holes as byte ranges, and the inobt blocks (which may sit in them).
	var holes [][2]int64
	sparse, partialSparse := 0, 0
	inobt := map[int64]bool{}
	isize := int64(sb.InodeSize)
	for ag, rs := range recs {
		agStart := int64(sb.AGBToDaddr(ag, 0)) << ondisk.BBShift
		for _, r := range rs {
			if r.HoleMask == 0 {
				continue
			}
			sparse++
			if r.FreeCount > 0 {
				partialSparse++
			}
			for bit := 0; bit < 16; bit++ {
				if r.HoleMask&(1<<bit) != 0 {
					s := agStart + (int64(r.StartIno)+int64(bit*4))*isize
					holes = append(holes, [2]int64{s, s + 4*isize})
				}
			}
		}
		root, levels, err := fs.AGBtreeRoot(ag, ondisk.InobtMagic)
		if err != nil {
			t.Fatal(err)
		}
		fs.WalkAGBtree(ag, root, levels, ondisk.InobtGeom, func(b *xfs.BtreeBlock) error {
			inobt[int64(sb.AGBToDaddr(ag, b.AGBno))<<ondisk.BBShift] = true
			return nil
		})
	}
	if sparse == 0 || partialSparse == 0 {
		t.Fatalf("%d sparse chunks, %d of them partly free: the image does not exercise sparse inodes", sparse, partialSparse)
	}
	t.Logf("%d sparse chunks (%d partly free), %d hole runs", sparse, partialSparse, len(holes))
	rec.mu.Lock()
	rec.reads = nil
	rec.mu.Unlock()
	walked := iwCheckWalk(t, fs, im)
	var alloc int
	for _, rs := range recs {
		for _, r := range rs {
			alloc += int(r.Count) - int(r.FreeCount)
		}
	}
	if alloc != len(walked) {
		t.Errorf("chunks list %d allocated inodes, the walk visited %d", alloc, len(walked))
	}
	rec.mu.Lock()
	reads := rec.reads
	rec.mu.Unlock()
	for _, rd := range reads {
		if inobt[rd[0]] && rd[1]-rd[0] == int64(sb.BlockSize) {
			continue
		}
		for _, h := range holes {
			if rd[0] < h[1] && h[0] < rd[1] {
				t.Fatalf("read of bytes %d..%d overlaps sparse hole %d..%d", rd[0], rd[1], h[0], h[1])
			}
		}
	}
	// An inode number inside a hole is valid but not allocated.
	for ag, rs := range recs {
		for _, r := range rs {
			for i := 0; i < 64; i++ {
				if r.IsHole(i) {
					ino := sb.AGInoToIno(ag, r.StartIno+uint32(i))
					if ok, err := fs.InodeAllocated(ino); ok || err != nil {
						t.Errorf("inode %d in a sparse hole: allocated %v, %v", ino, ok, err)
					}
					return
				}
			}
		}
	}
}

// Errors from the callback and cancellation end the walk at once, and the
// read-ahead goroutine does not outlive it.
func TestWalkInodesStop(t *testing.T) {
	im := iwBuild(t, "600m", []string{"-d", "agcount=4"}, 4, 300, nil)
	fs, err := xfs.Open(im.img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	before := runtime.NumGoroutine()
	stop := errors.New("stop here")
	n := 0
	err = fs.WalkInodes(context.Background(), func(uint64, []byte) error {
		n++
		if n == 100 {
			return stop
		}
		return nil
	})
	if err != stop || n != 100 {
		t.Errorf("callback error: %v after %d inodes", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = fs.WalkInodes(ctx, func(uint64, []byte) error {
		n++
		if n == 50 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 50+64*16 {
		t.Errorf("cancelled walk: %v after %d inodes", err, n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after the walks, %d before", g, before)
	}

	// Invalid inode numbers are refused as located corruption.
	sb := fs.SB
	for _, ino := range []uint64{0, sb.AGInoToIno(sb.AGCount, 64), sb.AGInoToIno(1, 0), uint64(1) << 62} {
		_, err := fs.InodeRaw(ino)
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.Where != fmt.Sprintf("inode %d", ino) {
			t.Errorf("InodeRaw(%d): %v", ino, err)
		}
	}
}

// A damaged inode B-tree record ends the walk with located corruption.
func TestWalkInodesCorruptRecord(t *testing.T) {
	im := iwBuild(t, "600m", []string{"-d", "agcount=4"}, 2, 200, nil)
	fs, err := xfs.Open(im.img)
	if err != nil {
		t.Fatal(err)
	}
	sb := fs.SB
	root, levels, err := fs.AGBtreeRoot(0, ondisk.InobtMagic)
	if err != nil {
		t.Fatal(err)
	}
	var leaf uint32
	fs.WalkAGBtree(0, root, levels, ondisk.InobtGeom, func(b *xfs.BtreeBlock) error {
		if b.IsLeaf() && leaf == 0 {
			leaf = b.AGBno
		}
		return nil
	})
	fs.Close()
	f, err := os.OpenFile(im.img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(sb.AGBToDaddr(0, leaf)) << ondisk.BBShift
	b := make([]byte, sb.BlockSize)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[ondisk.ShortHdrSize+7] += 1 // record 0: sparse-form freecount
	ondisk.SealBtreeBlock(b, false)
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fs, err = xfs.Open(im.img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	err = fs.WalkInodes(context.Background(), func(uint64, []byte) error { return nil })
	var ce *ondisk.CorruptError
	if !errors.As(err, &ce) || ce.Field != "freecount" || !strings.HasPrefix(ce.Where, "AG 0 inobt chunk") {
		t.Errorf("walk over a bad record: %v", err)
	}
}

// BenchmarkWalkInodes walks a ~50k-inode image (built once, outside the
// timer) and reports inodes per second.
func BenchmarkWalkInodes(b *testing.B) {
	oracle.Require(b, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(b, "2g", "-d", "agcount=4")
	mnt := oracle.Mount(b, img, false)
	oracle.MustBeMounted(b, mnt)
	for d := 0; d < 50; d++ {
		dir := filepath.Join(mnt, fmt.Sprint("d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 1000; i++ {
			f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	}
	oracle.Unmount(b, mnt)
	fs, err := xfs.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		n = 0
		if err := fs.WalkInodes(context.Background(), func(uint64, []byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n < 50000 {
		b.Fatalf("walked %d inodes, want at least 50000", n)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "inodes/s")
}
