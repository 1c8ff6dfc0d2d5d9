package image

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// temps are this process's uncommitted replacement images. A signal that
// would end the process (SIGINT from Ctrl-C, SIGTERM, SIGHUP) removes them
// first, then ends it as the signal would have, so an interrupted mkfs
// leaves no hidden half-written image next to its target (SIGKILL still
// can: nothing runs then).
var temps struct {
	sync.Mutex
	names   map[string]bool
	handler sync.Once
}

// trackTemp registers a temporary file for removal on such a signal.
func trackTemp(name string) {
	temps.handler.Do(func() {
		var sigs []os.Signal
		for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
			// An ignored signal (nohup, a background job) stays ignored:
			// Notify would make it deliverable.
			if !signal.Ignored(s) {
				sigs = append(sigs, s)
			}
		}
		if len(sigs) == 0 {
			return
		}
		c := make(chan os.Signal, 1)
		signal.Notify(c, sigs...)
		go func() {
			s := <-c
			temps.Lock() // held until the end: no Commit renames one now
			for n := range temps.names {
				os.Remove(n)
			}
			signal.Reset(sigs...)
			syscall.Kill(os.Getpid(), s.(syscall.Signal))
		}()
	})
	temps.Lock()
	if temps.names == nil {
		temps.names = map[string]bool{}
	}
	temps.names[name] = true
	temps.Unlock()
}

// settleTemp runs fn (the rename into place, or the removal) and then
// forgets name, with no signal handler removing it in between.
func settleTemp(name string, fn func() error) error {
	temps.Lock()
	defer temps.Unlock()
	err := fn()
	delete(temps.names, name)
	return err
}
