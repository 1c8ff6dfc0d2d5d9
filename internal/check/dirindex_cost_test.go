package check

import (
	"context"
	"os"
	"testing"
	"time"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// TestDirIndexCost times the index checks against the plain directory and
// attribute reads on an image named by XFSKIT_INDEX_BENCH (skipped without).
func TestDirIndexCost(t *testing.T) {
	img := os.Getenv("XFSKIT_INDEX_BENCH")
	if img == "" {
		t.Skip("XFSKIT_INDEX_BENCH names no image")
	}
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	c := &checker{fs: fs, sb: fs.SB, r: newReport()}
	var dirs, attrs []*xfs.Inode
	err = fs.WalkInodes(context.Background(), func(ino uint64, raw []byte) error {
		ip, err := fs.DecodeInode(ino, raw)
		if err != nil {
			return nil
		}
		if ip.IsDir() && ip.Format != ondisk.FmtLocal {
			dirs = append(dirs, ip)
		}
		if ip.ForkOff != 0 && ip.AFormat != ondisk.FmtLocal {
			attrs = append(attrs, ip)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]int{}
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		for _, ip := range dirs {
			if _, err := fs.ReadDir(ip); err != nil {
				t.Fatal(err)
			}
		}
		t1 := time.Now()
		for _, ip := range dirs {
			f, err := c.dirIndex(ip)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.out) > 0 {
				t.Errorf("inode %d: %v", ip.Ino, f.out)
			}
			if round == 0 {
				forms[fmt2(ip)]++
			}
		}
		t2 := time.Now()
		for _, ip := range attrs {
			if _, err := fs.ListXattrs(ip); err != nil {
				t.Fatal(err)
			}
		}
		t3 := time.Now()
		for _, ip := range attrs {
			f, err := c.attrIndex(ip)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.out) > 0 {
				t.Errorf("inode %d: %v", ip.Ino, f.out)
			}
		}
		t4 := time.Now()
		t.Logf("%d dirs %v: ReadDir %v, dirIndex %v; %d attr forks: ListXattrs %v, attrIndex %v", len(dirs), forms, t1.Sub(t0), t2.Sub(t1), len(attrs), t3.Sub(t2), t4.Sub(t3))
	}
}

func fmt2(ip *xfs.Inode) string {
	if ip.Size <= 65536 && ip.NBlocks <= 16 {
		return "small"
	}
	return "large"
}
