package estimate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"xfskit/internal/build"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
)

// source returns an empty directory for a test tree: a tmpfs when root
// (large attributes, no host filesystem preallocation), else a temporary
// directory.
func source(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	oracle.Run(t, "mount", "-t", "tmpfs", "-o", "size=512m,mode=0755", "tmpfs", dir)
	t.Cleanup(func() { oracle.Unmount(t, dir) })
	oracle.MustBeMounted(t, dir)
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*131 + i*7 + i/509)
	}
	return b
}

// Tree builders: each fills dir with one kind of content.
var trees = map[string]func(t *testing.T, dir string){
	// Many small files, 0 to 6 KiB, in 40 directories.
	"small": func(t *testing.T, dir string) {
		for i := 0; i < 4000; i++ {
			d := filepath.Join(dir, fmt.Sprintf("d%02d", i%40))
			must(t, os.MkdirAll(d, 0o755))
			must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("file-%05d", i)), pattern(i, (i*997)%6001), 0o644))
		}
	},
	// Big sparse files next to a dense one.
	"sparse": func(t *testing.T, dir string) {
		f, err := os.Create(filepath.Join(dir, "sparse-1g"))
		must(t, err)
		for i := int64(0); i < 5; i++ {
			_, err := f.WriteAt(pattern(int(i), 65536), i*200<<20)
			must(t, err)
		}
		must(t, f.Truncate(1<<30))
		must(t, f.Close())
		f, err = os.Create(filepath.Join(dir, "sparse-5g"))
		must(t, err)
		_, err = f.WriteAt(pattern(9, 100000), 4<<30)
		must(t, err)
		must(t, f.Truncate(5<<30+123))
		must(t, f.Close())
		must(t, os.WriteFile(filepath.Join(dir, "dense"), pattern(3, 8<<20+5), 0o644))
	},
	// An 80-level chain of directories, two files at each level.
	"deep": func(t *testing.T, dir string) {
		d := dir
		for i := 0; i < 80; i++ {
			d = filepath.Join(d, fmt.Sprintf("level-%02d", i))
			must(t, os.Mkdir(d, 0o755))
			must(t, os.WriteFile(filepath.Join(d, "a"), pattern(i, 100), 0o644))
			must(t, os.WriteFile(filepath.Join(d, "b"), pattern(i, 5000), 0o644))
		}
	},
	// One directory of 20,000 entries (a node-form directory).
	"bigdir": func(t *testing.T, dir string) {
		d := filepath.Join(dir, "big")
		must(t, os.Mkdir(d, 0o755))
		for i := 0; i < 20000; i++ {
			must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("entry-with-a-longer-name-%06d", i)), nil, 0o644))
		}
	},
	// Attributes in every form: shortform, leaf (many), remote values.
	"xattrs": func(t *testing.T, dir string) {
		for i := 0; i < 200; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
			must(t, os.WriteFile(p, pattern(i, 10), 0o644))
			n := []int{2, 40, 1}[i%3]
			for j := 0; j < n; j++ {
				size := 30
				if n == 1 {
					size = 3000 // remote value
				}
				must(t, unix.Setxattr(p, fmt.Sprintf("user.attr-%02d", j), pattern(j, size), 0))
			}
		}
	},
	// Short (inline) and 1023-byte (remote) symlinks.
	"symlinks": func(t *testing.T, dir string) {
		for i := 0; i < 700; i++ {
			target := fmt.Sprintf("../target/%d", i)
			if i%4 == 0 {
				target = strings.Repeat("x/", 511) + "y"
			}
			must(t, os.Symlink(target, filepath.Join(dir, fmt.Sprintf("l%03d", i))))
		}
	},
	// Files with three links each, in three directories.
	"hardlinks": func(t *testing.T, dir string) {
		for _, d := range []string{"a", "b", "c"} {
			must(t, os.Mkdir(filepath.Join(dir, d), 0o755))
		}
		for i := 0; i < 300; i++ {
			p := filepath.Join(dir, "a", fmt.Sprintf("f%03d", i))
			must(t, os.WriteFile(p, pattern(i, 3000), 0o644))
			must(t, os.Link(p, filepath.Join(dir, "b", fmt.Sprintf("g%03d", i))))
			must(t, os.Link(p, filepath.Join(dir, "c", fmt.Sprintf("h%03d", i))))
		}
	},
}

// mixed builds a little of everything, for the geometry matrix.
func mixed(t *testing.T, dir string) {
	for _, name := range []string{"small", "sparse", "deep", "xattrs", "symlinks", "hardlinks"} {
		d := filepath.Join(dir, name)
		must(t, os.Mkdir(d, 0o755))
		trees[name](t, d)
	}
	d := filepath.Join(dir, "dir3000")
	must(t, os.Mkdir(d, 0o755))
	for i := 0; i < 3000; i++ {
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("e%05d", i)), nil, 0o644))
	}
}

func options(t *testing.T, subopts []string) *build.Options {
	t.Helper()
	o := build.NewOptions()
	for _, s := range subopts {
		if err := o.ParseSubopts(s[0], s[2:]); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// mkfsP runs mkfs -p src -d size=size into a new image.
func mkfsP(t *testing.T, src string, subopts []string, size int64) (string, error) {
	t.Helper()
	o := options(t, subopts)
	img := filepath.Join(t.TempDir(), "e.img")
	o.Target, o.Proto, o.Quiet = img, src, true
	o.DataSize = strconv.FormatInt(size, 10)
	_, err := build.Run(o, io.Discard, io.Discard)
	return img, err
}

var xfsEstimateRE = regexp.MustCompile(`will take about ([0-9.]+) megabytes`)

// xfsEstimate runs xfs_estimate on dir with the block size given.
func xfsEstimate(t *testing.T, dir string, bs int) float64 {
	if _, err := exec.LookPath("xfs_estimate"); err != nil {
		return -1
	}
	out, err := exec.Command("xfs_estimate", "-b", strconv.Itoa(bs), dir).Output()
	m := xfsEstimateRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Logf("xfs_estimate %s: %v %q", dir, err, out)
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// checkEstimate proves an estimate enough and tight, and compares it
// with xfs_estimate. Enough: mkfs -p at exactly that size succeeds, the
// image passes xfs_repair -n, and its free space is what the sizing run
// predicted. Tight: 5% less fails, unless that is below the smallest
// filesystem the options allow (a single AG, or too small to plan).
func checkEstimate(t *testing.T, src string, subopts []string) string {
	t.Helper()
	r, err := Estimate(Options{Build: options(t, subopts)}, src)
	if err != nil {
		t.Fatalf("estimate %v: %v", subopts, err)
	}
	bs := int64(r.Geometry.BlockSize)
	if r.Bytes%bs != 0 || r.Bytes <= 0 {
		t.Fatalf("estimate %v: %d bytes, not a whole number of %d-byte blocks", subopts, r.Bytes, bs)
	}
	img, err := mkfsP(t, src, subopts, r.Bytes)
	if err != nil {
		t.Fatalf("%v: mkfs -p at the estimate (%d bytes) fails: %v", subopts, r.Bytes, err)
	}
	oracle.RequireRepairClean(t, img)
	fs, err := xfs.Open(img)
	must(t, err)
	free, icount := fs.SB.FDBlocks, fs.SB.ICount
	fs.Close()
	if free != r.Trial.FreeAfter {
		t.Errorf("%v: image has %d free blocks, the sizing run said %d", subopts, free, r.Trial.FreeAfter)
	}
	os.Remove(img)

	less := r.Bytes * 95 / 100 / bs * bs
	tight := "fails"
	o := options(t, subopts)
	o.DataSize = strconv.FormatInt(less, 10)
	g, perr := build.Plan(o, build.TargetInfo{Path: "x"})
	switch {
	case perr != nil || g.AGCount < 2 && !o.IsSet('d', "agcount"):
		tight = "floor" // the smallest size the options allow
	default:
		img, err := mkfsP(t, src, subopts, less)
		if err == nil {
			t.Errorf("%v: mkfs -p fits at %d bytes, 5%% under the estimate %d", subopts, less, r.Bytes)
			tight = "FITS"
		} else if !strings.Contains(err.Error(), "space") {
			t.Errorf("%v: mkfs -p at 95%% of the estimate fails, but not for lack of space: %v", subopts, err)
		}
		os.Remove(img)
	}
	// xfs_estimate's figure, and whether mkfs -p fits in it.
	theirs := xfsEstimate(t, src, int(bs))
	theirsFits := "-"
	if theirs > 0 {
		img, err := mkfsP(t, src, subopts, int64(theirs*mib)/bs*bs)
		theirsFits = fmt.Sprint(err == nil)
		os.Remove(img)
	}
	return fmt.Sprintf("%-28s ours %9.1f MiB (%d B, %d runs, %d free blocks, %d inodes), 95%%: %s; mkfs -p auto %.1f MiB fits=%v; xfs_estimate %.1f MiB fits=%s",
		strings.Join(subopts, " "), r.Megabytes(), r.Bytes, r.Trials, r.Trial.FreeAfter, icount,
		tight, float64(r.AutoBytes)/mib, r.AutoFits, theirs, theirsFits)
}

// TestEstimateTrees: for each kind of tree the estimate is enough and
// tight (see checkEstimate). A 40 MiB file lifts each tree above the
// smallest two-AG filesystem (32 MiB), where 5% less is still possible.
func TestEstimateTrees(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	var report []string
	for _, name := range []string{"small", "sparse", "deep", "bigdir", "xattrs", "symlinks", "hardlinks"} {
		t.Run(name, func(t *testing.T) {
			src := source(t)
			trees[name](t, src)
			must(t, os.WriteFile(filepath.Join(src, "ballast"), pattern(7, 40<<20), 0o644))
			line := checkEstimate(t, src, nil)
			t.Log(line)
			report = append(report, name+": "+line)
		})
	}
	t.Log("estimates:\n" + strings.Join(report, "\n"))
}

// TestEstimateGeometries: one mixed tree, estimated for many geometries.
func TestEstimateGeometries(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	src := source(t)
	mixed(t, src)
	var report []string
	for _, g := range [][]string{
		{"b:size=1024"},
		nil,
		{"b:size=65536"},
		{"i:size=2048"},
		{"b:size=65536", "i:size=2048"},
		{"m:rmapbt=1"},
		{"n:size=16384", "d:agcount=7"},
	} {
		t.Run(strings.Join(g, ","), func(t *testing.T) {
			line := checkEstimate(t, src, g)
			t.Log(line)
			report = append(report, line)
		})
	}
	t.Log("estimates:\n" + strings.Join(report, "\n"))
}

// TestEstimateRoundAndMargin: -H rounds up to whole MiB and still fits;
// a margin leaves that much free.
func TestEstimateRoundAndMargin(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	src := source(t)
	trees["small"](t, src)
	exact, err := Estimate(Options{}, src)
	must(t, err)
	r, err := Estimate(Options{Round: mib}, src)
	must(t, err)
	if r.Bytes%mib != 0 || r.Bytes < exact.Bytes || r.Bytes > exact.Bytes+8*mib {
		t.Errorf("rounded estimate %d bytes, exact %d", r.Bytes, exact.Bytes)
	}
	if got := HumanSize(r.Bytes); got != fmt.Sprintf("%dm", r.Bytes>>20) && !strings.HasSuffix(got, "g") {
		t.Errorf("HumanSize(%d) = %q", r.Bytes, got)
	}
	if _, err := mkfsP(t, src, nil, r.Bytes); err != nil {
		t.Errorf("mkfs -p at the rounded estimate %s: %v", HumanSize(r.Bytes), err)
	}
	m, err := Estimate(Options{Margin: 0.25}, src)
	must(t, err)
	used := m.Trial.Used()
	if m.Trial.FreeAfter < used/4 || m.Bytes <= exact.Bytes {
		t.Errorf("25%% margin: %d bytes with %d of %d blocks free; exact %d", m.Bytes, m.Trial.FreeAfter, used, exact.Bytes)
	}
	img, err := mkfsP(t, src, nil, m.Bytes)
	must(t, err)
	fs, err := xfs.Open(img)
	must(t, err)
	defer fs.Close()
	if fs.SB.FDBlocks < used/4 {
		t.Errorf("25%% margin: the image has %d free blocks for %d used", fs.SB.FDBlocks, used)
	}
}

// TestEstimateBadInput: missing and non-directory sources are errors
// that name the path; so are bad geometry options.
func TestEstimateBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(dir, "missing"), "missing: no such file"},
		{file, "file: not a directory"},
	} {
		_, err := Estimate(Options{}, c.dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Estimate(%s) = %v, want an error with %q", c.dir, err, c.want)
		}
	}
	_, err := Estimate(Options{Build: options(t, []string{"b:size=2048", "i:size=2048"})}, dir)
	var ue *build.UsageError
	if err == nil || !errors.As(err, &ue) {
		t.Errorf("impossible geometry: %v, want a usage error", err)
	}
	// An unreadable directory inside the tree (not for root, who reads
	// everything; cmd/estimate tests that as another user).
	if os.Geteuid() != 0 {
		bad := filepath.Join(dir, "locked")
		must(t, os.Mkdir(bad, 0))
		defer os.Chmod(bad, 0o755)
		if _, err := Estimate(Options{}, dir); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("unreadable directory: %v", err)
		}
	}
}

// TestEstimateMatchesMkfsAuto: mkfs -p without -d size= and the estimate
// use the same scan and sizing function: the size estimate reports for
// mkfs's own choice is the size mkfs makes.
func TestEstimateMatchesMkfsAuto(t *testing.T) {
	src := source(t)
	trees["hardlinks"](t, src)
	r, err := Estimate(Options{}, src)
	must(t, err)
	o := build.NewOptions()
	img := filepath.Join(t.TempDir(), "auto.img")
	o.Target, o.Proto, o.Quiet = img, src, true
	var stderr bytes.Buffer
	if _, err := build.Run(o, io.Discard, &stderr); err != nil {
		t.Fatalf("mkfs -p: %v\n%s", err, stderr.String())
	}
	st, err := os.Stat(img)
	must(t, err)
	if st.Size() != r.AutoBytes || !r.AutoFits {
		t.Errorf("mkfs -p made %d bytes; estimate says it picks %d (fits %v)", st.Size(), r.AutoBytes, r.AutoFits)
	}
	if r.Bytes > r.AutoBytes {
		t.Errorf("estimate %d above mkfs -p's own choice %d, which fits", r.Bytes, r.AutoBytes)
	}
}
