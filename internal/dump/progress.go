package dump

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// TerminalProgress returns os.Stderr when it is a terminal, else nil: the
// Progress option for command-line use.
func TerminalProgress() io.Writer {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return os.Stderr
	}
	return nil
}

// ticker runs fn every interval until the returned stop function is
// called, then once more.
func ticker(interval time.Duration, fn func()) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				fn()
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// scanProgress shows a spinner with the inodes scanned so far.
func (d *dumper) scanProgress() func() {
	w := d.opts.Progress
	if w == nil {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("dump: scanning inodes"),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
	stop := ticker(200*time.Millisecond, func() { bar.Set64(d.scanned.inodes.Load()) })
	return func() { stop(); bar.Finish() }
}

// dumpProgress shows a bar of file data bytes, with the files written in
// its description.
func (d *dumper) dumpProgress(totalBytes, totalFiles int64) func() {
	w := d.opts.Progress
	if w == nil {
		return func() {}
	}
	bar := progressbar.NewOptions64(max(totalBytes, 1),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	update := func() {
		// Sizes from the first pass are estimates (preallocation,
		// metadata blocks): keep the bar inside its range.
		bar.Describe(fmt.Sprintf("dump: files %d/%d", d.files.Load(), totalFiles))
		bar.Set64(min(d.data.Load(), max(totalBytes, 1)))
	}
	stop := ticker(200*time.Millisecond, update)
	return func() { stop(); bar.Finish() }
}
