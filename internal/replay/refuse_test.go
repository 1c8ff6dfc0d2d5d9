package replay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfskit/internal/image"
	"xfskit/internal/logtest"
	"xfskit/internal/oracle"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// refused runs a replay that must be refused with want in its message and
// leave the image exactly as it was, with no journal; the kernel must
// still recover the image afterwards.
func refused(t *testing.T, img string, want string, sentinel error) {
	t.Helper()
	before := oracle.FileHash(t, img)
	_, err := Run(img)
	if err == nil || !strings.Contains(err.Error(), want) || (sentinel != nil && !errors.Is(err, sentinel)) {
		t.Fatalf("replay: %v; want an error saying %q", err, want)
	}
	t.Logf("refused: %v", err)
	if oracle.FileHash(t, img) != before {
		t.Fatal("a refused replay changed the image")
	}
	if _, err := os.Stat(img + image.UndoSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("undo journal left behind: %v", err)
	}
	mnt := oracle.Mount(t, img, false)
	oracle.Unmount(t, mnt)
	oracle.RequireRepairClean(t, img)
}

// TestRefuseOpenUnlinked: a file deleted while open sits on an AGI unlinked
// list; only the kernel can free it, so replay refuses.
func TestRefuseOpenUnlinked(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	logtest.Crash(t, mnt, true)
	refused(t, img, "deleted while still open", ErrUnsupported)
}

// TestRefuseUnfinishedIntents removes a file of many extents and shuts the
// filesystem down while the kernel frees them: a log holding intents
// without their done items is refused. The timing decides what the crash
// catches, so a few delays are tried; every outcome must be a correct
// replay or an untouched image.
func TestRefuseUnfinishedIntents(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	if testing.Short() {
		t.Skip("slow: builds a file of 30,000 extents per attempt")
	}
	sawIntents := false
	for _, delay := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond} {
		img := oracle.Mkfs(t, "600m", "-m", "rmapbt=1,reflink=1")
		mnt := oracle.Mount(t, img, false)
		oracle.MustBeMounted(t, mnt)
		frag := filepath.Join(mnt, "frag")
		args := []string{"-f", "-c", "falloc 0 120m"}
		for i := 0; i < 30000; i++ {
			args = append(args, "-c", fmt.Sprintf("fpunch %d 4096", 2*i*4096))
		}
		oracle.Run(t, "xfs_io", append(args, frag)...)
		oracle.Run(t, "sync", "-f", mnt)
		if err := os.Remove(frag); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		// No syncfs (it would finish the removal): shut down mid-way.
		oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
		oracle.Unmount(t, mnt)
		before := oracle.FileHash(t, img)
		_, err := Run(img)
		switch {
		case err == nil:
			oracle.RequireRepairClean(t, img)
		case strings.Contains(err.Error(), "unfinished intents"):
			sawIntents = true
			if oracle.FileHash(t, img) != before {
				t.Fatal("refused replay changed the image")
			}
			refused(t, img, "unfinished intents", ErrUnsupported)
		case errors.Is(err, ErrUnsupported):
			refused(t, img, "", ErrUnsupported)
		default:
			t.Fatalf("delay %v: %v", delay, err)
		}
	}
	if !sawIntents {
		t.Log("no attempt caught the kernel between an intent and its done item")
	}
}

// TestDamagedRecordRefused: a record whose CRC fails in the middle of the
// log (not at the head, where it would be a torn write) stops replay with an
// error naming the block and the CRC; nothing is written.
func TestDamagedRecordRefused(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	crash(t, mnt)
	st := logtest.DamageFirstRecord(t, img)
	before := oracle.FileHash(t, img)
	_, err := Run(img)
	var ce *ondisk.CorruptError
	if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "CRC mismatch") || !strings.Contains(err.Error(), fmt.Sprintf("log block %d", st.TailBlock)) {
		t.Fatalf("replay of a damaged log: %v", err)
	}
	t.Logf("refused: %v", err)
	if oracle.FileHash(t, img) != before {
		t.Fatal("a refused replay changed the image")
	}
}

// TestTornHeadReplaysLikeKernel damages the last record before the head:
// like the kernel, replay takes it for a write torn by the crash, drops it
// and replays the rest; the result must equal the kernel's recovery of the
// same damaged image.
func TestTornHeadReplaysLikeKernel(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	oracle.Run(t, "sync", "-f", mnt) // a checkpoint of its own, kept
	workload(t, mnt, "b")            // the last checkpoint, torn
	crash(t, mnt)
	if st := logtest.Flip(t, img, func(st *xlog.State) (uint32, int64) { return st.LastRecordBlock, 64 }, 0xff); st.Torn != nil {
		t.Fatalf("the log was torn before the damage: %v", st)
	}
	if st := dirty(t, img); st.Torn == nil {
		t.Fatalf("damage at the head not taken for a torn write: %v", st)
	}
	res := replayAndCompare(t, img)
	if res.Torn == "" {
		t.Fatal("replay did not report the torn write")
	}
}
