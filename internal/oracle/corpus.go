package oracle

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"xfskit/internal/treecmp"
)

// CorpusVersion names what the corpus builder puts into an image. Change it
// whenever the builder changes, so that cached images are rebuilt.
const CorpusVersion = "2"

// CorpusScale chooses how much a corpus image holds.
type CorpusScale int

const (
	// ScaleSmall holds every on-disk form once and builds in a few seconds.
	ScaleSmall CorpusScale = iota
	// ScaleLarge adds copies of the Go tree (100k+ inodes by default) and
	// a larger file, for benchmarks.
	ScaleLarge
)

// CorpusOptions describe a corpus image. The zero value is a small corpus
// on mkfs.xfs defaults.
type CorpusOptions struct {
	BlockSize    int      `json:"block_size,omitempty"`     // mkfs.xfs -b size=
	InodeSize    int      `json:"inode_size,omitempty"`     // mkfs.xfs -i size=
	DirBlockSize int      `json:"dir_block_size,omitempty"` // mkfs.xfs -n size=
	Mkfs         []string `json:"mkfs,omitempty"`           // further mkfs.xfs arguments, e.g. {"-m", "bigtime=0"}
	// Size of the (sparse) image, in truncate(1) syntax; "" picks 512M for
	// ScaleSmall and 8G for ScaleLarge.
	Size  string      `json:"size,omitempty"`
	Scale CorpusScale `json:"scale"`
	// Trees is how many copies of TreeSource go under trees/; 0 picks
	// none for ScaleSmall and 7 for ScaleLarge, negative means none.
	Trees int `json:"trees,omitempty"`
	// TreeSource is the directory copied for Trees; "" is `go env GOROOT`.
	TreeSource string `json:"tree_source,omitempty"`
}

// CorpusForm names an on-disk form (or another property) a corpus entry is
// known to have.
type CorpusForm string

// Forms recorded in a CorpusManifest. Those about on-disk layout are
// verified with xfs_db after the build; the others against the kernel's
// view of the finished image.
const (
	FormDirShortform CorpusForm = "dir-shortform" // entries inside the inode
	FormDirBlock     CorpusForm = "dir-block"     // one directory block
	FormDirLeaf      CorpusForm = "dir-leaf"      // data blocks + one leaf1 block
	FormDirNode      CorpusForm = "dir-node"      // da-btree node block above leafn blocks
	FormDirBtree     CorpusForm = "dir-btree"     // data fork in B-tree format

	FormFileEmpty      CorpusForm = "file-empty"      // size 0, no extents
	FormFileExtents    CorpusForm = "file-extents"    // data fork is an extent list
	FormFileBtree      CorpusForm = "file-btree"      // data fork B-tree, root level >= 1
	FormFileFragmented CorpusForm = "file-fragmented" // several extents, no holes
	FormFileSparse     CorpusForm = "file-sparse"     // at least one hole below EOF
	FormFileHoleStart  CorpusForm = "file-hole-start"
	FormFileHoleMiddle CorpusForm = "file-hole-middle"
	FormFileHoleEnd    CorpusForm = "file-hole-end"
	FormFileUnwritten  CorpusForm = "file-unwritten"    // has unwritten (preallocated) extents
	FormFilePrealloc   CorpusForm = "file-prealloc-eof" // blocks mapped past EOF
	FormFileLarge      CorpusForm = "file-large"        // several MiB

	FormSymlinkLocal  CorpusForm = "symlink-local"  // target inside the inode
	FormSymlinkRemote CorpusForm = "symlink-remote" // target in its own block(s)

	FormAttrShortform CorpusForm = "attr-shortform" // attributes inside the inode
	FormAttrLeaf      CorpusForm = "attr-leaf"      // one attr leaf block
	FormAttrNode      CorpusForm = "attr-node"      // da-btree node above attr leaves
	FormAttrRemote    CorpusForm = "attr-remote"    // a value in remote blocks
	FormXattrUser     CorpusForm = "xattr-user"
	FormXattrTrusted  CorpusForm = "xattr-trusted"
	FormXattrSecurity CorpusForm = "xattr-security"
	FormACL           CorpusForm = "acl" // system.posix_acl_access

	FormHardLink CorpusForm = "hardlink" // member of a 3-link group
	FormChr      CorpusForm = "chr"
	FormBlk      CorpusForm = "blk"
	FormFifo     CorpusForm = "fifo"
	FormSock     CorpusForm = "sock"

	FormName255  CorpusForm = "name-255"  // 255-byte name
	FormNameUTF8 CorpusForm = "name-utf8" // non-ASCII UTF-8 name
	FormDeepPath CorpusForm = "deep-path" // 32+ levels below the root

	FormSetuid CorpusForm = "mode-setuid"
	FormSetgid CorpusForm = "mode-setgid"
	FormSticky CorpusForm = "mode-sticky"
	FormOwner  CorpusForm = "owner" // uid 1234, gid 5678

	FormTimeNsec     CorpusForm = "time-nsec"      // mtime with nanoseconds
	FormTimePost2038 CorpusForm = "time-post-2038" // bigtime only
	FormTimePre1970  CorpusForm = "time-pre-1970"

	FormTree CorpusForm = "tree" // root of a copy of a real source tree
)

// CorpusItem is one path of a corpus and the forms it is known to have.
type CorpusItem struct {
	Path  string       `json:"path"` // relative to the filesystem root
	Ino   uint64       `json:"ino"`
	Type  treecmp.Type `json:"type"`
	Forms []CorpusForm `json:"forms"`
}

// CorpusManifest records what a corpus image holds.
type CorpusManifest struct {
	Version      string        `json:"version"`
	Options      CorpusOptions `json:"options"`
	BlockSize    int           `json:"block_size"`
	InodeSize    int           `json:"inode_size"`
	DirBlockSize int           `json:"dir_block_size"`
	Bigtime      bool          `json:"bigtime"`
	Items        []CorpusItem  `json:"items"`
	// Tree is the kernel's view of the finished image, taken through a
	// read-only mount (so atimes are those on disk).
	Tree *treecmp.Tree `json:"tree"`
}

// Item returns the item at path, or nil.
func (m *CorpusManifest) Item(path string) *CorpusItem {
	for i := range m.Items {
		if m.Items[i].Path == path {
			return &m.Items[i]
		}
	}
	return nil
}

// Paths lists the items having form f.
func (m *CorpusManifest) Paths(f CorpusForm) []string {
	var out []string
	for _, it := range m.Items {
		for _, g := range it.Forms {
			if g == f {
				out = append(out, it.Path)
				break
			}
		}
	}
	return out
}

// Forms lists every form present, sorted.
func (m *CorpusManifest) Forms() []CorpusForm {
	seen := map[CorpusForm]bool{}
	for _, it := range m.Items {
		for _, f := range it.Forms {
			seen[f] = true
		}
	}
	out := make([]CorpusForm, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ManifestPath is where the manifest of image img is stored.
func ManifestPath(img string) string { return img + ".manifest.json" }

// LoadCorpusManifest reads the manifest stored next to img.
func LoadCorpusManifest(img string) (*CorpusManifest, error) {
	b, err := os.ReadFile(ManifestPath(img))
	if err != nil {
		return nil, err
	}
	var m CorpusManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestPath(img), err)
	}
	return &m, nil
}

func (o CorpusOptions) normalized() CorpusOptions {
	if o.Size == "" {
		o.Size = "512M"
		if o.Scale == ScaleLarge {
			o.Size = "8G"
		}
	}
	if o.Trees == 0 && o.Scale == ScaleLarge {
		o.Trees = 7
	}
	if o.Trees < 0 {
		o.Trees = 0
	}
	if o.Trees > 0 && o.TreeSource == "" {
		o.TreeSource = goroot()
	}
	return o
}

func goroot() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			return s
		}
	}
	return runtime.GOROOT()
}

func (o CorpusOptions) mkfsArgs() []string {
	var args []string
	if o.BlockSize > 0 {
		args = append(args, "-b", fmt.Sprintf("size=%d", o.BlockSize))
	}
	if o.InodeSize > 0 {
		args = append(args, "-i", fmt.Sprintf("size=%d", o.InodeSize))
	}
	if o.DirBlockSize > 0 {
		args = append(args, "-n", fmt.Sprintf("size=%d", o.DirBlockSize))
	}
	return append(args, o.Mkfs...)
}

// cacheKey identifies an image built from o by this builder with these
// tools on this kernel.
func (o CorpusOptions) cacheKey() string {
	h := sha256.New()
	j, _ := json.Marshal(o)
	fmt.Fprintf(h, "corpus %s\n%s\n", CorpusVersion, j)
	if out, err := exec.Command("mkfs.xfs", "-V").CombinedOutput(); err == nil {
		h.Write(out)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Write(u.Release[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// CorpusDir is where cached corpus images live.
func CorpusDir() string { return filepath.Join(os.TempDir(), "xfskit-corpus") }

// Corpus returns the path of a kernel-made image holding every on-disk form
// (see CorpusForm), built once per option set and cached under CorpusDir
// across test packages; concurrent callers wait for a single build. The
// image is shared: treat it as read-only (use CorpusCopy to modify, and
// MountCorpus to mount it).
func Corpus(t testing.TB, opts CorpusOptions) string {
	img, _ := CorpusWithManifest(t, opts)
	return img
}

// CorpusWithManifest is Corpus that also returns the manifest.
func CorpusWithManifest(t testing.TB, opts CorpusOptions) (string, *CorpusManifest) {
	t.Helper()
	Require(t, Root, Loop, Tools)
	opts = opts.normalized()
	dir := CorpusDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, opts.cacheKey())
	img := base + ".img"
	lock, err := os.OpenFile(base+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close() // releases the lock
	for {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	if m, err := LoadCorpusManifest(img); err == nil {
		if _, err := os.Stat(img); err == nil && m.Version == CorpusVersion {
			return img, m
		}
	}
	// Leftovers of a build that died; nobody else builds this key now.
	old, _ := filepath.Glob(base + ".img*.tmp-*")
	for _, f := range old {
		os.Remove(f)
	}
	start := time.Now()
	m := BuildCorpus(t, img, opts)
	// Shared by every test from now on: a reminder not to write it.
	if err := os.Chmod(img, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Logf("built corpus %s in %v (%d items)", img, time.Since(start).Round(time.Millisecond), len(m.Items))
	return img, m
}

// CorpusCopy returns a private, writable copy of the corpus image (a
// reflink where the filesystem supports it, else a sparse copy), with its
// manifest next to it. It has the same UUID as the shared image: mount it
// with MountCorpus (nouuid) if the shared one may be mounted meanwhile.
func CorpusCopy(t testing.TB, opts CorpusOptions) string {
	t.Helper()
	src := Corpus(t, opts)
	dst := filepath.Join(t.TempDir(), "corpus.img")
	if err := copyImage(src, dst); err != nil {
		t.Fatalf("copy corpus: %v", err)
	}
	b, err := os.ReadFile(ManifestPath(src))
	if err == nil {
		err = os.WriteFile(ManifestPath(dst), b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// copyImage clones src to dst, or copies only its data ranges.
func copyImage(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out.Close()
	}
	st, err := in.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		d, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: seek data at %d: %w", src, off, err)
		}
		h, err := unix.Seek(int(in.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("%s: seek hole at %d: %w", src, d, err)
		}
		for p := d; p < h; {
			n, err := in.ReadAt(buf[:min(int64(len(buf)), h-p)], p)
			if n == 0 && err != nil {
				return err
			}
			if _, err := out.WriteAt(buf[:n], p); err != nil {
				return err
			}
			p += int64(n)
		}
		off = h
	}
	return out.Close()
}

// MountCorpus loop-mounts a corpus image or a copy of one (read-write
// only for copies from CorpusCopy) with nouuid, since every copy shares
// the UUID of the shared image and several tests or packages may mount
// them at once. It unmounts when the test ends.
func MountCorpus(t testing.TB, img string, ro bool) string {
	t.Helper()
	Require(t, Root, Loop)
	opts := "loop,nouuid"
	if ro {
		opts += ",ro"
	} else if abs, err := filepath.Abs(img); err != nil || strings.HasPrefix(abs, CorpusDir()+string(filepath.Separator)) {
		t.Fatalf("refusing to mount the shared corpus image %s read-write; use CorpusCopy", img)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, "mount", "-t", "xfs", "-o", opts, img, mnt)
	t.Cleanup(func() { Unmount(t, mnt) })
	if _, code := RunStatus("mountpoint", "-q", mnt); code != 0 {
		t.Fatalf("%s is not a mount point after mounting %s", mnt, img)
	}
	return mnt
}

// BuildCorpus builds a corpus image at img (replacing it atomically: built
// under a temporary name, then renamed) and writes its manifest next to
// it. Most tests want the cached Corpus instead.
func BuildCorpus(t testing.TB, img string, opts CorpusOptions) *CorpusManifest {
	t.Helper()
	Require(t, Root, Loop, Tools)
	opts = opts.normalized()
	tmp := fmt.Sprintf("%s.tmp-%d", img, os.Getpid())
	defer os.Remove(tmp)
	os.Remove(tmp)
	Run(t, "truncate", "-s", opts.Size, tmp)
	Run(t, "mkfs.xfs", append(append([]string{"-q", "-f"}, opts.mkfsArgs()...), tmp)...)

	b := &corpusBuilder{t: t, rng: rand.NewChaCha8([32]byte{'x', 'f', 's', 'k', 'i', 't'})}
	b.geometry(tmp)
	m := &CorpusManifest{Version: CorpusVersion, Options: opts, BlockSize: b.bs, InodeSize: b.isize, DirBlockSize: b.dirbs, Bigtime: b.bigtime}

	b.root = Mount(t, tmp, false)
	MustBeMounted(t, b.root)
	b.populate(opts)
	b.fillInodes()
	MustBeMounted(t, b.root)
	Run(t, "umount", b.root) // flushes everything; failure here is fatal

	if out, code := RunStatus("xfs_repair", "-n", tmp); code != 0 {
		t.Fatalf("corpus image %s: xfs_repair -n exited %d:\n%s", tmp, code, out)
	}
	mnt := MountCorpus(t, tmp, true)
	tree, err := treecmp.FromDir(mnt, treecmp.Options{})
	if err != nil {
		t.Fatalf("snapshot of corpus: %v", err)
	}
	Unmount(t, mnt)
	if _, code := RunStatus("mountpoint", "-q", mnt); code == 0 {
		t.Fatalf("could not unmount %s", mnt)
	}
	m.Tree = tree

	items := b.items
	m.Items = nil
	for _, it := range items {
		m.Items = append(m.Items, CorpusItem{Path: it.Path, Ino: it.Ino, Type: it.Type, Forms: it.Forms})
	}
	problems, err := CheckCorpusForms(tmp, m)
	if err != nil {
		t.Fatal(err)
	}
	// Optional forms are kept only where they really occurred.
	for i := range m.Items {
		it := &m.Items[i]
		for _, f := range items[i].maybe {
			it.Forms = append(it.Forms, f)
			if p := checkItem(tmp, m, it); len(p) > 0 {
				it.Forms = it.Forms[:len(it.Forms)-1]
			}
		}
	}
	if len(problems) > 0 {
		t.Fatalf("corpus image %s lacks forms it should have:\n%s", tmp, strings.Join(problems, "\n"))
	}

	j, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ManifestPath(tmp), j, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ManifestPath(tmp))
	// A manifest names a complete image: drop the old one, move the image
	// into place, then its manifest.
	if err := os.Remove(ManifestPath(img)); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, img); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ManifestPath(tmp), ManifestPath(img)); err != nil {
		t.Fatal(err)
	}
	return m
}

// builderItem is a CorpusItem being built: required forms must verify,
// maybe forms are kept only if they do.
type builderItem struct {
	CorpusItem
	maybe []CorpusForm
}

type pendingTime struct {
	path         string
	atime, mtime unix.Timespec
}

type corpusBuilder struct {
	t                testing.TB
	root             string
	bs, isize, dirbs int
	bigtime          bool
	items            []builderItem
	times            []pendingTime
	rng              *rand.ChaCha8
}

// geometry reads block, inode and directory block sizes as mkfs.xfs chose
// them.
func (b *corpusBuilder) geometry(img string) {
	out := DB(b.t, img, []string{"-r"}, "sb 0", "p blocksize dirblklog inodesize features_incompat")
	get := func(name string) int64 {
		v, err := Field(out, name)
		if err == nil {
			var n int64
			if n, err = strconv.ParseInt(v, 0, 64); err == nil {
				return n
			}
		}
		b.t.Fatalf("xfs_db sb 0: %s: %v\n%s", name, err, out)
		return 0
	}
	b.bs = int(get("blocksize"))
	b.dirbs = b.bs << get("dirblklog")
	b.isize = int(get("inodesize"))
	b.bigtime = get("features_incompat")&(1<<3) != 0 // XFS_SB_FEAT_INCOMPAT_BIGTIME
}

func (b *corpusBuilder) p(rel string) string { return filepath.Join(b.root, filepath.FromSlash(rel)) }

func (b *corpusBuilder) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("building corpus: %v", err)
	}
}

func (b *corpusBuilder) item(rel string, forms ...CorpusForm) *builderItem {
	for i := range b.items {
		if b.items[i].Path == rel {
			b.items[i].Forms = append(b.items[i].Forms, forms...)
			return &b.items[i]
		}
	}
	b.items = append(b.items, builderItem{CorpusItem: CorpusItem{Path: rel, Forms: append([]CorpusForm{}, forms...)}})
	return &b.items[len(b.items)-1]
}

func (b *corpusBuilder) maybe(rel string, forms ...CorpusForm) {
	it := b.item(rel)
	it.maybe = append(it.maybe, forms...)
}

func (b *corpusBuilder) mkdir(rel string, perm os.FileMode) {
	b.must(os.MkdirAll(b.p(rel), perm))
}

func (b *corpusBuilder) touch(rel string) {
	b.must(unix.Mknod(b.p(rel), unix.S_IFREG|0o644, 0))
}

func (b *corpusBuilder) random(n int) []byte {
	buf := make([]byte, n)
	b.rng.Read(buf)
	return buf
}

func (b *corpusBuilder) write(rel string, data []byte) {
	b.must(os.WriteFile(b.p(rel), data, 0o644))
}

// directWrite writes one random block at each listed block offset with
// O_DIRECT, so that each write is allocated at once and exactly (no
// delayed allocation or speculative preallocation to merge or fill them).
func (b *corpusBuilder) directWrite(fds []int, blocks []int64) {
	buf, err := unix.Mmap(-1, 0, b.bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	b.must(err)
	defer unix.Munmap(buf)
	for _, blk := range blocks {
		for _, fd := range fds {
			b.rng.Read(buf)
			_, err := unix.Pwrite(fd, buf, blk*int64(b.bs))
			b.must(err)
		}
	}
}

func (b *corpusBuilder) openDirect(rel string) int {
	fd, err := unix.Open(b.p(rel), unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0o644)
	b.must(err)
	return fd
}

func (b *corpusBuilder) setxattr(rel, name string, value []byte) {
	if err := unix.Lsetxattr(b.p(rel), name, value, 0); err != nil {
		b.t.Fatalf("building corpus: setxattr %s on %s: %v", name, rel, err)
	}
}

func (b *corpusBuilder) setTime(rel string, atime, mtime time.Time) {
	b.times = append(b.times, pendingTime{rel, unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())})
}

// Limits used to size directories and forks (v5 formats with ftype).
const (
	inodeCoreSize  = 176 // v3 inode core; the forks follow it
	bmbtRecSize    = 16
	dirDataHdr     = 64 // xfs_dir3_data_hdr
	dirLeafEntSize = 8
	dirLeafHdr     = 64 // xfs_dir3_leaf_hdr
)

// dirEntSize is the size of a v5 data entry with a name of n bytes.
func dirEntSize(n int) int { return (8 + 1 + n + 1 + 2 + 7) &^ 7 }

func (b *corpusBuilder) populate(opts CorpusOptions) {
	b.mkdir("forms", 0o755)
	b.dirs()
	b.files(opts)
	b.symlinks()
	b.xattrs()
	b.links()
	b.specials()
	b.names()
	b.modes()
	b.owners()
	b.timestamps()
	if opts.Trees > 0 {
		b.mkdir("trees", 0o755)
		for i := 1; i <= opts.Trees; i++ {
			rel := fmt.Sprintf("trees/go%d", i)
			MustBeMounted(b.t, b.root)
			Run(b.t, "cp", "-a", opts.TreeSource, b.p(rel))
			b.item(rel, FormTree)
		}
	}
	// Times last: creating entries changes their parents' mtimes.
	for _, pt := range b.times {
		b.must(unix.UtimesNanoAt(unix.AT_FDCWD, b.p(pt.path), []unix.Timespec{pt.atime, pt.mtime}, unix.AT_SYMLINK_NOFOLLOW))
	}
}

func (b *corpusBuilder) dirs() {
	b.mkdir("forms/dirs", 0o755)

	b.mkdir("forms/dirs/empty", 0o755)
	b.item("forms/dirs/empty", FormDirShortform)
	b.mkdir("forms/dirs/short", 0o755)
	for i := 1; i <= 5; i++ {
		b.touch(fmt.Sprintf("forms/dirs/short/s%d", i))
	}
	b.item("forms/dirs/short", FormDirShortform)

	// Block: more 16-byte names than the largest possible inode fork holds,
	// fewer than one directory block holds.
	const nameLen = 16
	sfMax := (b.isize - inodeCoreSize - 6) / (8 + nameLen)
	blockMax := (b.dirbs - dirDataHdr - 8 - 32 - 2*dirLeafEntSize) / (dirEntSize(nameLen) + dirLeafEntSize)
	if sfMax >= blockMax {
		b.t.Fatalf("corpus: cannot size a block directory (shortform holds %d, block %d)", sfMax, blockMax)
	}
	b.mkdir("forms/dirs/block", 0o755)
	for i := 0; i < sfMax+(blockMax-sfMax)/2; i++ {
		b.touch(fmt.Sprintf("forms/dirs/block/block-entry-%04d", i))
	}
	b.item("forms/dirs/block", FormDirBlock)

	// Leaf: about two blocks of entries; one leaf1 block holds their hashes.
	b.mkdir("forms/dirs/leaf", 0o755)
	for i := 0; i < 2*blockMax+10; i++ {
		b.touch(fmt.Sprintf("forms/dirs/leaf/leaf-entry-%05d", i))
	}
	b.item("forms/dirs/leaf", FormDirLeaf)

	// Node: more hash entries than one leafn block holds, so the leaf level
	// splits under a node block.
	b.mkdir("forms/dirs/node", 0o755)
	leafnMax := (b.dirbs - dirLeafHdr) / dirLeafEntSize
	for i := 0; i < leafnMax*5/4+8; i++ {
		b.touch(fmt.Sprintf("forms/dirs/node/node-entry-%06d", i))
	}
	b.item("forms/dirs/node", FormDirNode)

	b.btreeDir("forms/dirs/btree")
}

// btreeDir makes a directory whose data fork needs more extents than any
// inode fork holds: it fills twice that many data blocks with 256-byte
// entries, then empties every other block, which XFS frees, leaving holes
// between the remaining blocks. Block 0 (holding the first entry) stays.
func (b *corpusBuilder) btreeDir(rel string) {
	b.mkdir(rel, 0o755)
	maxExt := (b.isize - inodeCoreSize) / bmbtRecSize
	blocks := 2 * (maxExt + 4)
	const nameLen = 244 // dirEntSize(244) == 256
	per := (b.dirbs - dirDataHdr) / dirEntSize(nameLen)
	n := (blocks + 1) * per
	// Hard links to one file: thousands of entries without as many inodes
	// (which would also hit the inode space limit with large inodes).
	first := rel + "/" + btreeName(0)
	b.touch(first)
	for i := 1; i < n; i++ {
		b.must(unix.Link(b.p(first), b.p(rel+"/"+btreeName(i))))
	}
	pos, err := readdirOffsets(b.p(rel))
	b.must(err)
	removed := 0
	for name, off := range pos {
		if (off/int64(b.dirbs))%2 == 1 {
			b.must(unix.Unlink(b.p(rel + "/" + name)))
			removed++
		}
	}
	if removed < n/3 {
		b.t.Fatalf("corpus: %s: only %d of %d entries fell in odd directory blocks", rel, removed, n)
	}
	b.item(rel, FormDirBtree)
}

func btreeName(i int) string { return fmt.Sprintf("btree-%0238d", i) }

// readdirOffsets maps each entry of an XFS directory to its byte offset in
// the directory's data space. Linux reports in each dirent's d_off the
// position of the next entry; XFS positions are byte offsets >> 3.
func readdirOffsets(dir string) (map[string]int64, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	out := map[string]int64{}
	buf := make([]byte, 1<<16)
	var pos int64
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("getdents %s: %w", dir, err)
		}
		if n == 0 {
			return out, nil
		}
		for p := 0; p < n; {
			if p+19 > n {
				return nil, fmt.Errorf("getdents %s: short record", dir)
			}
			off := int64(binary.NativeEndian.Uint64(buf[p+8:]))
			reclen := int(binary.NativeEndian.Uint16(buf[p+16:]))
			if reclen < 20 || p+reclen > n {
				return nil, fmt.Errorf("getdents %s: bad record length %d", dir, reclen)
			}
			name := buf[p+19 : p+reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				out[s] = pos << 3
			}
			pos = off
			p += reclen
		}
	}
}

func (b *corpusBuilder) files(opts CorpusOptions) {
	d := "forms/files/"
	b.mkdir(d, 0o755)
	bs := int64(b.bs)

	b.write(d+"empty", nil)
	b.item(d+"empty", FormFileEmpty)
	b.write(d+"tiny", []byte("tiny\n"))
	b.item(d+"tiny", FormFileExtents)
	b.write(d+"one-block", b.random(b.bs))
	b.item(d+"one-block", FormFileExtents)
	b.write(d+"block-plus-one", b.random(b.bs+1))
	b.item(d+"block-plus-one", FormFileExtents)

	// Two files written block by block in turn, each block allocated
	// at once: neither can grow in place, so both fragment.
	fa, fb := b.openDirect(d+"frag-a"), b.openDirect(d+"frag-b")
	var blks []int64
	for i := int64(0); i < 8; i++ {
		blks = append(blks, i)
	}
	b.directWrite([]int{fa, fb}, blks)
	unix.Close(fa)
	unix.Close(fb)
	b.maybe(d+"frag-a", FormFileFragmented, FormFileExtents)
	b.maybe(d+"frag-b", FormFileFragmented, FormFileExtents)

	// Every other block: more extents than any inode fork holds.
	maxExt := (b.isize - inodeCoreSize) / bmbtRecSize
	fd := b.openDirect(d + "btree")
	blks = nil
	for i := 0; i < maxExt+24; i++ {
		blks = append(blks, int64(2*i))
	}
	b.directWrite([]int{fd}, blks)
	unix.Close(fd)
	b.item(d+"btree", FormFileBtree, FormFileSparse)

	fd = b.openDirect(d + "hole-start")
	b.directWrite([]int{fd}, []int64{16})
	unix.Close(fd)
	b.item(d+"hole-start", FormFileSparse, FormFileHoleStart)

	fd = b.openDirect(d + "hole-middle")
	b.directWrite([]int{fd}, []int64{0, 16})
	unix.Close(fd)
	b.item(d+"hole-middle", FormFileSparse, FormFileHoleMiddle)

	fd = b.openDirect(d + "hole-end")
	b.directWrite([]int{fd}, []int64{0})
	b.must(unix.Ftruncate(fd, 16*bs+100))
	unix.Close(fd)
	b.item(d+"hole-end", FormFileSparse, FormFileHoleEnd)

	b.write(d+"hole-only", nil)
	b.must(os.Truncate(b.p(d+"hole-only"), 1<<20))
	b.item(d+"hole-only", FormFileSparse)

	// Preallocated, then partly written: unwritten / written / unwritten.
	fd = b.openDirect(d + "unwritten")
	b.must(unix.Fallocate(fd, 0, 0, 16*bs))
	b.directWrite([]int{fd}, []int64{4, 5})
	unix.Close(fd)
	b.item(d+"unwritten", FormFileUnwritten)

	// Blocks preallocated past EOF stay mapped.
	fd = b.openDirect(d + "prealloc-eof")
	b.directWrite([]int{fd}, []int64{0})
	b.must(unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, bs, 8*bs))
	unix.Close(fd)
	b.item(d+"prealloc-eof", FormFilePrealloc, FormFileUnwritten)

	size := 4 << 20
	if opts.Scale == ScaleLarge {
		size = 256 << 20
	}
	f, err := os.Create(b.p(d + "large"))
	b.must(err)
	w := bufio.NewWriterSize(f, 1<<20)
	for left := size; left > 0; left -= 1 << 20 {
		_, err := w.Write(b.random(min(left, 1<<20)))
		b.must(err)
	}
	b.must(w.Flush())
	b.must(f.Close())
	b.item(d+"large", FormFileLarge)
}

func (b *corpusBuilder) symlinks() {
	d := "forms/symlinks/"
	b.mkdir(d, 0o755)
	b.must(os.Symlink("../files/tiny", b.p(d+"inline")))
	b.item(d+"inline", FormSymlinkLocal)
	b.must(os.Symlink("no/such/target", b.p(d+"dangling")))
	b.item(d+"dangling", FormSymlinkLocal)
	target := strings.Repeat("long-target/", 86)[:1023] // the longest a symlink may be
	b.must(os.Symlink(target, b.p(d+"remote")))
	if 1023 > b.isize-inodeCoreSize {
		b.item(d+"remote", FormSymlinkRemote)
	} else {
		// Fits a large inode without an attribute fork; an LSM's fork
		// would still push it out.
		b.maybe(d+"remote", FormSymlinkRemote)
	}
}

func (b *corpusBuilder) xattrs() {
	d := "forms/xattrs/"
	b.mkdir(d, 0o755)

	b.write(d+"short", []byte("x\n"))
	b.setxattr(d+"short", "user.a", []byte("1"))
	b.setxattr(d+"short", "user.empty", nil)
	b.setxattr(d+"short", "trusted.t", []byte("secret"))
	b.setxattr(d+"short", "security.xfskit", []byte("label"))
	b.item(d+"short", FormAttrShortform, FormXattrUser, FormXattrTrusted, FormXattrSecurity)

	// Values over 255 bytes never fit a shortform entry.
	val := func(i int) []byte { return []byte(fmt.Sprintf("%03d-%s", i, strings.Repeat("v", 296))) }
	b.write(d+"leaf", []byte("x\n"))
	b.setxattr(d+"leaf", "user.leaf-1", val(1))
	b.setxattr(d+"leaf", "trusted.leaf-2", val(2))
	b.item(d+"leaf", FormAttrLeaf, FormXattrUser, FormXattrTrusted)

	b.write(d+"node", []byte("x\n"))
	ns := []string{"user.", "trusted.", "security."}
	for i := 0; i < 3*b.bs/324+4; i++ {
		b.setxattr(d+"node", fmt.Sprintf("%snode-%04d", ns[i%3], i), val(i))
	}
	b.item(d+"node", FormAttrNode, FormXattrUser, FormXattrTrusted, FormXattrSecurity)

	b.write(d+"remote", []byte("x\n"))
	n := min(b.bs+b.bs/2, 65536)
	b.setxattr(d+"remote", "user.remote", b.random(n))
	b.setxattr(d+"remote", "trusted.remote", b.random(n-1))
	b.setxattr(d+"remote", "user.small", []byte("s"))
	b.item(d+"remote", FormAttrRemote, FormXattrUser, FormXattrTrusted)

	// Attributes on things other than regular files; user.* is only
	// allowed on files and directories.
	b.mkdir(d+"dir", 0o755)
	b.setxattr(d+"dir", "user.on-dir", []byte("d"))
	b.item(d+"dir", FormXattrUser)
	b.must(os.Symlink("target", b.p(d+"symlink")))
	b.setxattr(d+"symlink", "trusted.on-symlink", []byte("l"))
	b.item(d+"symlink", FormXattrTrusted)

	acl := treecmp.ACLXattr([]treecmp.ACLEntry{
		{Tag: 0x01, Perm: 6}, {Tag: 0x02, Perm: 4, ID: 1234},
		{Tag: 0x04, Perm: 4}, {Tag: 0x08, Perm: 6, ID: 5678},
		{Tag: 0x10, Perm: 6}, {Tag: 0x20, Perm: 0},
	})
	b.write(d+"acl", []byte("x\n"))
	if err := unix.Lsetxattr(b.p(d+"acl"), "system.posix_acl_access", acl, 0); errors.Is(err, unix.EOPNOTSUPP) {
		b.t.Logf("corpus: kernel XFS has no POSIX ACL support; no ACL forms")
		return
	} else {
		b.must(err)
	}
	b.item(d+"acl", FormACL)
	b.mkdir(d+"acl-dir", 0o755)
	b.setxattr(d+"acl-dir", "system.posix_acl_access", acl)
	b.setxattr(d+"acl-dir", "system.posix_acl_default", acl)
	b.write(d+"acl-dir/inherited", []byte("x\n"))
	b.item(d+"acl-dir", FormACL)
	b.item(d+"acl-dir/inherited", FormACL)
}

func (b *corpusBuilder) links() {
	d := "forms/links/"
	b.mkdir(d+"sub", 0o755)
	b.write(d+"one", []byte("linked three times\n"))
	b.must(os.Link(b.p(d+"one"), b.p(d+"sub/two")))
	b.must(os.Link(b.p(d+"one"), b.p("forms/dirs/short/three")))
	b.item(d+"one", FormHardLink)
	b.item(d+"sub/two", FormHardLink)
	b.item("forms/dirs/short/three", FormHardLink)
	b.write(d+"pair-a", []byte("linked twice\n"))
	b.must(os.Link(b.p(d+"pair-a"), b.p(d+"pair-b")))
}

func (b *corpusBuilder) specials() {
	d := "forms/special/"
	b.mkdir(d, 0o755)
	mk := func(name string, mode uint32, major, minor uint32, f CorpusForm) {
		b.must(unix.Mknod(b.p(d+name), mode, int(unix.Mkdev(major, minor))))
		b.item(d+name, f)
	}
	mk("chr-1-3", unix.S_IFCHR|0o666, 1, 3, FormChr)
	mk("chr-big-minor", unix.S_IFCHR|0o600, 241, 70000, FormChr) // needs the 18-bit minor
	mk("blk-7-0", unix.S_IFBLK|0o660, 7, 0, FormBlk)
	mk("fifo", unix.S_IFIFO|0o644, 0, 0, FormFifo)
	// mknod makes the same socket inode bind(2) would, without a path
	// length limit or a listening process.
	mk("socket", unix.S_IFSOCK|0o755, 0, 0, FormSock)
	b.setxattr(d+"chr-1-3", "trusted.on-device", []byte("c"))
}

func (b *corpusBuilder) names() {
	d := "forms/names/"
	b.mkdir(d, 0o755)
	long := strings.Repeat("n", 251) + "-255"
	longUTF8 := strings.Repeat("é", 127) + "x" // 255 bytes, 128 characters
	for _, n := range []struct {
		name  string
		forms []CorpusForm
	}{
		{long, []CorpusForm{FormName255}},
		{longUTF8, []CorpusForm{FormName255, FormNameUTF8}},
		{"naïve café ☕ 日本語 🎉", []CorpusForm{FormNameUTF8}},
		{"with space", nil},
		{`quote'"and\backslash`, nil},
		{"-leading-dash", nil},
		{"*glob?[x]", nil},
		{".hidden", nil},
	} {
		b.write(d+n.name, []byte(n.name+"\n"))
		b.item(d+n.name, n.forms...)
	}
	rel := "forms/deep"
	for i := 0; i < 40; i++ {
		rel += fmt.Sprintf("/level-%02d", i)
	}
	b.mkdir(rel, 0o755)
	b.write(rel+"/leaf", []byte("deep\n"))
	b.item(rel+"/leaf", FormDeepPath)
}

func (b *corpusBuilder) modes() {
	d := "forms/modes/"
	b.mkdir(d, 0o755)
	for _, m := range []struct {
		name string
		mode os.FileMode
		dir  bool
		f    []CorpusForm
	}{
		{"setuid", 0o755 | os.ModeSetuid, false, []CorpusForm{FormSetuid}},
		{"setgid", 0o755 | os.ModeSetgid, false, []CorpusForm{FormSetgid}},
		{"all-bits", 0o777 | os.ModeSetuid | os.ModeSetgid | os.ModeSticky, false, []CorpusForm{FormSetuid, FormSetgid, FormSticky}},
		{"no-bits", 0, false, nil},
		{"sticky-dir", 0o777 | os.ModeSticky, true, []CorpusForm{FormSticky}},
		{"setgid-dir", 0o775 | os.ModeSetgid, true, []CorpusForm{FormSetgid}},
	} {
		if m.dir {
			b.mkdir(d+m.name, 0o755)
		} else {
			b.write(d+m.name, []byte(m.name+"\n"))
		}
		b.must(os.Chmod(b.p(d+m.name), m.mode))
		b.item(d+m.name, m.f...)
	}
}

func (b *corpusBuilder) owners() {
	d := "forms/owners/"
	b.mkdir(d+"dir", 0o755)
	b.write(d+"file", []byte("owned\n"))
	b.must(os.Symlink("file", b.p(d+"symlink")))
	for _, n := range []string{"file", "dir", "symlink"} {
		b.must(os.Lchown(b.p(d+n), 1234, 5678))
		b.item(d+n, FormOwner)
	}
	b.write(d+"large-ids", []byte("32-bit ids\n"))
	b.must(os.Lchown(b.p(d+"large-ids"), 4000000000, 3000000000))
	b.item(d + "large-ids")
}

func (b *corpusBuilder) timestamps() {
	d := "forms/times/"
	b.mkdir(d+"dir", 0o755)
	b.write(d+"dir/inside", []byte("x\n"))
	utc := func(y int, mo time.Month, day, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, day, h, mi, s, ns, time.UTC)
	}
	b.write(d+"nsec", []byte("x\n"))
	b.setTime(d+"nsec", utc(2002, 3, 4, 5, 6, 7, 987654321), utc(2001, 2, 3, 4, 5, 6, 123456789))
	b.item(d+"nsec", FormTimeNsec)
	b.write(d+"pre-1970", []byte("x\n"))
	b.setTime(d+"pre-1970", utc(1969, 12, 31, 23, 59, 59, 1), utc(1960, 6, 15, 12, 34, 56, 700000000))
	b.item(d+"pre-1970", FormTimePre1970, FormTimeNsec)
	if b.bigtime {
		b.write(d+"post-2038", []byte("x\n"))
		b.setTime(d+"post-2038", utc(2038, 1, 19, 3, 14, 8, 0), utc(2100, 1, 1, 0, 0, 0, 500000000))
		b.item(d+"post-2038", FormTimePost2038, FormTimeNsec)
	}
	b.setTime(d+"dir", utc(2010, 1, 1, 0, 0, 0, 1), utc(2011, 1, 1, 0, 0, 0, 2))
	b.item(d+"dir", FormTimeNsec)
	b.must(os.Symlink("dir/inside", b.p(d+"symlink")))
	b.setTime(d+"symlink", utc(2012, 1, 1, 0, 0, 0, 3), utc(2013, 1, 1, 0, 0, 0, 4))
	b.item(d+"symlink", FormTimeNsec)
}

// fillInodes records each item's inode number and type as the kernel
// reports them.
func (b *corpusBuilder) fillInodes() {
	for i := range b.items {
		it := &b.items[i]
		var st unix.Stat_t
		b.must(unix.Lstat(b.p(it.Path), &st))
		it.Ino = st.Ino
		typ, ok := treecmp.TypeFromMode(st.Mode)
		if !ok {
			b.t.Fatalf("corpus: %s: unknown type (mode 0%o)", it.Path, st.Mode)
		}
		it.Type = typ
	}
	sort.SliceStable(b.items, func(i, j int) bool { return b.items[i].Path < b.items[j].Path })
}

// CheckCorpusForms verifies every form the manifest claims: on-disk layout
// with xfs_db on img (which must not be mounted read-write), the rest
// against m.Tree. It returns one line per missing form.
func CheckCorpusForms(img string, m *CorpusManifest) ([]string, error) {
	var problems []string
	facts, err := dbFacts(img, m, m.Items)
	if err != nil {
		return nil, err
	}
	for i := range m.Items {
		problems = append(problems, checkFacts(m, &m.Items[i], facts[m.Items[i].Ino])...)
	}
	return problems, nil
}

func checkItem(img string, m *CorpusManifest, it *CorpusItem) []string {
	facts, err := dbFacts(img, m, []CorpusItem{*it})
	if err != nil {
		return []string{err.Error()}
	}
	return checkFacts(m, it, facts[it.Ino])
}

// inodeFacts is what xfs_db printed about one inode.
type inodeFacts struct {
	fields  map[string]string
	extents []dbExtent
	text    string
}

type dbExtent struct {
	off, start, count int64
	unwritten         bool
}

var bmapLine = regexp.MustCompile(`^data offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)`)

// dbFacts runs one xfs_db over every item that needs layout checks.
func dbFacts(img string, m *CorpusManifest, items []CorpusItem) (map[uint64]*inodeFacts, error) {
	leafOff := (int64(32) << 30) / int64(m.BlockSize)
	args := []string{"-r"}
	for _, it := range items {
		if !needsDB(it) {
			continue
		}
		args = append(args, "-c", fmt.Sprintf("echo @@ %d", it.Ino), "-c", fmt.Sprintf("inode %d", it.Ino),
			"-c", "p core.format core.aformat core.size", "-c", "bmap")
		if has(it, FormDirLeaf) || has(it, FormDirNode) {
			args = append(args, "-c", fmt.Sprintf("dblock %d", leafOff), "-c", "p lhdr.info.hdr.magic", "-c", "p nhdr.info.hdr.magic")
		}
		if has(it, FormFileBtree) {
			args = append(args, "-c", "p u3.bmbt.level")
		}
		if has(it, FormAttrLeaf) || has(it, FormAttrNode) || has(it, FormAttrRemote) {
			args = append(args, "-c", "ablock 0", "-c", "p hdr.info.hdr.magic", "-c", "p entries")
		}
	}
	out, err := exec.Command("xfs_db", append(args, img)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("xfs_db on %s: %v\n%s", img, err, out)
	}
	facts := map[uint64]*inodeFacts{}
	var cur *inodeFacts
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "@@ "); ok {
			ino, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("xfs_db echo: %q", line)
			}
			cur = &inodeFacts{fields: map[string]string{}}
			facts[ino] = cur
			continue
		}
		if cur == nil {
			continue
		}
		cur.text += line + "\n"
		if mm := bmapLine.FindStringSubmatch(line); mm != nil {
			var e dbExtent
			e.off, _ = strconv.ParseInt(mm[1], 10, 64)
			e.start, _ = strconv.ParseInt(mm[2], 10, 64)
			e.count, _ = strconv.ParseInt(mm[3], 10, 64)
			e.unwritten = mm[4] == "1"
			cur.extents = append(cur.extents, e)
			continue
		}
		if k, v, ok := strings.Cut(line, " = "); ok {
			if _, dup := cur.fields[k]; !dup {
				cur.fields[k] = strings.TrimSpace(v)
			}
		}
	}
	return facts, nil
}

func has(it CorpusItem, f CorpusForm) bool {
	for _, g := range it.Forms {
		if g == f {
			return true
		}
	}
	return false
}

var layoutForms = map[CorpusForm]bool{
	FormDirShortform: true, FormDirBlock: true, FormDirLeaf: true, FormDirNode: true, FormDirBtree: true,
	FormFileEmpty: true, FormFileExtents: true, FormFileBtree: true, FormFileFragmented: true,
	FormFileSparse: true, FormFileHoleStart: true, FormFileHoleMiddle: true, FormFileHoleEnd: true,
	FormFileUnwritten: true, FormFilePrealloc: true, FormFileLarge: true,
	FormSymlinkLocal: true, FormSymlinkRemote: true,
	FormAttrShortform: true, FormAttrLeaf: true, FormAttrNode: true, FormAttrRemote: true,
}

func needsDB(it CorpusItem) bool {
	for _, f := range it.Forms {
		if layoutForms[f] {
			return true
		}
	}
	return false
}

// entriesLocal matches attr leaf entries printed by xfs_db:
// [hashval,nameidx,incomplete,root,secure,local].
var entriesLocal = regexp.MustCompile(`(?m)^\d+:\[0x[0-9a-f]+,\d+,\d+,\d+,\d+,(\d)\]`)

func checkFacts(m *CorpusManifest, it *CorpusItem, f *inodeFacts) []string {
	var out []string
	fail := func(form CorpusForm, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s (inode %d): %s: %s", it.Path, it.Ino, form, fmt.Sprintf(format, args...)))
	}
	bs := int64(m.BlockSize)
	leafOff := (int64(32) << 30) / bs
	freeOff := 2 * leafOff
	var e *treecmp.Entry
	if m.Tree != nil {
		e = m.Tree.Lookup(it.Path)
		if e == nil {
			return []string{fmt.Sprintf("%s: not in the kernel's view of the image", it.Path)}
		}
	}
	for _, form := range it.Forms {
		if layoutForms[form] && f == nil {
			fail(form, "no xfs_db output")
			continue
		}
		var format, aformat string
		var size int64
		if f != nil {
			format, aformat = f.fields["core.format"], f.fields["core.aformat"]
			size, _ = strconv.ParseInt(f.fields["core.size"], 10, 64)
		}
		switch form {
		case FormDirShortform, FormSymlinkLocal:
			if !strings.HasPrefix(format, "1 ") {
				fail(form, "data fork format %q, want local", format)
			}
		case FormDirBlock:
			if !strings.HasPrefix(format, "2 ") || size != int64(m.DirBlockSize) || len(f.extents) == 0 || maxOff(f.extents) >= leafOff {
				fail(form, "format %q size %d extents %v, want one directory block", format, size, f.extents)
			}
		case FormDirLeaf:
			if v := f.fields["lhdr.info.hdr.magic"]; v != "0x3df1" || maxOff(f.extents) >= freeOff {
				fail(form, "block at leaf offset has leaf1 magic %q (want 0x3df1); extents %v", v, f.extents)
			}
		case FormDirNode:
			if v := f.fields["nhdr.info.hdr.magic"]; v != "0x3ebe" {
				fail(form, "block at leaf offset has node magic %q, want 0x3ebe", v)
			}
		case FormDirBtree:
			if !strings.HasPrefix(format, "3 ") {
				fail(form, "data fork format %q, want btree", format)
			}
		case FormFileBtree:
			if lv, _ := strconv.Atoi(f.fields["u3.bmbt.level"]); !strings.HasPrefix(format, "3 ") || lv < 1 {
				fail(form, "data fork format %q level %q, want btree of level >= 1", format, f.fields["u3.bmbt.level"])
			}
		case FormFileEmpty:
			if size != 0 || len(f.extents) != 0 {
				fail(form, "size %d, %d extents", size, len(f.extents))
			}
		case FormFileExtents, FormSymlinkRemote:
			if !strings.HasPrefix(format, "2 ") || len(f.extents) == 0 {
				fail(form, "data fork format %q with %d extents, want extents", format, len(f.extents))
			}
		case FormFileFragmented:
			if len(f.extents) < 2 || holes(f.extents, size, bs) != "" {
				fail(form, "extents %v (holes: %q)", f.extents, holes(f.extents, size, bs))
			}
		case FormFileSparse:
			if holes(f.extents, size, bs) == "" {
				fail(form, "no hole below EOF (size %d, extents %v)", size, f.extents)
			}
		case FormFileHoleStart, FormFileHoleMiddle, FormFileHoleEnd:
			want := map[CorpusForm]string{FormFileHoleStart: "start", FormFileHoleMiddle: "middle", FormFileHoleEnd: "end"}[form]
			if h := holes(f.extents, size, bs); !strings.Contains(h, want) {
				fail(form, "holes at %q, want one at the %s (size %d, extents %v)", h, want, size, f.extents)
			}
		case FormFileUnwritten:
			unwritten := false
			for _, x := range f.extents {
				unwritten = unwritten || x.unwritten
			}
			if !unwritten {
				fail(form, "no unwritten extent in %v", f.extents)
			}
		case FormFilePrealloc:
			if n := len(f.extents); n == 0 || (f.extents[n-1].off+f.extents[n-1].count)*bs <= size {
				fail(form, "nothing mapped past EOF %d: %v", size, f.extents)
			}
		case FormFileLarge:
			if size < 4<<20 {
				fail(form, "size %d", size)
			}
		case FormAttrShortform:
			if !strings.HasPrefix(aformat, "1 ") {
				fail(form, "attr fork format %q, want local", aformat)
			}
		case FormAttrLeaf, FormAttrNode:
			want := map[CorpusForm]string{FormAttrLeaf: "0x3bee", FormAttrNode: "0x3ebe"}[form]
			if v := f.fields["hdr.info.hdr.magic"]; v != want {
				fail(form, "attr block 0 magic %q, want %s", v, want)
			}
		case FormAttrRemote:
			remote := false
			for _, mm := range entriesLocal.FindAllStringSubmatch(f.text, -1) {
				remote = remote || mm[1] == "0"
			}
			if !remote {
				fail(form, "no non-local entry in attr leaf block 0")
			}
		}
		if e == nil {
			continue
		}
		switch form {
		case FormXattrUser, FormXattrTrusted, FormXattrSecurity:
			prefix := strings.TrimPrefix(string(form), "xattr-") + "."
			found := false
			for k := range e.Xattrs {
				found = found || strings.HasPrefix(k, prefix)
			}
			if !found {
				fail(form, "no %s* attribute among %d", prefix, len(e.Xattrs))
			}
		case FormACL:
			if _, ok := e.Xattrs["system.posix_acl_access"]; !ok {
				fail(form, "no system.posix_acl_access")
			}
		case FormHardLink:
			n := 0
			for _, o := range m.Tree.Entries {
				if e.LinkGroup != "" && o.LinkGroup == e.LinkGroup {
					n++
				}
			}
			if n != 3 || e.Nlink != 3 {
				fail(form, "link group of %d, nlink %d; want 3", n, e.Nlink)
			}
		case FormChr, FormBlk, FormFifo, FormSock:
			if string(e.Type) != string(form) {
				fail(form, "type %s", e.Type)
			}
		case FormName255:
			if len(filepath.Base(e.Path)) != 255 {
				fail(form, "name of %d bytes", len(filepath.Base(e.Path)))
			}
		case FormNameUTF8:
			if n := filepath.Base(e.Path); !utf8.ValidString(n) || utf8.RuneCountInString(n) == len(n) {
				fail(form, "name %q is not non-ASCII UTF-8", n)
			}
		case FormDeepPath:
			if strings.Count(e.Path, "/") < 32 {
				fail(form, "only %d levels deep", strings.Count(e.Path, "/"))
			}
		case FormSetuid, FormSetgid, FormSticky:
			bit := map[CorpusForm]uint32{FormSetuid: 0o4000, FormSetgid: 0o2000, FormSticky: 0o1000}[form]
			if e.Mode&bit == 0 {
				fail(form, "mode %04o", e.Mode)
			}
		case FormOwner:
			if e.UID != 1234 || e.GID != 5678 {
				fail(form, "owner %d:%d", e.UID, e.GID)
			}
		case FormTimeNsec:
			if e.Mtime.Nsec == 0 {
				fail(form, "mtime %s", e.Mtime)
			}
		case FormTimePost2038:
			if e.Mtime.Sec <= 1<<31 {
				fail(form, "mtime %s", e.Mtime)
			}
		case FormTimePre1970:
			if e.Mtime.Sec >= 0 {
				fail(form, "mtime %s", e.Mtime)
			}
		case FormTree:
			if e.Type != treecmp.Dir {
				fail(form, "type %s", e.Type)
			}
		}
	}
	return out
}

func maxOff(ext []dbExtent) int64 {
	var m int64 = -1
	for _, e := range ext {
		m = max(m, e.off)
	}
	return m
}

// holes describes where a file of size bytes has holes ("start", "middle",
// "end", space-separated), given its data fork extents (sorted by offset).
func holes(ext []dbExtent, size, bs int64) string {
	blocks := (size + bs - 1) / bs
	var h []string
	next := int64(0)
	for i, e := range ext {
		if e.off >= blocks {
			break
		}
		if e.off > next {
			if i == 0 {
				h = append(h, "start")
			} else {
				h = append(h, "middle")
			}
		}
		next = max(next, e.off+e.count)
	}
	if next < blocks {
		if next == 0 {
			h = append(h, "start")
		}
		h = append(h, "end")
	}
	return strings.Join(h, " ")
}
