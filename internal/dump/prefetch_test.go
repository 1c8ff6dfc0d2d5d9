package dump

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"xfskit/internal/image"
	"xfskit/internal/oracle"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// TestReadAheadFailures stops dumps in the file section, where a reading
// goroutine works ahead of the stream writer: a device error on a file's
// data ends the dump with that error (naming the inode and offset), and a
// cancellation with ErrInterrupted; both sessions then resume (-R) to
// streams identical in content to an uninterrupted dump's.
func TestReadAheadFailures(t *testing.T) {
	img, m := oracle.CorpusWithManifest(t, oracle.CorpusOptions{})
	big := m.Item("forms/files/large").Ino
	fs, err := xfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := fs.Inode(big)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile(ip)
	if err != nil {
		t.Fatal(err)
	}
	ext := f.Extents()
	if len(ext) == 0 || f.Size() < 2<<20 {
		t.Fatalf("inode %d: %d extents, %d bytes: want a file of several pieces", big, len(ext), f.Size())
	}
	// A byte of the second piece (MiB) of the file: the first has been
	// queued by then.
	const badOff = 1<<20 + 100
	bad := int64(-1)
	bl := fs.SB.BlockLog
	for _, e := range ext {
		if s := int64(e.Offset) << bl; !e.Unwritten && s <= badOff && badOff < int64(e.End())<<bl {
			bad = int64(fs.SB.FSBToDaddr(e.StartBlock))<<ondisk.BBShift + badOff - s
		}
	}
	fs.Close()
	if bad < 0 {
		t.Fatalf("inode %d: no data at offset %d: %v", big, badOff, ext)
	}
	ref := dumpT(t, Options{Image: img, Dests: dests(t, 1), Inventory: filepath.Join(t.TempDir(), "inv.db"), Compression: "none"})
	want := readStreams(t, mediaOf(ref)).signature()

	t.Run("device error", func(t *testing.T) {
		inv := filepath.Join(t.TempDir(), "inv.db")
		dst := dests(t, 1)
		var failed atomic.Int64
		plan := &image.FaultPlan{OnOp: func(op image.Op) error {
			if op.Kind == image.OpRead && op.Off <= bad && bad < op.Off+int64(op.Len) {
				failed.Add(1)
				return fmt.Errorf("read at %d: %w", op.Off, image.ErrInjected)
			}
			return nil
		}}
		_, err := Dump(context.Background(), Options{Image: img, Dests: dst, Inventory: inv, Compression: "none",
			wrapDevice: func(d image.Device) image.Device { return image.NewFault(d, plan) }})
		if !errors.Is(err, image.ErrInjected) || failed.Load() == 0 {
			t.Fatalf("dump with a failing data read: %v (%d failed reads)", err, failed.Load())
		}
		at := fmt.Sprintf("inode %d: reading data at offset %d", big, 1<<20)
		if !strings.Contains(err.Error(), at) {
			t.Fatalf("error %q does not say %q", err, at)
		}
		t.Logf("device error: %v", err)
		r := dumpT(t, Options{Image: img, Resume: true, Inventory: inv})
		if got := readStreams(t, mediaOf(r)).signature(); got != want {
			t.Fatal("resumed stream differs from an uninterrupted dump")
		}
	})

	t.Run("cancel", func(t *testing.T) {
		inv := filepath.Join(t.TempDir(), "inv.db")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		_, err := Dump(ctx, Options{Image: img, Dests: dests(t, 1), Inventory: inv, Compression: "none",
			beforeFile: func(uint64) {
				if n++; n == 40 {
					cancel()
				}
			}})
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("cancelled dump: %v", err)
		}
		r := dumpT(t, Options{Image: img, Resume: true, Inventory: inv})
		if got := readStreams(t, mediaOf(r)).signature(); got != want {
			t.Fatal("resumed stream differs from an uninterrupted dump")
		}
	})
}
