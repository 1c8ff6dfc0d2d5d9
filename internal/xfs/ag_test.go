package xfs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

func agxField(t *testing.T, out, name string) uint64 {
	t.Helper()
	v, err := oracle.Field(out, name)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(v)
	if len(f) == 0 || f[0] == "null" {
		return uint64(ondisk.NullAGBno)
	}
	n, err := strconv.ParseUint(f[0], 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The engine's AG header readers return what xfs_db shows for every AG of
// a kernel-written image, and report damage as located corruption.
func TestAGHeaderReaders(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "600m", "-d", "agcount=5", "-m", "rmapbt=1")
	mnt := oracle.Mount(t, img, false)
	oracle.MustBeMounted(t, mnt)
	for d := 0; d < 5; d++ {
		dir := filepath.Join(mnt, fmt.Sprint("d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), make([]byte, 3000*i), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	oracle.Unmount(t, mnt)

	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var inodes uint64
	for ag := uint32(0); ag < fs.SB.AGCount; ag++ {
		agf, err := fs.AGF(ag)
		if err != nil {
			t.Fatal(err)
		}
		agi, err := fs.AGI(ag)
		if err != nil {
			t.Fatal(err)
		}
		agfl, err := fs.AGFL(ag)
		if err != nil {
			t.Fatal(err)
		}
		out := oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("agf %d", ag), "p")
		for name, v := range map[string]uint64{"freeblks": uint64(agf.FreeBlks), "longest": uint64(agf.Longest),
			"bnoroot": uint64(agf.BnoRoot), "rmaproot": uint64(agf.RmapRoot), "flcount": uint64(agf.FLCount), "seqno": uint64(agf.SeqNo)} {
			if w := agxField(t, out, name); w != v {
				t.Errorf("AG %d AGF %s = %d, xfs_db %d", ag, name, v, w)
			}
		}
		out = oracle.DB(t, img, []string{"-r"}, fmt.Sprintf("agi %d", ag), "p")
		for name, v := range map[string]uint64{"count": uint64(agi.Count), "freecount": uint64(agi.FreeCount),
			"root": uint64(agi.Root), "newino": uint64(agi.NewIno), "seqno": uint64(agi.SeqNo)} {
			if w := agxField(t, out, name); w != v {
				t.Errorf("AG %d AGI %s = %d, xfs_db %d", ag, name, v, w)
			}
		}
		fl, err := agfl.FreeList(agf, ag, fs.SB)
		if err != nil || len(fl) != int(agf.FLCount) {
			t.Errorf("AG %d free list: %v, %v", ag, fl, err)
		}
		inodes += uint64(agi.Count)
	}
	if inodes < 500 {
		t.Errorf("AGIs count %d inodes, the kernel made more than 500", inodes)
	}
	for _, get := range []func(uint32) error{
		func(a uint32) error { _, err := fs.AGF(a); return err },
		func(a uint32) error { _, err := fs.AGI(a); return err },
		func(a uint32) error { _, err := fs.AGFL(a); return err },
	} {
		if err := get(fs.SB.AGCount); !errors.Is(err, xfs.ErrOutOfRange) {
			t.Errorf("AG %d: %v, want ErrOutOfRange", fs.SB.AGCount, err)
		}
	}

	// Damage AG 3's headers; the readers locate it and still return them.
	c := filepath.Join(t.TempDir(), "c.img")
	oracle.Run(t, "cp", "--sparse=always", img, c)
	oracle.DB(t, c, []string{"-x"}, "agf 3", "write -d freeblks 99999999", "agi 3", "write -d level 0", "agfl 3", "write -d seqno 7")
	fs2, err := xfs.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer fs2.Close()
	check := func(what, field string, decoded bool, err error) {
		t.Helper()
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.Where != "AG 3" || ce.Field != field || ce.Structure != what {
			t.Errorf("%s: %v, want %s corruption of %s in AG 3", what, err, what, field)
		}
		if !decoded {
			t.Errorf("%s: decoded header not returned with the error", what)
		}
	}
	agf, err := fs2.AGF(3)
	check("AGF", "freeblks", agf != nil, err)
	agi, err := fs2.AGI(3)
	check("AGI", "level", agi != nil, err)
	agfl, err := fs2.AGFL(3)
	check("AGFL", "seqno", agfl != nil, err)
	if _, err := fs2.AGF(2); err != nil {
		t.Errorf("undamaged AG 2: %v", err)
	}
}
