// Package logtest holds test helpers for images with a dirty log.
package logtest

import (
	"os"
	"testing"

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
