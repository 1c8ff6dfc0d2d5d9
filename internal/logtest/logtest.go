// Package logtest holds test helpers for images with a dirty log.
package logtest

import (
	"os"
	"path/filepath"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/ondisk"
)

// DamageFirstRecord flips a payload byte of the first log record after the
// tail of img's dirty log: a damaged record in the middle of the log, not a
// torn write at its head. It returns the log's state before the damage.
func DamageFirstRecord(t testing.TB, img string) *xlog.State {
	t.Helper()
	st := Flip(t, img, func(st *xlog.State) (uint32, int64) { return st.TailBlock, 100 }, 0x5a)
	if st.Records < ondisk.LogMaxIclogs+2 {
		t.Fatalf("need a dirty log of more than %d records: %v", ondisk.LogMaxIclogs+1, st)
	}
	return st
}

// Flip XORs one byte of img's dirty log with mask: the byte at offset off
// of the block after log block blk, both chosen by where from the log's
// state (which Flip returns, as it was before).
func Flip(t testing.TB, img string, where func(*xlog.State) (blk uint32, off int64), mask byte) *xlog.State {
	t.Helper()
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	l, err := xlog.Open(fs)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Find()
	if err != nil || st.Clean {
		t.Fatalf("dirty log expected: %v %v", st, err)
	}
	blk, at := where(st)
	off := int64(l.Daddr(blk)+1)*ondisk.BBSize + at
	fs.Close()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return st
}

// Crash leaves mnt's filesystem as a crash would: its changes forced to
// the log (sync -f) but not written in place, then shut down and
// unmounted. With openUnlinked, a file deleted while still open
// ("open-then-deleted", holding a few bytes) is left on its AGI unlinked
// list: it is closed only after the shutdown.
func Crash(t testing.TB, mnt string, openUnlinked bool) {
	t.Helper()
	oracle.MustBeMounted(t, mnt)
	var f *os.File
	if openUnlinked {
		var err error
		if f, err = os.Create(filepath.Join(mnt, "open-then-deleted")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("gone")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(f.Name()); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Run(t, "sync", "-f", mnt)
	oracle.Run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	if f != nil {
		f.Close()
	}
	oracle.Unmount(t, mnt)
}
