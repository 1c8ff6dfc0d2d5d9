package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// TestByLevels: every directory once, parents before children top-down,
// children before parents deepest first, and wide depths in parallel.
func TestByLevels(t *testing.T) {
	// A breadth-first tree: the root's 3 children have 100 children each
	// (a depth wide enough to be shared out), 2 of which have one more.
	var dirs []*dirNode
	byIno := map[uint64]*dirNode{}
	add := func(parent uint64, depth int) *dirNode {
		d := &dirNode{ino: uint64(len(dirs) + 2), parent: parent, depth: depth}
		dirs = append(dirs, d)
		byIno[d.ino] = d
		return d
	}
	var mid, low []*dirNode
	for range 3 {
		mid = append(mid, add(1, 1))
	}
	for _, m := range mid {
		for range 100 {
			low = append(low, add(m.ino, 2))
		}
	}
	for _, l := range low[:2] {
		add(l.ino, 3)
	}
	for _, up := range []bool{false, true} {
		t.Run(fmt.Sprint("up=", up), func(t *testing.T) {
			var mu sync.Mutex
			pos := map[uint64]int{}
			var running, most atomic.Int32
			byLevels(dirs, up, func() *dirCache { return newDirCache(nil, 1, nil) }, func(c *dirCache, d *dirNode) {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				mu.Lock()
				defer mu.Unlock()
				if _, ok := pos[d.ino]; ok {
					t.Errorf("directory %d twice", d.ino)
				}
				pos[d.ino] = len(pos)
			})
			if len(pos) != len(dirs) {
				t.Fatalf("%d of %d directories", len(pos), len(dirs))
			}
			for _, d := range dirs {
				p := byIno[d.parent]
				if p == nil {
					continue
				}
				if before := pos[p.ino] < pos[d.ino]; before == up {
					t.Errorf("up=%v: directory %d at %d, its parent %d at %d", up, d.ino, pos[d.ino], p.ino, pos[p.ino])
				}
			}
			// Not a guarantee (the scheduler decides), so only logged.
			t.Logf("at most %d directories at once", most.Load())
		})
	}
}

// TestWideTree restores a tree wide enough for the parallel paths: depths
// of hundreds of directories, a directory of many batches, large files,
// hard links across directories, restrictive directory modes, and a
// writeback every few hundred KiB.
func TestWideTree(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	b := &builder{t: t, root: src}
	for i := range 120 {
		b.mkdir(fmt.Sprintf("d%03d/x/y", i), 0o755)
		b.mkdir(fmt.Sprintf("d%03d/z", i), 0o755)
	}
	for i := range 120 {
		d := fmt.Sprintf("d%03d", i)
		for k := range i % 5 {
			b.write(fmt.Sprintf("%s/f%d", d, k), pattern(i*10+k, 100*k+i))
		}
		b.write(d+"/x/y/deep", pattern(i, 3000))
		if i%17 == 0 {
			b.write(d+"/z/large", pattern(i, smallFile+1+i*1000))
			b.must(os.Link(b.p(d+"/x/y/deep"), b.p(d+"/z/link")))
			b.must(os.Link(b.p(d+"/x/y/deep"), b.p(fmt.Sprintf("d%03d/z/cross", (i+1)%120))))
		}
	}
	b.mkdir("many", 0o755)
	for k := range 5*batchJobs + 3 {
		b.write(fmt.Sprintf("many/m%04d", k), pattern(k, k%700))
	}
	b.write("many/huge", pattern(9, 3*stream.MaxDataPiece+17))
	b.sparse("many/tail-hole", 2<<20, map[int64][]byte{0: pattern(8, 5000)})
	setDirTimes(t, src)
	// Modes that keep restore out once set: only deepest first works
	// for a restore that is not root (as root, they are checked all the
	// same).
	for _, d := range []string{"d007/x/y", "d007/x", "d008", "many"} {
		b.must(os.Chmod(b.p(d), 0o500))
	}
	defer filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	for _, streams := range []int{1, 2} {
		t.Run(fmt.Sprint("streams=", streams), func(t *testing.T) {
			o := filepath.Join(out, fmt.Sprint(streams))
			os.Mkdir(o, 0o755)
			d := dumpDir(t, src, o, dumpOpts{streams: streams, compression: stream.CompressZstd})
			dest := filepath.Join(t.TempDir(), "dest")
			var writebacks atomic.Int32
			opts := Options{Sources: d.files, Dest: dest, flushEvery: 256 << 10, hook: func(e string) {
				if e == "writeback" {
					writebacks.Add(1)
				}
			}}
			res := runRestore(t, opts)
			requireOK(t, res)
			checkTimes(t, dest, d.meta)
			sameTree(t, src, dest)
			if writebacks.Load() == 0 {
				t.Error("no writeback started")
			}
			if res.Links != 2*8 {
				t.Errorf("%d hard links made, want %d", res.Links, 2*8)
			}
		})
	}
}

// TestSmallRestoreIsDurable: a restore far below the background writeback
// threshold still ends with one syncfs of the destination, so its data is
// on disk when it returns.
func TestSmallRestoreIsDurable(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	fullTree(t, src)
	d := dumpDir(t, src, out, dumpOpts{streams: 1})
	var syncs, writebacks atomic.Int32
	res := runRestore(t, Options{Sources: d.files, Dest: filepath.Join(tmp, "dest"), hook: func(e string) {
		switch e {
		case "syncfs":
			syncs.Add(1)
		case "writeback":
			writebacks.Add(1)
		}
	}})
	requireOK(t, res)
	if syncs.Load() != 1 || writebacks.Load() != 0 {
		t.Errorf("small restore: %d final syncfs (want 1), %d background writebacks (want 0)", syncs.Load(), writebacks.Load())
	}
}
