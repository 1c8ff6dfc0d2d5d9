package image

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"
)

func newTestFile(t *testing.T, size int64) *File {
	t.Helper()
	f, err := Create(filepath.Join(t.TempDir(), "dev"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFaultCountsAndCallbacks(t *testing.T) {
	f := newTestFile(t, 4096)
	var ops []Op
	plan := &FaultPlan{FailAt: 2, OnOp: func(o Op) error { ops = append(ops, o); return nil }}
	d := NewFault(f, plan)
	if _, err := d.WriteAt([]byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt([]byte("b"), 1); !errors.Is(err, ErrInjected) {
		t.Fatalf("op 2: %v", err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	d.ReadAt(b, 0)
	if string(b) != "a\x00" {
		t.Fatalf("failed write reached the device: %q", b)
	}
	if plan.Ops() != 3 || len(ops) != 4 || ops[0].Kind != OpWrite || ops[1].Seq != 2 || ops[2].Kind != OpSync || ops[3].Kind != OpRead || ops[3].Seq != 0 {
		t.Fatalf("ops %d, callbacks %+v", plan.Ops(), ops)
	}
	// A callback can fail an operation or crash the plan.
	plan.OnOp = func(o Op) error {
		if o.Kind == OpWrite && o.Off == 100 {
			return ErrCrashed
		}
		return nil
	}
	if _, err := d.WriteAt([]byte("c"), 100); !errors.Is(err, ErrCrashed) || !plan.Crashed() {
		t.Fatalf("callback crash: %v", err)
	}
	if _, err := d.ReadAt(b, 0); !errors.Is(err, ErrCrashed) {
		t.Fatalf("read after crash: %v", err)
	}
	if err := d.Sync(); !errors.Is(err, ErrCrashed) {
		t.Fatalf("sync after crash: %v", err)
	}
}

func TestFaultTornWrite(t *testing.T) {
	f := newTestFile(t, 0)
	d := NewFault(f, &FaultPlan{CrashAt: 2, TornBytes: 3})
	d.WriteAt([]byte("hello"), 0)
	if _, err := d.WriteAt([]byte("WORLD"), 5); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	n, _ := f.ReadAt(b, 0)
	if string(b[:n]) != "helloWOR" {
		t.Fatalf("after torn write: %q", b[:n])
	}
}

func TestFaultVolatile(t *testing.T) {
	f := newTestFile(t, 8)
	plan := &FaultPlan{Volatile: true}
	d := NewFault(f, plan)
	d.WriteAt([]byte("abcd"), 2)
	d.WriteAt([]byte("XY"), 8) // grows the device in the cache only
	if d.Size() != 10 || f.Size() != 8 {
		t.Fatalf("sizes %d/%d", d.Size(), f.Size())
	}
	b := make([]byte, 12)
	n, err := d.ReadAt(b, 0)
	if n != 10 || !errors.Is(err, io.EOF) || !bytes.Equal(b[:10], []byte("\x00\x00abcd\x00\x00XY")) {
		t.Fatalf("read through cache: %d %v %q", n, err, b[:n])
	}
	// Unsynced data is not on the device; Sync puts it there.
	raw := make([]byte, 8)
	f.ReadAt(raw, 0)
	if !bytes.Equal(raw, make([]byte, 8)) {
		t.Fatalf("volatile write reached the device before sync: %q", raw)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	n, _ = f.ReadAt(b, 0)
	if string(b[2:6]) != "abcd" || n != 10 {
		t.Fatalf("after sync: %q", b[:n])
	}
	// After a crash, each unsynced write survives whole, torn or not at all.
	for seed := int64(0); seed < 20; seed++ {
		f := newTestFile(t, 4)
		plan := &FaultPlan{Volatile: true, Seed: seed}
		d := NewFault(f, plan)
		d.WriteAt([]byte("wxyz"), 0)
		plan.Crash()
		got := make([]byte, 4)
		f.ReadAt(got, 0)
		if !bytes.HasPrefix([]byte("wxyz"), bytes.TrimRight(got, "\x00")) {
			t.Fatalf("seed %d: crash left %q", seed, got)
		}
	}
}
