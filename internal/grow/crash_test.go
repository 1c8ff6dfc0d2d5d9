package grow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

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

// TestCrashAtEveryWrite grows an image (extending the file, the last AG
// and adding AGs) through a fault device that crashes at every mutating
// operation of image and journal in turn, with torn writes and, in a second
// pass, a volatile cache that loses a random part of unsynced writes. After
// image.Recover the image must be byte for byte the old one or the fully
// grown one.
func TestCrashAtEveryWrite(t *testing.T) {
	oracle.Require(t, oracle.Tools)
	base := mkfs(t, 40<<20, "-m", "rmapbt=1", "-d", "agsize=24m")
	sb := superblock(t, base)
	opts := Options{Data: true, ExtendTo: int64(target(sb, both)) * int64(sb.BlockSize), IMaxPct: 30}
	old, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "img")
	reset := func() {
		t.Helper()
		os.Remove(path + image.UndoSuffix)
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// An uninterrupted run counts the operations and gives the new image.
	reset()
	plan := &image.FaultPlan{}
	u := faultUndo(t, path, plan)
	if _, err := Grow(u, opts); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	u.Close()
	total := plan.Ops()
	grown, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clean(t, path, "grown through the fault layer")
	if len(grown) <= len(old) || total < 10 {
		t.Fatalf("grown image %d bytes (old %d), %d operations", len(grown), len(old), total)
	}

	sawOld, sawNew := 0, 0
	for _, volatile := range []bool{false, true} {
		for k := 1; k <= total; k++ {
			reset()
			plan := &image.FaultPlan{CrashAt: k, TornBytes: -1, Volatile: volatile, Seed: int64(k)}
			u := faultUndo(t, path, plan)
			_, err := Grow(u, opts)
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
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case bytes.Equal(got, old):
				sawOld++
			case bytes.Equal(got, grown):
				sawNew++
			default:
				t.Fatalf("crash at %d/%d (volatile %v): recovered image (%d bytes) is neither the old (%d) nor the grown one (%d)", k, total, volatile, len(got), len(old), len(grown))
			}
			if _, err := os.Stat(path + image.UndoSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("crash at %d: journal left after recovery", k)
			}
		}
	}
	if sawOld == 0 {
		t.Errorf("no crash point left the old image (%d runs)", 2*total)
	}
	t.Logf("%d crash points: %d recovered to the old image, %d to the grown one", 2*total, sawOld, sawNew)
}
