package build

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
)

// makeOurs formats a new sparse image of size bytes with Run.
func makeOurs(t *testing.T, size int64, args ...string) (string, *Geometry) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	o := parseArgs(t, append(append([]string{"-q", "-d", fmt.Sprintf("size=%d", size)}, args...), img))
	g, err := Run(o, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("Run %v: %v", args, err)
	}
	return img, g
}

// fillThroughKernel mounts img, checks the kernel sees an empty
// filesystem of the planned geometry, then creates files, directories,
// hard links, symlinks and extended attributes. It returns a manifest of
// what it wrote (path → content hash and xattr).
func fillThroughKernel(t *testing.T, img string, g *Geometry) map[string]string {
	t.Helper()
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("new filesystem root holds %d entries", len(ents))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bsize != int64(g.BlockSize) {
		t.Errorf("kernel block size %d, planned %d", st.Bsize, g.BlockSize)
	}
	// XFS reports the data blocks minus the internal log as the total.
	if want := g.DBlocks - uint64(g.LogBlocks); st.Blocks != want {
		t.Errorf("kernel reports %d blocks, want %d (dblocks - log)", st.Blocks, want)
	}
	man := map[string]string{}
	write := func(rel string, data []byte) {
		p := filepath.Join(mnt, rel)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		man[rel] = fmt.Sprintf("%x", sha256.Sum256(data))
	}
	for d := 0; d < 4; d++ {
		dir := fmt.Sprintf("dir%d", d)
		if err := os.MkdirAll(filepath.Join(mnt, dir, "sub", "deeper"), 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < 150; f++ {
			write(filepath.Join(dir, fmt.Sprintf("file-with-a-longish-name-%04d", f)), bytes.Repeat([]byte{byte(f)}, f*37))
		}
	}
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	write("big", big)
	if err := os.Link(filepath.Join(mnt, "big"), filepath.Join(mnt, "dir0", "biglink")); err != nil {
		t.Fatal(err)
	}
	man["dir0/biglink"] = man["big"]
	if err := os.Symlink(strings.Repeat("x", 300), filepath.Join(mnt, "longlink")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("user.attr%d", i)
		if err := syscall.Setxattr(filepath.Join(mnt, "big"), name, bytes.Repeat([]byte("v"), 10+i*50), 0); err != nil {
			t.Fatalf("setxattr %s: %v", name, err)
		}
	}
	if err := syscall.Setxattr(filepath.Join(mnt, "dir1"), "user.big", bytes.Repeat([]byte("z"), 3000), 0); err != nil {
		t.Fatal(err)
	}
	// Churn: remove half of one directory's files and add more.
	for f := 0; f < 150; f += 2 {
		rel := filepath.Join("dir2", fmt.Sprintf("file-with-a-longish-name-%04d", f))
		os.Remove(filepath.Join(mnt, rel))
		delete(man, rel)
	}
	oracle.Unmount(t, mnt)
	return man
}

// verifyThroughKernel remounts img read-only and checks the manifest.
func verifyThroughKernel(t *testing.T, img string, man map[string]string) {
	t.Helper()
	mnt := oracle.Mount(t, img, true)
	oracle.MustBeMounted(t, mnt)
	for rel, sum := range man {
		data, err := os.ReadFile(filepath.Join(mnt, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(data)); got != sum {
			t.Errorf("%s: content changed", rel)
		}
	}
	buf := make([]byte, 4096)
	if n, err := syscall.Getxattr(filepath.Join(mnt, "dir1"), "user.big", buf); err != nil || n != 3000 {
		t.Errorf("xattr user.big: %d bytes, %v", n, err)
	}
	oracle.Unmount(t, mnt)
}

// TestKernelUsesOurImages formats images with a spread of options, lets
// the kernel fill them, and checks xfs_repair -n before and after.
func TestKernelUsesOurImages(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	const M, G = 1 << 20, 1 << 30
	cases := []geometryCase{
		{512 * M, nil},
		{20 * M, nil},
		{100 * M, []string{"-b", "size=1024", "-m", "rmapbt=1"}},
		{300 * M, []string{"-b", "size=8192", "-i", "size=2048", "-L", "xfskit"}},
		{300 * M, []string{"-b", "size=2048", "-i", "size=1024", "-d", "agsize=50m"}},
		{1 * G, []string{"-b", "size=65536"}},
		{1 * G, []string{"-d", "su=64k,sw=4", "-m", "finobt=0,inobtcount=0,reflink=0"}},
		{200 * M, []string{"-d", "agcount=1", "-i", "sparse=0,nrext64=1", "-m", "bigtime=0,inobtcount=0"}},
		{2 * G, []string{"-s", "size=4096", "-l", "size=4000b", "-n", "size=16k"}},
	}
	if os.Getenv("XFSKIT_LONG") == "1" {
		cases = append(cases,
			geometryCase{20 * G, nil},
			geometryCase{5 * G, []string{"-m", "rmapbt=1", "-d", "agcount=9", "-l", "su=256k"}},
			geometryCase{512 * M, []string{"-b", "size=65536", "-i", "size=1024", "-m", "rmapbt=1,reflink=0"}})
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.String(), " ", "_"), func(t *testing.T) {
			img, g := makeOurs(t, c.size, c.args...)
			repairClean(t, img, g)
			man := fillThroughKernel(t, img, g)
			repairClean(t, img, g)
			verifyThroughKernel(t, img, man)
		})
	}
}
