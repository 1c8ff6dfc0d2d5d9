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
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	l, err := xlog.Open(fs)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Find()
	if err != nil || st.Clean || st.Records < ondisk.LogMaxIclogs+2 {
		t.Fatalf("need a dirty log of more than %d records: %v %v", ondisk.LogMaxIclogs+1, st, err)
	}
	off := int64(l.Daddr(st.TailBlock)+1)*ondisk.BBSize + 100
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
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return st
}
