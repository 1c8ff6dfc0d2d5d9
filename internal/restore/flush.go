package restore

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Writeback. Restore never fsyncs file by file. Left alone, the kernel
// keeps a large restore's data in memory and writes it out only when the
// restore is over (or memory runs short), so the disk idles while files
// are made and the CPUs idle while the disk catches up. Once a session
// has written flushEvery bytes of file data, a background goroutine asks
// the kernel to write back the destination filesystem (syncfs) every
// flushEvery bytes. Every session ends with a syncfs, so that its data is
// on disk when restore returns (and before a cumulative restore records a
// level as applied), and on large restores the disk worked while it ran.
const flushEvery = 128 << 20

// flusher runs the background writeback of a session.
type flusher struct {
	next    atomic.Int64 // bytes written at which the next writeback starts
	busy    atomic.Bool  // a writeback is running
	started atomic.Bool  // a writeback was started: finish with one more
	wg      sync.WaitGroup
}

// wrote counts n bytes of file data written and starts a writeback when
// another flushEvery bytes have been written since the last one started.
func (r *run) wrote(n int64) {
	total := r.bytes.Add(n)
	fl := &r.flush
	every := int64(flushEvery)
	if r.opts.flushEvery > 0 {
		every = r.opts.flushEvery
	}
	if total < fl.next.Load()+every || !fl.busy.CompareAndSwap(false, true) {
		return
	}
	fl.next.Store(total)
	fl.started.Store(true)
	r.hook("writeback")
	r.startWriteBack()
}

// filesWritten starts writing back what the files left once the session
// writes back at all, so that it overlaps the directory metadata.
func (r *run) filesWritten() {
	if r.flush.started.Load() && r.flush.busy.CompareAndSwap(false, true) {
		r.startWriteBack()
	}
}

// startWriteBack runs a syncfs in the background (busy is set).
func (r *run) startWriteBack() {
	fl := &r.flush
	fl.wg.Add(1)
	go func() {
		defer fl.wg.Done()
		defer fl.busy.Store(false)
		unix.Syncfs(r.t.root) // errors show in the final one
	}()
}

// writeBack waits for the background writeback and writes back what is
// left; a failure means restored data may not have reached the disk.
func (r *run) writeBack() {
	r.flush.wg.Wait()
	r.hook("syncfs")
	if err := unix.Syncfs(r.t.root); err != nil {
		r.problem("", 0, "writing the restored data back to disk (syncfs): %v", err)
	}
}
