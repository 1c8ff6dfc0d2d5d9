package grow

import (
	"errors"
	"os"
	"strings"
	"testing"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
)

// TestStopRollsBack: Ctrl-C half way through a grow (Options.Stop closed)
// ends it at the next write and rolls it back at once: the image is byte
// for byte as it was, its size too, and no undo journal is left for the
// next run to play back (before, the journal stayed and check and dump
// refused the image until growfs ran again). In place (--atomic=no) the
// error says the filesystem may be half grown.
func TestStopRollsBack(t *testing.T) {
	img := mkfs(t, 64<<20)
	before := oracle.FileHash(t, img)
	size := func() int64 {
		st, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	oldSize := size()
	for _, noAtomic := range []bool{false, true} {
		stop := make(chan struct{})
		calls := 0
		o := Options{Data: true, ExtendTo: 64 << 30, IMaxPct: -1, NoAtomic: noAtomic, Stop: stop,
			Progress: func(done, total int) {
				if calls++; calls == 3 {
					close(stop)
				}
			}}
		_, err := Run(img, o)
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("atomic=%v: %v", !noAtomic, err)
		}
		t.Log(err)
		if _, serr := os.Lstat(img + image.UndoSuffix); !os.IsNotExist(serr) {
			t.Errorf("atomic=%v: undo journal left: %v", !noAtomic, serr)
		}
		if noAtomic {
			if !strings.Contains(err.Error(), "half grown") {
				t.Errorf("in place: %v", err)
			}
			continue
		}
		if h := oracle.FileHash(t, img); h != before || size() != oldSize {
			t.Fatalf("interrupted grow changed the image (size %d, was %d)", size(), oldSize)
		}
	}
}
