package restore

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
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

// progressBar shows the stream bytes read (against the size of the
// sources when known) with the files restored in its description.
func progressBar(w io.Writer, total int64, srcBytes, files *atomic.Int64) func() {
	bar := progressbar.NewOptions64(max(total, -1),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionClearOnFinish(),
	)
	update := func() {
		bar.Describe(fmt.Sprintf("restore: %d files", files.Load()))
		n := srcBytes.Load()
		if total > 0 {
			n = min(n, total)
		}
		bar.Set64(n)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				update()
				return
			case <-tk.C:
				update()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		bar.Finish()
	}
}
