package build

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"xfskit/internal/xfs"
)

// sizingTree makes a tree with hard links, a sparse file, symlinks and
// a few hundred entries.
func sizingTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < 300; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%d", i%9))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(p, popPattern(i, i*131), 0o644); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := os.Link(p, filepath.Join(dir, fmt.Sprintf("link%03d", i))); err != nil {
				t.Fatal(err)
			}
		}
		if i%25 == 0 {
			if err := os.Symlink(strings.Repeat("t/", i%400)+"x", filepath.Join(d, fmt.Sprintf("s%03d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 4; i++ {
		if _, err := f.WriteAt(popPattern(int(i), 10000), i<<24); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(1 << 28); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir
}

// TestSizingRunMatchesMkfs: a sizing run allocates exactly what mkfs -p
// then does at that size (free blocks, inodes, data blocks, the sparse
// file's holes), runs on copies of the tree give the same answers as on
// the tree itself, and running again changes nothing.
func TestSizingRunMatchesMkfs(t *testing.T) {
	src := sizingTree(t)
	o := NewOptions()
	o.Proto = src
	s, err := NewSizer(o)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Counts(); c.Files != 301 || c.HardLinks != 30 || c.Symlinks != 12 || c.Sparse != 1 {
		t.Errorf("counts %+v", c)
	}
	const size = 64 << 20
	first := s.Try(size)
	if !first.Fits {
		t.Fatalf("64 MiB: %v", first.Err)
	}
	if again := s.TryAll(size, size); again[0] != first || again[1] != first {
		t.Errorf("a size tried before was run again")
	}
	// Run again for real: on the second copy of the tree, and on the
	// first after another run on it.
	s.trials = nil
	pair := s.TryAll(size/2, size) // size/2 on copy 0, size on copy 1
	s.trials = nil
	for i, tr := range []*Trial{pair[1], s.Try(size)} {
		if tr.FreeAfter != first.FreeAfter || tr.SpaceUsed != first.SpaceUsed || tr.Stats != first.Stats || !reflect.DeepEqual(tr.AGFree, first.AGFree) {
			t.Errorf("run %d at %d bytes differs: %+v vs %+v", i, size, tr, first)
		}
	}
	if !pair[0].Fits && pair[0].Err == nil {
		t.Errorf("a failed run without a reason")
	}

	img := filepath.Join(t.TempDir(), "s.img")
	o = NewOptions()
	o.Target, o.Proto, o.Quiet, o.DataSize = img, src, true, strconv.Itoa(size)
	if _, err := Run(o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if fs.SB.FDBlocks != first.FreeAfter || fs.SB.ICount-fs.SB.IFree != uint64(s.Counts().Inodes)+2 {
		t.Errorf("mkfs -p: %d free blocks, %d inodes in use; sizing run: %d free, tree %d inodes (+2 realtime)",
			fs.SB.FDBlocks, fs.SB.ICount-fs.SB.IFree, first.FreeAfter, s.Counts().Inodes)
	}
	// Every file's blocks, and of the sparse file only its four data
	// ranges (3 blocks each), not its 256 MiB.
	want := uint64(4 * 3)
	for i := 0; i < 300; i++ {
		want += uint64((i*131 + 4095) / 4096)
	}
	if first.Stats.DataBlocks != want {
		t.Errorf("data blocks %d, want %d", first.Stats.DataBlocks, want)
	}
}

// TestSizingBelowMinimum: sizes that cannot be planned or filled fail
// with a reason, and do not disturb later runs.
func TestSizingBelowMinimum(t *testing.T) {
	src := sizingTree(t)
	if err := os.WriteFile(filepath.Join(src, "big"), popPattern(1, 20<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	o := NewOptions()
	o.Proto = src
	s, err := NewSizer(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{1 << 20, 17 << 20} {
		if tr := s.Try(size); tr.Fits || tr.Err == nil {
			t.Errorf("%d bytes: fits %v, %v", size, tr.Fits, tr.Err)
		}
	}
	if tr := s.Try(64 << 20); !tr.Fits {
		t.Errorf("64 MiB after failed runs: %v", tr.Err)
	}
}

// TestScanWorkersAgree: the tree is the same whatever the number of
// scanning goroutines, and so is the first error in walk order.
func TestScanWorkersAgree(t *testing.T) {
	src := sizingTree(t)
	one, err := popScan(src, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{2, 8} {
		many, err := popScan(src, w)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := dumpTree(one), dumpTree(many); a != b {
			t.Fatalf("%d workers give another tree:\n%s\nvs\n%s", w, b, a)
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	// Devices XFS cannot store (minor above 2^18-1) are errors; the
	// first in walk order is the one reported.
	for _, p := range []string{"d3/zz-dev", "d7/aa-dev", "d1/f001x"} {
		if err := unix.Mknod(filepath.Join(src, p), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 300000))); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []int{1, 2, 8} {
		for i := 0; i < 5; i++ {
			_, err := popScan(src, w)
			if err == nil || !strings.Contains(err.Error(), "d1/f001x") {
				t.Fatalf("%d workers: %v, want the error of d1/f001x", w, err)
			}
		}
	}
}

// dumpTree prints everything the scan decides, in walk order.
func dumpTree(t *popTree) string {
	var b strings.Builder
	fmt.Fprintf(&b, "inodes %d dirs %d entries %d data %d meta %d warnings %q\n", t.inodes, t.dirs, t.entries, t.dataSize, t.meta, t.warnings)
	walkPop(t.root, func(n, parent *popNode) error {
		owner := ""
		if n.inode != nil {
			owner = n.inode.src
		}
		fmt.Fprintf(&b, "%s mode %o size %d blocks %d nlink %d subdirs %d target %q xattrs %d owner %q\n",
			n.src, n.mode, n.size, n.blocks, n.nlink, n.subdirs, n.target, len(n.xattrs), owner)
		return nil
	})
	return b.String()
}

// TestAutoSizeIsMkfsChoice: AutoSize is the size mkfs -p picks without
// -d size=.
func TestAutoSizeIsMkfsChoice(t *testing.T) {
	src := sizingTree(t)
	o := NewOptions()
	o.Proto = src
	s, err := NewSizer(o)
	if err != nil {
		t.Fatal(err)
	}
	auto, err := s.AutoSize()
	if err != nil {
		t.Fatal(err)
	}
	o2 := NewOptions()
	img := filepath.Join(t.TempDir(), "auto.img")
	o2.Target, o2.Proto, o2.Quiet = img, src, true
	if _, err := Run(o2, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != auto {
		t.Errorf("mkfs -p picked %v bytes, AutoSize says %d", st, auto)
	}
}

// TestCloneCopiesScanFields: a copy of the tree has every field the scan
// set. Copying names them one by one (a run on the tree may be writing
// the others meanwhile), so a new field must be added there too.
func TestCloneCopiesScanFields(t *testing.T) {
	// Set by runs (populate clears them first); links and kids are copied
	// as structure.
	skip := map[string]bool{"ino": true, "agno": true, "ext": true, "flags": true, "flags2": true,
		"projid": true, "extsize": true, "cowextsize": true, "kids": true, "inode": true}
	n := &popNode{}
	v := reflect.ValueOf(n).Elem()
	var fill func(f reflect.Value)
	fill = func(f reflect.Value) {
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int, reflect.Int32, reflect.Int64:
			f.SetInt(7)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(7)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Struct:
			for i := 0; i < f.NumField(); i++ {
				fill(f.Field(i))
			}
		}
	}
	typ := v.Type()
	for i := 0; i < v.NumField(); i++ {
		if !skip[typ.Field(i).Name] {
			fill(v.Field(i))
		}
	}
	c, _ := (&popTree{root: n}).clone(&popSim{sparse: map[*popNode][][2]int64{}})
	got := reflect.ValueOf(c.root).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := typ.Field(i).Name
		a := reflect.NewAt(v.Field(i).Type(), unsafe.Pointer(v.Field(i).UnsafeAddr())).Elem().Interface()
		b := reflect.NewAt(got.Field(i).Type(), unsafe.Pointer(got.Field(i).UnsafeAddr())).Elem().Interface()
		if !skip[name] && !reflect.DeepEqual(a, b) {
			t.Errorf("popNode.%s not copied: %v, copy %v", name, a, b)
		}
	}
}
