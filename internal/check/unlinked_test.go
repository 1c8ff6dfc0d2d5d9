package check_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/image"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
	"xfskit/internal/replay"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// agiPatch moves the first non-empty AGI unlinked bucket of AG 0 to the
// next bucket, resealing the AGI: a list in the wrong bucket.
type agiPatch struct {
	image.Device
	daddr uint64 // the AGI's
}

func (p agiPatch) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.Device.ReadAt(b, off)
	at := int64(p.daddr) * ondisk.BBSize
	if off <= at && at+ondisk.BBSize <= off+int64(len(b)) {
		agi := b[at-off : at-off+ondisk.BBSize]
		be := binary.BigEndian
		for i := 0; i < ondisk.AGIUnlinkedBuckets; i++ {
			if v := be.Uint32(agi[40+4*i:]); v != ondisk.NullAGIno {
				be.PutUint32(agi[40+4*i:], ondisk.NullAGIno)
				be.PutUint32(agi[40+4*((i+1)%ondisk.AGIUnlinkedBuckets):], v)
				break
			}
		}
		ondisk.SetCRC(agi, ondisk.AGICRCOff)
	}
	return n, err
}

// TestUnlinkedLists: a file deleted while open, left on its unlinked list by
// a log replayed in memory, is judged as a list member with
// Options.UnlinkedLists (clean) and as lost without it; a list in the
// wrong bucket is found.
func TestUnlinkedLists(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	logtest.Crash(t, mnt, true)
	base, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	dev, res, err := replay.InMemory(base.Dev)
	if err != nil || res.UnlinkedInodes != 1 {
		t.Fatalf("in-memory replay: %v, %+v", err, res)
	}
	run := func(d image.Device, lists bool) *check.Report {
		t.Helper()
		fs, err := xfs.OpenDevice(d)
		if err != nil {
			t.Fatal(err)
		}
		r, err := check.CheckFS(fs, check.Options{UnlinkedLists: lists})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run(dev, true); !r.Clean() {
		t.Fatalf("with UnlinkedLists: findings:\n%s", findings(r))
	}
	if r := run(dev, false); r.Clean() || !strings.Contains(findings(r), "unlinked bucket") {
		t.Fatalf("without UnlinkedLists: findings:\n%s", findings(r))
	}
	agi := base.AGHeaderDaddr(0, 2)
	if r := run(agiPatch{dev, agi}, true); !strings.Contains(findings(r), "hashes to bucket") {
		t.Fatalf("a list in the wrong bucket: findings:\n%s", findings(r))
	}
}
