package xfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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

// dtKEntry is what the kernel shows for a directory entry.
type dtKEntry struct {
	ino   uint64
	ftype uint8
}

// dtDir is a directory made through the kernel with its kernel listing.
type dtDir struct {
	ino  uint64
	want map[string]dtKEntry
}

// dtFixture is an image filled through a loop mount, then opened by the
// engine.
type dtFixture struct {
	fs   *xfs.FS
	img  string
	dirs map[string]dtDir
}

func dtMust(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dtStatIno(t testing.TB, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	dtMust(t, syscall.Lstat(p, &st))
	return st.Ino
}

// dtListKernel lists a directory through the mount, "." and ".." included.
func dtListKernel(t testing.TB, dir string) map[string]dtKEntry {
	t.Helper()
	f, err := os.Open(dir)
	dtMust(t, err)
	names, err := f.Readdirnames(-1)
	f.Close()
	dtMust(t, err)
	m := map[string]dtKEntry{}
	for _, n := range append(names, ".", "..") {
		var st syscall.Stat_t
		dtMust(t, syscall.Lstat(filepath.Join(dir, n), &st))
		m[n] = dtKEntry{st.Ino, ondisk.DirFTypeFromMode(uint16(st.Mode))}
	}
	return m
}

func dtTouch(t testing.TB, dir string, names []string) {
	t.Helper()
	dtMust(t, os.MkdirAll(dir, 0o755))
	for _, n := range names {
		f, err := os.OpenFile(filepath.Join(dir, n), os.O_CREATE|os.O_WRONLY, 0o644)
		dtMust(t, err)
		f.Close()
	}
}

func dtNames(prefix string, n, width int) []string {
	out := make([]string, n)
	for i := range out {
		s := fmt.Sprintf("%s%d_", prefix, i)
		if len(s) < width {
			s += strings.Repeat("z", width-len(s))
		}
		out[i] = s
	}
	return out
}

// dtCollisions returns 2^bits distinct names with one hash: flipping bit 0
// of byte k together with bit 7 of byte k+1 leaves the hash unchanged, as
// both land on the same bit after the per-byte 7-bit rotations.
func dtCollisions(base string, bits int) []string {
	var out []string
	for mask := 0; mask < 1<<bits; mask++ {
		b := []byte(base)
		for k := 0; k < bits; k++ {
			if mask&(1<<k) != 0 {
				b[k] ^= 0x01
				b[k+1] ^= 0x80
			}
		}
		out = append(out, string(b))
	}
	return out
}

type dtSpec struct {
	name string
	fill func(t testing.TB, dir string)
}

// dtDirSpecs are the directories every geometry gets; big adds the
// 40000-entry directory whose data fork becomes a bmbt.
func dtDirSpecs(big bool, nodeCount int) []dtSpec {
	specs := []dtSpec{
		{"sf", func(t testing.TB, d string) {
			dtTouch(t, d, []string{"reg"})
			dtMust(t, os.Mkdir(filepath.Join(d, "sub"), 0o755))
			dtMust(t, os.Symlink("reg", filepath.Join(d, "sym")))
			dtMust(t, syscall.Mkfifo(filepath.Join(d, "fifo"), 0o644))
			dtMust(t, syscall.Mknod(filepath.Join(d, "chr"), syscall.S_IFCHR|0o644, 1<<8|3))
			dtMust(t, syscall.Mknod(filepath.Join(d, "blk"), syscall.S_IFBLK|0o644, 8<<8|1))
			dtMust(t, syscall.Mknod(filepath.Join(d, "sock"), syscall.S_IFSOCK|0o644, 0))
		}},
		{"empty", func(t testing.TB, d string) { dtMust(t, os.Mkdir(d, 0o755)) }},
		{"block", func(t testing.TB, d string) { dtTouch(t, d, dtNames("f", 60, 0)) }},
		{"leaf", func(t testing.TB, d string) {
			names := dtNames("leaf_entry_", 400, 0)
			dtTouch(t, d, names)
			for i := 0; i < len(names); i += 7 {
				dtMust(t, os.Remove(filepath.Join(d, names[i])))
			}
		}},
		{"long800", func(t testing.TB, d string) { dtTouch(t, d, dtNames("a_long_file_name_for_the_leaf_test_", 800, 100)) }},
		{"node", func(t testing.TB, d string) {
			names := dtNames("node_directory_entry_with_a_longer_name_", nodeCount, 60)
			dtTouch(t, d, names)
			// Remove a contiguous run (empties data blocks: holes in the
			// data space) and every 5th (stale leaf entries).
			for i := range names {
				if i > nodeCount/3 && i < nodeCount/2 || i%5 == 1 {
					dtMust(t, os.Remove(filepath.Join(d, names[i])))
				}
			}
		}},
		{"odd", func(t testing.TB, d string) {
			var names []string
			for i := 0; i < 60; i++ {
				names = append(names, strings.Repeat(string(rune('a'+i%26)), 255-i%3)[:255-i%3])
				names = append(names, fmt.Sprintf("ünïcødé-名前-ファイル-%d-\x01\x7f\xfe", i))
			}
			dtTouch(t, d, names)
		}},
		{"collide", func(t testing.TB, d string) {
			dtTouch(t, d, dtCollisions("hashcollisions", 11))
			dtTouch(t, d, dtNames("plain_", 300, 0))
		}},
	}
	if big {
		specs = append(specs, dtSpec{"huge", func(t testing.TB, d string) {
			dtTouch(t, d, dtNames("entry_number_padding_text_", 40000, 0))
		}})
	}
	return specs
}

// dtBuild formats an image, fills it through a mount, records the kernel's
// listing of every directory, unmounts and opens the image.
func dtBuild(t *testing.T, opts []string, specs []dtSpec, extra func(mnt string)) *dtFixture {
	t.Helper()
	return dtBuildSized(t, "1g", opts, specs, extra)
}

func dtBuildSized(t *testing.T, size string, opts []string, specs []dtSpec, extra func(mnt string)) *dtFixture {
	t.Helper()
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, size, opts...)
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	fx := &dtFixture{img: img, dirs: map[string]dtDir{}}
	for _, s := range specs {
		s.fill(t, filepath.Join(mnt, s.name))
	}
	if extra != nil {
		extra(mnt)
	}
	for _, s := range append(specs, dtSpec{name: "."}) {
		p := filepath.Join(mnt, s.name)
		fx.dirs[s.name] = dtDir{dtStatIno(t, p), dtListKernel(t, p)}
	}
	// Through the mount, the root's ".." is the host directory above it.
	root := fx.dirs["."]
	root.want[".."] = root.want["."]
	oracle.Unmount(t, mnt)
	var err error
	fx.fs, err = xfs.Open(img)
	dtMust(t, err)
	t.Cleanup(func() { fx.fs.Close() })
	return fx
}

var dtGeoms = []struct {
	name      string
	opts      []string
	big       bool
	nodeCount int
	forms     []string // directory forms that must appear
}{
	{"4k", nil, true, 6000, []string{"shortform", "block", "leaf", "node", "btree"}},
	{"1k-blocks", []string{"-b", "size=1024"}, false, 6000, []string{"shortform", "block", "leaf", "node", "btree"}},
	{"64k-dirblocks", []string{"-n", "size=65536"}, false, 12000, []string{"shortform", "block", "leaf", "node"}},
	// sparse=0: the superblock verifier rejects spino_align 0, which
	// mkfs.xfs writes for 64 KiB blocks with sparse inodes.
	{"64k-blocks", []string{"-b", "size=65536", "-i", "sparse=0"}, false, 12000, []string{"shortform", "block", "leaf", "node"}},
}

// dtForm names the form of a directory: shortform, block, leaf or node,
// and additionally reports whether the data fork is a bmbt.
func (fx *dtFixture) dtForm(t *testing.T, ip *xfs.Inode) (string, bool) {
	if ip.Format == ondisk.FmtLocal {
		return "shortform", false
	}
	_, path, _, _ := fx.fs.LookupWithStats(ip, []byte("\x01no-such-name"))
	return path, ip.Format == ondisk.FmtBtree
}

// ReadDir, DirSeq and Lookup on every directory form and geometry,
// compared with the kernel's readdir + lstat of the same directories.
func TestDirAgainstKernel(t *testing.T) {
	for _, gm := range dtGeoms {
		t.Run(gm.name, func(t *testing.T) {
			fx := dtBuild(t, gm.opts, dtDirSpecs(gm.big, gm.nodeCount), nil)
			forms := map[string]bool{}
			names := make([]string, 0, len(fx.dirs))
			for n := range fx.dirs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, name := range names {
				d := fx.dirs[name]
				t.Run(name, func(t *testing.T) {
					ip, err := fx.fs.Inode(d.ino)
					dtMust(t, err)
					form, btree := fx.dtForm(t, ip)
					forms[form] = true
					if btree {
						forms["btree"] = true
					}
					t.Logf("%s: %d entries, %s form, data fork %s", name, len(d.want), form, ondisk.FormatName(ip.Format))
					fx.checkReadDir(t, ip, d)
					fx.checkLookups(t, ip, d, form)
				})
			}
			for _, w := range gm.forms {
				if !forms[w] {
					t.Errorf("no %s directory was exercised (saw %v)", w, forms)
				}
			}
		})
	}
}

func (fx *dtFixture) checkReadDir(t *testing.T, ip *xfs.Inode, d dtDir) {
	ents, err := fx.fs.ReadDir(ip)
	dtMust(t, err)
	if len(ents) < 2 || string(ents[0].Name) != "." || string(ents[1].Name) != ".." {
		t.Fatalf("ReadDir does not start with . and ..: %d entries", len(ents))
	}
	got := map[string]dtKEntry{}
	for _, e := range ents {
		if _, dup := got[string(e.Name)]; dup {
			t.Errorf("duplicate entry %q", e.Name)
		}
		got[string(e.Name)] = dtKEntry{e.Ino, e.Type}
	}
	if len(got) != len(d.want) {
		t.Errorf("ReadDir: %d entries, kernel %d", len(got), len(d.want))
	}
	for n, w := range d.want {
		if g, ok := got[n]; !ok {
			t.Errorf("ReadDir: %q missing", n)
		} else if g != w {
			t.Errorf("ReadDir: %q = ino %d type %d, kernel ino %d type %d", n, g.ino, g.ftype, w.ino, w.ftype)
		}
	}
	// The streaming form yields the same sequence and can stop early.
	i := 0
	for e, err := range fx.fs.DirSeq(ip) {
		dtMust(t, err)
		if i >= len(ents) || !bytes.Equal(e.Name, ents[i].Name) || e.Ino != ents[i].Ino {
			t.Fatalf("DirSeq entry %d = %q, ReadDir has %q", i, e.Name, ents[i].Name)
		}
		i++
	}
	if i != len(ents) {
		t.Errorf("DirSeq gave %d entries, ReadDir %d", i, len(ents))
	}
	n := 0
	for range fx.fs.DirSeq(ip) {
		if n++; n == 2 {
			break
		}
	}
	stop := errors.New("stop")
	if err := fx.fs.WalkDir(ip, func(xfs.DirEntry) error { return stop }); err != stop {
		t.Errorf("WalkDir returned %v, want the callback's error", err)
	}
}

func (fx *dtFixture) checkLookups(t *testing.T, ip *xfs.Inode, d dtDir, form string) {
	names := make([]string, 0, len(d.want))
	for n := range d.want {
		names = append(names, n)
	}
	sort.Strings(names)
	// Every name in small directories, every 7th in large ones.
	step := 1
	if len(names) > 1000 {
		step = 7
	}
	maxBlocks := 0
	for i := 0; i < len(names); i += step {
		n := names[i]
		e, path, blocks, err := fx.fs.LookupWithStats(ip, []byte(n))
		if err != nil {
			t.Fatalf("Lookup(%q): %v", n, err)
		}
		if w := d.want[n]; e.Ino != w.ino || e.Type != w.ftype || string(e.Name) != n {
			t.Errorf("Lookup(%q) = %q ino %d type %d, kernel ino %d type %d", n, e.Name, e.Ino, e.Type, w.ino, w.ftype)
		}
		if path != form {
			t.Errorf("Lookup(%q) took the %s path in a %s directory", n, path, form)
		}
		maxBlocks = max(maxBlocks, blocks)
	}
	for _, miss := range []string{"no-such-entry", strings.Repeat("q", 255), "reg/", names[len(names)-1] + "x"} {
		if _, ok := d.want[miss]; ok {
			continue
		}
		_, err := fx.fs.Lookup(ip, []byte(miss))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lookup(%q) = %v, want ErrNotExist", miss, err)
		}
	}
	if _, err := fx.fs.Lookup(ip, bytes.Repeat([]byte("x"), 256)); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("256-byte name: %v", err)
	}
	// The hash index bounds the blocks a lookup reads: the node path, the
	// leaves of one hash run and the data blocks of its candidates.
	limit := map[string]int{"shortform": 0, "block": 1, "leaf": 3, "node": 8}[form]
	if d.want["hashcollisions"] != (dtKEntry{}) {
		limit = 1 << 12 // a 2048-name hash run is scanned in full
	}
	if maxBlocks > limit {
		t.Errorf("a lookup in this %s directory read %d blocks (limit %d)", form, maxBlocks, limit)
	}
	t.Logf("lookups: %s path, at most %d blocks", form, maxBlocks)
}

// A long run of equal hashes spanning several leaf blocks: every name of
// the run is found, and lookups follow forward links between leaves.
func TestDirLookupHashRun(t *testing.T) {
	names := dtCollisions("hashcollisions", 11)
	h := ondisk.DAHash([]byte(names[0]))
	for _, n := range names {
		if ondisk.DAHash([]byte(n)) != h {
			t.Fatalf("%q does not collide", n)
		}
	}
	fx := dtBuild(t, []string{"-b", "size=1024"}, []dtSpec{{"collide", func(t testing.TB, d string) {
		dtTouch(t, d, names)
		dtTouch(t, d, dtNames("plain_", 300, 0))
	}}}, nil)
	d := fx.dirs["collide"]
	ip, err := fx.fs.Inode(d.ino)
	dtMust(t, err)
	hops := 0
	for _, n := range names {
		e, path, blocks, err := fx.fs.LookupWithStats(ip, []byte(n))
		if err != nil {
			t.Fatalf("Lookup(%q): %v", n, err)
		}
		if e.Ino != d.want[n].ino {
			t.Fatalf("Lookup(%q) = %d, kernel %d", n, e.Ino, d.want[n].ino)
		}
		if path != "node" {
			t.Fatalf("path %s", path)
		}
		hops = max(hops, blocks)
	}
	// 2048 leaf entries of 8 bytes fill many 1 KiB leaves.
	if hops < 10 {
		t.Errorf("the hash run never crossed leaf blocks (max %d blocks read)", hops)
	}
	miss := []byte(names[0])
	miss[len(miss)-1] ^= 0x80
	miss[len(miss)-2] ^= 0x01
	if ondisk.DAHash(miss) != h {
		t.Fatal("test name does not collide")
	}
	if _, ok := d.want[string(miss)]; !ok {
		if _, err := fx.fs.Lookup(ip, miss); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("colliding missing name: %v", err)
		}
	}
}

// Corrupted directory blocks are reported as located CorruptErrors, never
// panics, and lookups and listings refuse the damaged block.
func TestDirCorruption(t *testing.T) {
	fx := dtBuild(t, nil, []dtSpec{
		{"block", func(t testing.TB, d string) { dtTouch(t, d, dtNames("f", 60, 0)) }},
		{"node", func(t testing.TB, d string) { dtTouch(t, d, dtNames("node_entry_name_", 3000, 40)) }},
	}, nil)
	w, err := os.OpenFile(fx.img, os.O_RDWR, 0)
	dtMust(t, err)
	defer w.Close()
	for _, name := range []string{"block", "node"} {
		ip, err := fx.fs.Inode(fx.dirs[name].ino)
		dtMust(t, err)
		ext, err := fx.fs.Extents(ip, false)
		dtMust(t, err)
		daddr := fx.fs.SB.FSBToDaddr(ext[0].StartBlock)
		orig := make([]byte, 4096)
		_, err = w.ReadAt(orig, int64(daddr)*512)
		dtMust(t, err)
		// magic, blkno, uuid, owner, namelen and tag of ".", block tail
		for _, off := range []int{0, 8, 24, 40, 72, 78, 4095} {
			bad := append([]byte(nil), orig...)
			bad[off] ^= 0x40
			ondisk.SetCRC(bad, ondisk.Dir3CRCOff) // get past the CRC to the field checks
			_, err = w.WriteAt(bad, int64(daddr)*512)
			dtMust(t, err)
			_, err := fx.fs.ReadDir(ip)
			var ce *ondisk.CorruptError
			if !errors.As(err, &ce) {
				t.Errorf("%s: byte %d flipped: ReadDir error %v, want a CorruptError", name, off, err)
			} else if !strings.Contains(ce.Where, fmt.Sprintf("inode %d", ip.Ino)) {
				t.Errorf("%s: error %q does not name the inode", name, err)
			}
		}
		_, err = w.WriteAt(orig, int64(daddr)*512)
		dtMust(t, err)
		if _, err := fx.fs.ReadDir(ip); err != nil {
			t.Fatalf("%s: restored block: %v", name, err)
		}
	}
}

// Inode numbers above 2^32 (a sparse 2.1 TiB image whose third AG starts
// at inode 2^32): shortform directories then store 8-byte inode numbers
// (i8count), block directories name them, and lookups and paths reach them.
func TestDirInode64(t *testing.T) {
	var hi string
	kern := map[string]dtDir{}
	fx := dtBuildSized(t, "2100g", []string{"-d", "agsize=1023g", "-l", "size=64m"}, nil, func(mnt string) {
		// New directories rotate through the AGs; take one in AG 2.
		for i := 0; i < 6 && hi == ""; i++ {
			name := fmt.Sprintf("d%d", i)
			dtMust(t, os.Mkdir(filepath.Join(mnt, name), 0o755))
			if dtStatIno(t, filepath.Join(mnt, name)) > 1<<32 {
				hi = name
			}
		}
		if hi == "" {
			t.Fatal("no directory landed above inode 2^32")
		}
		dtTouch(t, filepath.Join(mnt, hi), []string{"a", "bb"})
		dtMust(t, os.Mkdir(filepath.Join(mnt, hi, "sub"), 0o755))
		dtTouch(t, filepath.Join(mnt, hi, "blockform"), dtNames("f", 80, 0))
		for _, d := range []string{".", hi, hi + "/sub", hi + "/blockform"} {
			p := filepath.Join(mnt, d)
			kern[d] = dtDir{dtStatIno(t, p), dtListKernel(t, p)}
		}
		root := kern["."]
		root.want[".."] = root.want["."]
	})
	i8 := 0
	for name, d := range kern {
		ip, err := fx.fs.Inode(d.ino)
		dtMust(t, err)
		if ip.Format == ondisk.FmtLocal {
			data, err := ip.LocalData()
			dtMust(t, err)
			sf, err := ondisk.DecodeDirSF(data, true)
			dtMust(t, err)
			i8 += int(sf.I8Count)
		}
		t.Run(name, func(t *testing.T) {
			fx.checkReadDir(t, ip, d)
			form, _ := fx.dtForm(t, ip)
			fx.checkLookups(t, ip, d, form)
		})
	}
	if i8 == 0 {
		t.Error("no shortform directory used 8-byte inode numbers")
	}
	for p, want := range map[string]uint64{
		hi + "/bb": kern[hi].want["bb"].ino, hi + "/sub/..": kern[hi].ino,
		hi + "/blockform/f7_": kern[hi+"/blockform"].want["f7_"].ino,
	} {
		ip, err := fx.fs.ResolvePath(p, true)
		dtMust(t, err)
		if ip.Ino != want {
			t.Errorf("%s resolved to inode %d, kernel %d", p, ip.Ino, want)
		}
	}
	if kern[hi].ino <= 1<<32 || kern[hi].want["bb"].ino <= 1<<32 {
		t.Error("test directory is not above inode 2^32")
	}
}
