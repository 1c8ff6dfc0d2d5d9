package image

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"
)

// ErrCrashed is returned by a Fault device for the operation at its crash
// point and every operation after it, as if the process had died there.
var ErrCrashed = errors.New("image: simulated crash")

// ErrInjected is a one-off I/O error injected by a Fault device.
var ErrInjected = errors.New("image: injected I/O error")

// OpKind names a device operation seen by a Fault device.
type OpKind int

const (
	OpRead OpKind = iota
	OpWrite
	OpSync
	OpTruncate
)

func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpTruncate:
		return "truncate"
	}
	return fmt.Sprintf("op(%d)", int(k))
}

// Op describes one operation for FaultPlan.OnOp.
type Op struct {
	Kind OpKind
	Dev  string // device name
	Off  int64  // byte offset (new size for truncate)
	Len  int
	Seq  int // 1-based number among the plan's mutating ops; 0 for reads
}

// FaultPlan drives one or more Fault devices that share its operation
// counter, so a crash point can fall on any mutating operation (write, sync,
// truncate) of, say, an image and its undo journal.
type FaultPlan struct {
	// CrashAt is the mutating operation that crashes (0: never). It does not
	// complete (a write may land torn, see TornBytes) and every later
	// operation on any device of the plan fails with ErrCrashed.
	CrashAt int
	// FailAt is a mutating operation that fails once with ErrInjected.
	FailAt int
	// TornBytes is how many leading bytes of a write at the crash point
	// reach the device; negative means a random number.
	TornBytes int
	// Volatile keeps writes in a simulated volatile cache until Sync; at a
	// crash a random subset of unsynced writes survives (power loss).
	Volatile bool
	// Seed seeds the random choices.
	Seed int64
	// OnOp is called before every operation; an error fails the operation
	// with that error, and ErrCrashed crashes the plan there.
	OnOp func(Op) error

	mu      sync.Mutex
	seq     int
	crashed bool
	devs    []*Fault
	rnd     *rand.Rand
}

// Ops is the number of mutating operations seen (including a crashing one).
func (p *FaultPlan) Ops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// Crashed reports whether the plan has crashed.
func (p *FaultPlan) Crashed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashed
}

// Crash crashes the plan now.
func (p *FaultPlan) Crash() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crashLocked()
}

func (p *FaultPlan) rand() *rand.Rand {
	if p.rnd == nil {
		p.rnd = rand.New(rand.NewSource(p.Seed))
	}
	return p.rnd
}

// crashLocked resolves every device's volatile cache: each unsynced write
// independently survives whole, torn, or not at all.
func (p *FaultPlan) crashLocked() {
	if p.crashed {
		return
	}
	p.crashed = true
	r := p.rand()
	for _, f := range p.devs {
		for _, w := range f.pending {
			switch r.Intn(3) {
			case 0:
				f.dev.WriteAt(w.data, w.off)
			case 1:
				f.dev.WriteAt(w.data[:r.Intn(len(w.data)+1)], w.off)
			}
		}
		f.pending = nil
	}
}

// Fault is a Device layer for tests: it counts operations, reports them to
// callbacks, injects errors and simulates crashes.
type Fault struct {
	dev     Device
	plan    *FaultPlan
	pending []pendingWrite // volatile cache, oldest first
	size    int64
}

type pendingWrite struct {
	off  int64
	data []byte
}

// NewFault wraps dev under plan.
func NewFault(dev Device, plan *FaultPlan) *Fault {
	f := &Fault{dev: dev, plan: plan, size: dev.Size()}
	plan.mu.Lock()
	plan.devs = append(plan.devs, f)
	plan.mu.Unlock()
	return f
}

// begin numbers a mutating operation and runs the callback; it returns the
// error the operation must fail with, if any, and whether it is the crash
// point.
func (f *Fault) begin(kind OpKind, off int64, n int) (crash bool, err error) {
	p := f.plan
	p.mu.Lock()
	if p.crashed {
		p.mu.Unlock()
		return false, ErrCrashed
	}
	op := Op{Kind: kind, Dev: f.dev.Name(), Off: off, Len: n}
	if kind != OpRead {
		p.seq++
		op.Seq = p.seq
	}
	p.mu.Unlock()
	if p.OnOp != nil {
		if err := p.OnOp(op); err != nil {
			if errors.Is(err, ErrCrashed) {
				return true, nil
			}
			return false, err
		}
	}
	if kind == OpRead {
		return false, nil
	}
	switch op.Seq {
	case p.CrashAt:
		return true, nil
	case p.FailAt:
		return false, ErrInjected
	}
	return false, nil
}

func (f *Fault) ReadAt(b []byte, off int64) (int, error) {
	if _, err := f.begin(OpRead, off, len(b)); err != nil {
		return 0, err
	}
	f.plan.mu.Lock()
	defer f.plan.mu.Unlock()
	if f.plan.crashed {
		return 0, ErrCrashed
	}
	n, err := f.dev.ReadAt(b, off)
	if len(f.pending) == 0 {
		return n, err
	}
	clear(b[n:])
	for _, w := range f.pending {
		lo, hi := max(off, w.off), min(off+int64(len(b)), w.off+int64(len(w.data)))
		if lo < hi {
			copy(b[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
		}
	}
	if off+int64(len(b)) <= f.size {
		return len(b), nil
	}
	return int(max(0, f.size-off)), io.EOF
}

func (f *Fault) WriteAt(b []byte, off int64) (int, error) {
	crash, err := f.begin(OpWrite, off, len(b))
	if err != nil {
		return 0, err
	}
	p := f.plan
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashed {
		return 0, ErrCrashed
	}
	if crash {
		n := p.TornBytes
		if n < 0 || n > len(b) {
			n = p.rand().Intn(len(b) + 1)
		}
		if p.Volatile {
			f.pending = append(f.pending, pendingWrite{off, append([]byte(nil), b[:n]...)})
		} else if n > 0 {
			f.dev.WriteAt(b[:n], off)
		}
		p.crashLocked()
		return 0, ErrCrashed
	}
	if p.Volatile {
		f.pending = append(f.pending, pendingWrite{off, append([]byte(nil), b...)})
		f.size = max(f.size, off+int64(len(b)))
		return len(b), nil
	}
	n, err := f.dev.WriteAt(b, off)
	f.size = max(f.size, off+int64(n))
	return n, err
}

// flushLocked moves the volatile cache to the device.
func (f *Fault) flushLocked() error {
	for i, w := range f.pending {
		if _, err := f.dev.WriteAt(w.data, w.off); err != nil {
			f.pending = f.pending[i:]
			return err
		}
	}
	f.pending = nil
	return nil
}

// Sync flushes the volatile cache and syncs the device below.
func (f *Fault) Sync() error { return f.sync(false) }

// Datasync is Sync by fdatasync where the device below has it.
func (f *Fault) Datasync() error { return f.sync(true) }

func (f *Fault) sync(data bool) error {
	crash, err := f.begin(OpSync, 0, 0)
	if err != nil {
		return err
	}
	p := f.plan
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashed {
		return ErrCrashed
	}
	if crash {
		p.crashLocked()
		return ErrCrashed
	}
	if err := f.flushLocked(); err != nil {
		return err
	}
	if data {
		return datasync(f.dev)
	}
	return f.dev.Sync()
}

// Truncate cuts the device to size (a mutating operation); the device below
// must support it.
func (f *Fault) Truncate(size int64) error {
	crash, err := f.begin(OpTruncate, size, 0)
	if err != nil {
		return err
	}
	p := f.plan
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashed {
		return ErrCrashed
	}
	if crash {
		p.crashLocked()
		return ErrCrashed
	}
	t, ok := f.dev.(Truncater)
	if !ok {
		return fmt.Errorf("%s: device cannot be truncated", f.dev.Name())
	}
	if err := f.flushLocked(); err != nil {
		return err
	}
	if err := t.Truncate(size); err != nil {
		return err
	}
	f.size = size
	return nil
}

func (f *Fault) Size() int64 {
	f.plan.mu.Lock()
	defer f.plan.mu.Unlock()
	return f.size
}

func (f *Fault) Name() string { return f.dev.Name() }

// Close closes the device below. Unsynced writes of a live plan reach it
// first (a process exit does not lose the page cache); after a crash they
// were already resolved.
func (f *Fault) Close() error {
	f.plan.mu.Lock()
	var err error
	if !f.plan.crashed {
		err = f.flushLocked()
	}
	f.pending = nil
	f.plan.mu.Unlock()
	return errors.Join(err, f.dev.Close())
}

// OpenFaultyUndo opens the image at path under an undo journal whose image
// and journal writes both go through plan: crash tests of tools that edit
// images atomically.
func OpenFaultyUndo(path string, plan *FaultPlan) (*Undo, error) {
	f, err := Open(path, true)
	if err != nil {
		return nil, err
	}
	u, err := NewUndo(NewFault(f, plan), UndoOptions{CreateJournal: func(p string) (Device, error) {
		d, err := createJournalFile(p)
		if err != nil {
			return nil, err
		}
		return NewFault(d, plan), nil
	}})
	if err != nil {
		f.Close()
		return nil, err
	}
	return u, nil
}
