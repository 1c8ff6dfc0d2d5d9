package build

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
)

// geometryCase is one mkfs invocation: image size plus options.
type geometryCase struct {
	size int64
	args []string
}

func (c geometryCase) String() string {
	return fmt.Sprintf("%dM %s", c.size>>20, strings.Join(c.args, " "))
}

// geometryMatrix covers block sizes, inode sizes, AG and log options,
// feature bits, stripes and sizes from 16 MiB to 64 TiB (sparse, and
// only -N, so cheap).
func geometryMatrix(long bool) []geometryCase {
	const M, G, T = 1 << 20, 1 << 30, 1 << 40
	var cs []geometryCase
	sizes := []int64{16 * M, 20 * M, 32 * M, 40 * M, 64 * M, 100 * M, 128 * M, 200 * M, 299 * M, 300 * M, 512 * M,
		1 * G, 1*G + 4096*3, 4 * G, 8*G + 12345*512, 20 * G, 100 * G, 600 * G, 2 * T, 5 * T, 15 * T}
	for _, s := range sizes {
		cs = append(cs, geometryCase{s, nil})
	}
	opts := [][]string{
		{"-b", "size=1024"}, {"-b", "size=2048"}, {"-b", "size=8192"}, {"-b", "size=65536"},
		{"-i", "size=1024"}, {"-i", "size=2048"}, {"-b", "size=1k", "-i", "size=512"},
		{"-i", "perblock=4"},
		{"-d", "agcount=1"}, {"-d", "agcount=7"}, {"-d", "agcount=16"}, {"-d", "agsize=33m"},
		{"-l", "size=20m"}, {"-l", "size=2048b"}, {"-l", "agnum=0"}, {"-l", "agnum=1", "-d", "agcount=3"},
		{"-m", "finobt=0"}, {"-m", "finobt=0,inobtcount=0"}, {"-m", "reflink=0"}, {"-m", "rmapbt=1"},
		{"-m", "rmapbt=1,reflink=0"}, {"-m", "bigtime=0,inobtcount=0"}, {"-i", "sparse=0"},
		{"-i", "nrext64=1"}, {"-i", "maxpct=50"}, {"-n", "size=8192"}, {"-n", "size=64k"},
		{"-d", "su=64k,sw=4"}, {"-d", "su=256k,sw=2"}, {"-d", "su=1m,sw=3"}, {"-d", "sunit=128,swidth=512"},
		{"-d", "su=32k,sw=1"}, {"-d", "su=64k,sw=4", "-l", "su=32k"}, {"-l", "sunit=64"},
		{"-s", "size=4096"}, {"-s", "size=4096", "-b", "size=8k"}, {"-s", "size=2048"},
		{"-L", "label"}, {"-L", "twelve_chars"}, {"-d", "noalign"}, {"-n", "version=ci"},
		{"-m", "rmapbt=1", "-b", "size=1024"}, {"-m", "rmapbt=1", "-b", "size=65536"},
		{"-m", "rmapbt=1", "-i", "nrext64=1", "-b", "size=2048"},
		// Odd and invalid combinations: both must refuse the same ones.
		{"-d", "sectsize=4096"}, {"-l", "sectsize=4096"}, {"-i", "perblock=2", "-b", "size=1k"},
		{"-n", "size=4k", "-b", "size=8k"}, {"-i", "align=0"}, {"-l", "version=1"}, {"-l", "lazy-count=0"},
		{"-i", "attr=1"}, {"-n", "ftype=0"}, {"-i", "projid32bit=0"}, {"-d", "sunit=0,swidth=0"},
		{"-d", "su=0,sw=0"}, {"-r", "extsize=64k"}, {"-r", "extsize=5000"}, {"-r", "size=1g"},
		{"-d", "size=100000s"}, {"-d", "size=1000b"}, {"-d", "size=0x8000000"}, {"-d", "size=0100000000"},
		{"-l", "size=10m,agnum=0"}, {"-d", "agsize=512m", "-l", "agnum=3"}, {"-d", "agsize=100m"},
		{"-l", "su=300k"}, {"-l", "sunit=7"}, {"-n", "version=1"}, {"-d", "file=0"}, {"-i", "nrext64"},
		{"-m", "rmapbt"}, {"-d", "su=64k,sw=2", "-l", "su=128k"}, {"-d", "su=512k,sw=2"}, {"-d", "su=4k,sw=1000"},
		{"-b", "size=512"}, {"-i", "size=256"}, {"-d", "agcount=0"}, {"-d", "agcount=100000"},
	}
	optSizes := []int64{64 * M, 300 * M, 1 * G, 20 * G}
	if long {
		optSizes = []int64{16 * M, 40 * M, 64 * M, 300 * M, 1 * G, 5 * G, 20 * G, 700 * G, 5 * T}
	}
	for _, o := range opts {
		for _, s := range optSizes {
			cs = append(cs, geometryCase{s, o})
		}
	}
	return cs
}

// TestDryRunMatchesMkfs compares the -N geometry block with mkfs.xfs 6.1
// for every case of the matrix, and that both accept or refuse alike.
func TestDryRunMatchesMkfs(t *testing.T) {
	dir := t.TempDir()
	long := os.Getenv("XFSKIT_LONG") == "1" || !testing.Short() && os.Getenv("XFSKIT_LONG") != "0"
	for i, c := range geometryMatrix(long) {
		img := sparseFile(t, dir, fmt.Sprintf("img%d", i), c.size)
		want, werr, code := realMkfs(t, append(append([]string{"-N", "-f"}, c.args...), img)...)
		got, err := ourReport(t, c.args, img)
		switch {
		case code != 0 && err == nil:
			t.Errorf("%v: mkfs.xfs refused (%s) but we accepted", c, strings.TrimSpace(firstLine(werr)))
		case code == 0 && err != nil:
			t.Errorf("%v: mkfs.xfs accepted but we refused: %v", c, err)
		case code == 0 && got != want:
			t.Errorf("%v: geometry differs\n--- mkfs.xfs\n%s--- ours\n%s", c, want, got)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// randomCases draws option combinations, including invalid ones, so that
// refusals are compared too.
func randomCases(n int, seed int64) []geometryCase {
	r := rand.New(rand.NewSource(seed))
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	var cs []geometryCase
	for len(cs) < n {
		size := int64(16<<20) + r.Int63n(1<<r.Intn(44-24)<<24)
		size &^= 511
		var args []string
		if r.Intn(2) == 0 {
			args = append(args, "-b", "size="+pick("1024", "2048", "4096", "8192", "16384", "65536"))
		}
		if r.Intn(3) == 0 {
			args = append(args, "-i", "size="+pick("512", "1024", "2048"))
		}
		switch r.Intn(6) {
		case 0:
			args = append(args, "-d", fmt.Sprintf("agcount=%d", 1+r.Intn(40)))
		case 1:
			args = append(args, "-d", fmt.Sprintf("agsize=%dm", 16+r.Intn(2000)))
		}
		switch r.Intn(6) {
		case 0:
			args = append(args, "-d", "su="+pick("4k", "8k", "32k", "64k", "128k", "256k", "512k", "1m")+",sw="+pick("1", "2", "3", "4", "8", "16"))
		case 1:
			args = append(args, "-d", fmt.Sprintf("sunit=%d,swidth=%d", 8<<r.Intn(8), (8<<r.Intn(8))*(1+r.Intn(6))))
		}
		switch r.Intn(6) {
		case 0:
			args = append(args, "-l", fmt.Sprintf("size=%dm", 2+r.Intn(200)))
		case 1:
			args = append(args, "-l", "su="+pick("4k", "32k", "64k", "256k"))
		case 2:
			args = append(args, "-l", fmt.Sprintf("agnum=%d", r.Intn(6)))
		}
		var m []string
		for _, f := range []string{"finobt", "rmapbt", "reflink", "inobtcount", "bigtime"} {
			if r.Intn(4) == 0 {
				m = append(m, fmt.Sprintf("%s=%d", f, r.Intn(2)))
			}
		}
		if len(m) > 0 {
			args = append(args, "-m", strings.Join(m, ","))
		}
		if r.Intn(5) == 0 {
			args = append(args, "-i", fmt.Sprintf("sparse=%d,nrext64=%d", r.Intn(2), r.Intn(2)))
		}
		if r.Intn(6) == 0 {
			args = append(args, "-n", "size="+pick("4096", "8192", "16k", "65536"))
		}
		if r.Intn(8) == 0 {
			args = append(args, "-s", "size="+pick("512", "1024", "4096"))
		}
		if r.Intn(8) == 0 {
			args = append(args, "-i", fmt.Sprintf("maxpct=%d", r.Intn(101)))
		}
		cs = append(cs, geometryCase{size, args})
	}
	return cs
}

// TestDryRunRandomMatchesMkfs is the randomized counterpart of
// TestDryRunMatchesMkfs.
func TestDryRunRandomMatchesMkfs(t *testing.T) {
	n := 150
	if os.Getenv("XFSKIT_LONG") == "1" {
		n = 3000
	}
	dir := t.TempDir()
	accepted := 0
	defer func() { t.Logf("%d of %d cases accepted by mkfs.xfs", accepted, n) }()
	for i, c := range randomCases(n, 1) {
		img := sparseFile(t, dir, fmt.Sprintf("img%d", i), c.size)
		want, werr, code := realMkfs(t, append(append([]string{"-N", "-f"}, c.args...), img)...)
		got, err := ourReport(t, c.args, img)
		os.Remove(img)
		if code == 0 {
			accepted++
		}
		switch {
		case code != 0 && err == nil:
			t.Errorf("%v: mkfs.xfs refused (%s) but we accepted", c, strings.TrimSpace(firstLine(werr)))
		case code == 0 && err != nil:
			t.Errorf("%v: mkfs.xfs accepted but we refused: %v", c, err)
		case code == 0 && got != want:
			t.Errorf("%v: geometry differs\n--- mkfs.xfs\n%s--- ours\n%s", c, want, got)
		}
	}
}
