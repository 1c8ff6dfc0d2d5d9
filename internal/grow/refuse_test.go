package grow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/image"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
)

// refused runs Run and requires it to fail with want (and the message to
// contain each of words) leaving the image file exactly as it was, with no
// journal behind.
func refused(t *testing.T, img string, o Options, want error, words ...string) {
	t.Helper()
	before := oracle.FileHash(t, img)
	_, err := Run(img, o)
	if err == nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if after := oracle.FileHash(t, img); after != before {
		t.Errorf("refused run changed the image (%s -> %s)", before, after)
	}
	if _, err := os.Stat(img + image.UndoSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused run left a journal: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	base := mkfs(t, 48<<20, "-d", "agsize=16m")
	sb := superblock(t, base)
	bs := int64(sb.BlockSize)
	if int64(sb.DBlocks)*bs != 48<<20 {
		t.Fatalf("mkfs.xfs made %d blocks of %d: the tests need the image full", sb.DBlocks, bs)
	}

	t.Run("shrink", func(t *testing.T) {
		refused(t, base, Options{Data: true, Blocks: sb.DBlocks - 100, IMaxPct: -1}, ErrShrink, "smaller")
		refused(t, base, Options{Data: true, ExtendTo: int64(sb.DBlocks)*bs - 4096, IMaxPct: -1}, ErrShrink, "--size")
	})
	t.Run("too-large", func(t *testing.T) {
		refused(t, base, Options{Data: true, Blocks: sb.DBlocks + 1000, IMaxPct: -1}, ErrTooLarge, "too large", "--size")
	})
	t.Run("imaxpct", func(t *testing.T) {
		refused(t, base, Options{IMaxPct: 101}, nil, "imaxpct")
	})
	t.Run("unchanged", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		before := oracle.FileHash(t, img)
		res, err := Run(img, Options{Data: true, IMaxPct: -1})
		if err != nil || res.Changed || len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "unchanged") {
			t.Fatalf("%+v, %v", res, err)
		}
		if oracle.FileHash(t, img) != before {
			t.Fatal("a run with nothing to do changed the image")
		}
	})
	t.Run("dry-run", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		before := oracle.FileHash(t, img)
		res, err := Run(img, Options{Data: true, ExtendTo: 80 << 20, DryRun: true, IMaxPct: 5})
		if err != nil || !res.Changed || res.NewBlocks != uint64(80<<20)/uint64(bs) || res.NewIMaxPct != 5 {
			t.Fatalf("%+v, %v", res, err)
		}
		if oracle.FileHash(t, img) != before {
			t.Fatal("a dry run changed the image")
		}
	})
	t.Run("small-tail", func(t *testing.T) {
		// A remainder under 64 blocks past the last full AG is not added.
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		full := (sb.DBlocks/uint64(sb.AGBlocks) + 1) * uint64(sb.AGBlocks)
		res, err := Run(img, Options{Data: true, ExtendTo: int64(full+MinAGBlocks-1) * bs, IMaxPct: -1})
		if err != nil || res.NewBlocks != full || len(res.Notes) == 0 {
			t.Fatalf("%+v, %v", res, err)
		}
		clean(t, img, "after a grow with a short tail")
	})
	t.Run("corrupt-superblock", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte{0xde, 0xad}, 8) // sb_dblocks: the CRC no longer matches
		f.Close()
		refused(t, img, Options{Data: true, ExtendTo: 80 << 20, IMaxPct: -1}, ErrCorrupt, "superblock")
	})
	t.Run("corrupt-last-AG", func(t *testing.T) {
		// The extended AG's free space must add up before it is rebuilt.
		img := mkfs(t, 64<<20, "-d", "agsize=24m")
		last := superblock(t, img).AGCount - 1
		oracle.DB(t, img, []string{"-x"}, fmt.Sprintf("agf %d", last), "write freeblks 4090")
		refused(t, img, Options{Data: true, ExtendTo: 80 << 20, IMaxPct: -1}, ErrCorrupt, fmt.Sprintf("AG %d", last), "freeblks")
	})
	t.Run("locked", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		u, err := image.OpenAtomic(img)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		refused(t, img, Options{Data: true, ExtendTo: 80 << 20, IMaxPct: -1}, nil, "in use")
	})
	t.Run("mounted", func(t *testing.T) {
		oracle.Require(t, oracle.Root, oracle.Loop)
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		mnt := oracle.Mount(t, img, true)
		_, err := Run(img, Options{Data: true, ExtendTo: 80 << 20, IMaxPct: -1})
		if !errors.Is(err, ErrMounted) || !strings.Contains(err.Error(), mnt) {
			t.Fatalf("got %v, want ErrMounted naming %s", err, mnt)
		}
		oracle.Unmount(t, mnt)
		if st, _ := os.Stat(img); st.Size() != 48<<20 {
			t.Errorf("refused run changed the size to %d", st.Size())
		}
	})
	// A log replay cannot finish (a file deleted while open): refused,
	// nothing written. (A log it can finish is replayed first:
	// TestGrowReplaysDirtyLog.)
	t.Run("dirty-log", func(t *testing.T) {
		oracle.Require(t, oracle.Root, oracle.Loop)
		img := filepath.Join(t.TempDir(), "img")
		copyImage(t, base, img)
		mnt := oracle.Mount(t, img, false)
		writeFile(t, filepath.Join(mnt, "f"), 4096)
		logtest.Crash(t, mnt, true)
		refused(t, img, Options{Data: true, ExtendTo: 80 << 20, IMaxPct: -1}, ErrDirtyLog, "deleted while still open")
	})
}
