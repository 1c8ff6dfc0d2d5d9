package ondisk_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

func TestExtentPacking(t *testing.T) {
	// l0: flag | startoff<<9 | startblock>>43; l1: startblock<<21 | count.
	e := ondisk.Extent{Offset: 0x2a, StartBlock: 1<<43 | 0x155, Length: 0x1fffff, Unwritten: true}
	var b [16]byte
	e.Encode(b[:])
	l0, l1 := binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint64(b[8:])
	if l0 != 1<<63|0x2a<<9|1 || l1 != 0x155<<21|0x1fffff {
		t.Fatalf("packed l0=%#x l1=%#x", l0, l1)
	}
	if got, _ := ondisk.DecodeExtent(b[:]); got != e {
		t.Fatalf("round trip %v, want %v", got, e)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		e := ondisk.Extent{
			Offset:     r.Uint64() & (1<<54 - 1),
			StartBlock: r.Uint64() & (1<<52 - 1),
			Length:     r.Uint64() & (1<<21 - 1),
			Unwritten:  r.IntN(2) == 1,
		}
		e.Encode(b[:])
		if got, _ := ondisk.DecodeExtent(b[:]); got != e {
			t.Fatalf("round trip %v, got %v", e, got)
		}
	}
	if _, err := ondisk.DecodeExtent(b[:15]); err == nil {
		t.Fatal("short record accepted")
	}
	if _, err := ondisk.DecodeExtents(make([]byte, 40), 3); err == nil {
		t.Fatal("3 records in 40 bytes accepted")
	}
	var k [8]byte
	ondisk.EncodeBmbtKey(k[:], 987654321)
	if v, _ := ondisk.DecodeBmbtKey(k[:]); v != 987654321 {
		t.Fatalf("key %d", v)
	}
}

func TestBmbtLimits(t *testing.T) {
	if n := ondisk.BmbtMaxRecs(4096, true); n != (4096-72)/16 {
		t.Errorf("leaf maxrecs %d", n)
	}
	if n := ondisk.BmdrMaxRecs(192, false); n != (192-4)/16 {
		t.Errorf("bmdr maxrecs %d", n)
	}
	// A 2^31-extent data fork needs more levels on 1 KiB blocks than 64 KiB.
	small := ondisk.BmbtMaxLevels(1024, 192, ondisk.MaxExtCntDataSmall)
	large := ondisk.BmbtMaxLevels(65536, 192, ondisk.MaxExtCntDataSmall)
	if small <= large || small > ondisk.BmbtMaxLevelsCap || large < 2 {
		t.Errorf("max levels 1k=%d 64k=%d", small, large)
	}
}

// Decodes the extent records of kernel-written inodes (written, unwritten
// via fallocate, sparse) and compares them with xfs_db's bmap.
func TestExtentsAgainstXFSDB(t *testing.T) {
	names := []string{"mixed"}
	img, inos := inoKernelImage(t, nil, names, func(mnt string) {
		f, err := os.Create(filepath.Join(mnt, "mixed"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{64 << 10, 300 << 10, 3 << 20, 9 << 20} {
			if _, err := f.WriteAt(bytes.Repeat([]byte{1}, 8192), off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	})
	sb := inoImageSB(t, img)
	ino := inos["mixed"]
	raw := inoRawInode(t, img, sb, ino)
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != ondisk.FmtExtents {
		t.Fatalf("format %s", ondisk.FormatName(d.Format))
	}
	data, _, err := d.Forks(raw)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := ondisk.DecodeExtents(data, d.NExtents)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	unwritten := 0
	for _, e := range ext {
		if p := sb.ExtentProblem(e); p != "" {
			t.Errorf("extent %v: %s", e, p)
		}
		agno, agbno := sb.FSBToAG(e.StartBlock)
		flag := 0
		if e.Unwritten {
			flag = 1
			unwritten++
		}
		got = append(got, fmt.Sprintf("data offset %d startblock %d (%d/%d) count %d flag %d", e.Offset, e.StartBlock, agno, agbno, e.Length, flag))
	}
	out := oracle.DB(t, img, []string{"-r"}, "inode "+strconv.FormatUint(ino, 10), "bmap")
	if want := strings.TrimSpace(out); strings.Join(got, "\n") != want {
		t.Fatalf("extents:\n%s\nxfs_db bmap:\n%s", strings.Join(got, "\n"), want)
	}
	if unwritten == 0 || len(ext) < 5 {
		t.Fatalf("expected a mix of written and unwritten extents, got %v", ext)
	}
	// Re-encoding every record gives the fork bytes back.
	enc := make([]byte, len(ext)*16)
	for i, e := range ext {
		e.Encode(enc[i*16:])
	}
	if !bytes.Equal(enc, data[:len(enc)]) {
		t.Fatal("re-encoded records differ from the fork")
	}
}

func TestExtentProblem(t *testing.T) {
	sb := &ondisk.Superblock{AGBlocks: 16384, AGBlkLog: 14, AGCount: 4, DBlocks: 60000}
	for _, c := range []struct {
		e  ondisk.Extent
		ok bool
	}{
		{ondisk.Extent{Offset: 0, StartBlock: 100, Length: 10}, true},
		{ondisk.Extent{Offset: 0, StartBlock: 3<<14 | 100, Length: 10}, true},
		{ondisk.Extent{Offset: 0, StartBlock: 100, Length: 0}, false},
		{ondisk.Extent{Offset: 0, StartBlock: 16380, Length: 10}, false},         // crosses into AG 1
		{ondisk.Extent{Offset: 0, StartBlock: 3<<14 | 11000, Length: 10}, false}, // past the short last AG
		{ondisk.Extent{Offset: 0, StartBlock: 4 << 14, Length: 1}, false},
		{ondisk.Extent{Offset: 0, StartBlock: 1 << 46, Length: 1}, false}, // AG number wraps 32 bits
		{ondisk.Extent{Offset: ondisk.MaxFileOff - 1, StartBlock: 100, Length: 1}, true},
		{ondisk.Extent{Offset: ondisk.MaxFileOff, StartBlock: 100, Length: 1}, false},
	} {
		if p := sb.ExtentProblem(c.e); (p == "") != c.ok {
			t.Errorf("%v: problem %q, want ok=%v", c.e, p, c.ok)
		}
	}
}
