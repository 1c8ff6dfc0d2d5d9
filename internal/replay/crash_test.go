package replay

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/check"
	"xfskit/internal/image"
	"xfskit/internal/oracle"
)

// faultUndo opens path under an undo journal whose image and journal
// writes both go through plan.
func faultUndo(t *testing.T, path string, plan *image.FaultPlan) *image.Undo {
	t.Helper()
	u, err := image.OpenFaultyUndo(path, plan)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type span struct {
	off int64
	n   int
}

func readSpans(t *testing.T, path string, spans []span) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []byte
	for _, s := range spans {
		b := make([]byte, s.n)
		if _, err := f.ReadAt(b, s.off); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func writeSpans(t *testing.T, path string, spans []span, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range spans {
		if _, err := f.WriteAt(data[:s.n], s.off); err != nil {
			t.Fatal(err)
		}
		data = data[s.n:]
	}
}

// TestCrashAtEveryWrite replays through a fault device that crashes at a
// mutating operation of image or journal (an even sample of about 20 and
// the last two: each run replays the whole log), with torn writes and, in a second pass,
// a volatile cache that loses part of the unsynced writes. After
// image.Recover every byte replay writes must be all old or all replayed.
// Replay's writes are deterministic, so the spans the uninterrupted run
// wrote are the only ones that can differ.
func TestCrashAtEveryWrite(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	crash(t, mnt)
	path := filepath.Join(t.TempDir(), "img")
	copyFile(t, img, path)

	var spans []span
	plan := &image.FaultPlan{OnOp: func(op image.Op) error {
		if op.Kind == image.OpWrite && !strings.HasSuffix(op.Dev, image.UndoSuffix) {
			spans = append(spans, span{op.Off, op.Len})
		}
		return nil
	}}
	u := faultUndo(t, path, plan)
	if _, err := Replay(u); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	u.Close()
	total := plan.Ops()
	if r, err := check.Run(path, check.Options{}); err != nil || !r.Clean() || r.DirtyLog {
		t.Fatalf("replayed through the fault layer: %v, dirty log %v, %d findings", err, r.DirtyLog, r.Total())
	}
	replayed := readSpans(t, path, spans)
	old := readSpans(t, img, spans)
	if bytes.Equal(old, replayed) || total < 4 {
		t.Fatalf("replay wrote nothing (%d operations)", total)
	}

	points := []int{}
	step := max(1, total/20)
	for k := 1; k <= total; k += step {
		points = append(points, k)
	}
	points = append(points, total-1, total)
	sawOld, sawNew := 0, 0
	for _, volatile := range []bool{false, true} {
		for _, k := range points {
			writeSpans(t, path, spans, old)
			os.Remove(path + image.UndoSuffix)
			plan := &image.FaultPlan{CrashAt: k, TornBytes: -1, Volatile: volatile, Seed: int64(k)}
			u := faultUndo(t, path, plan)
			_, err := Replay(u)
			if err == nil {
				err = u.Commit()
			}
			if !errors.Is(err, image.ErrCrashed) {
				t.Fatalf("crash at %d/%d (volatile %v): run ended with %v", k, total, volatile, err)
			}
			u.Close() // the crashed devices refuse the rollback: as if the process died
			if _, err := image.Recover(path); err != nil {
				t.Fatalf("crash at %d/%d (volatile %v): recover: %v", k, total, volatile, err)
			}
			switch got := readSpans(t, path, spans); {
			case bytes.Equal(got, old):
				sawOld++
			case bytes.Equal(got, replayed):
				sawNew++
			default:
				t.Fatalf("crash at %d/%d (volatile %v): recovered image is neither the old nor the replayed one", k, total, volatile)
			}
			if _, err := os.Stat(path + image.UndoSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("crash at %d: journal left after recovery", k)
			}
		}
	}
	if sawOld == 0 {
		t.Errorf("no crash point left the old image (%d runs)", 2*len(points))
	}
	t.Logf("%d operations, %d crash points: %d recovered to the old image, %d to the replayed one", total, 2*len(points), sawOld, sawNew)
}
