package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// DefaultDeviceBlockSize is the record size written to character devices
// (tapes) when the caller gives none.
const DefaultDeviceBlockSize = 256 << 10

type destKind int

const (
	destFile destKind = iota
	destStdout
	destDevice
	destPipe // a named pipe: written like stdout
)

func (k destKind) String() string {
	switch k {
	case destStdout:
		return "stdout"
	case destDevice:
		return "character device"
	case destPipe:
		return "named pipe"
	}
	return "file"
}

// errAborted is what media writes return once a stream has been stopped:
// it keeps the Writer from putting an end-of-stream trailer on an
// interrupted stream.
var errAborted = errors.New("dump interrupted")

// output is one stream's destination: media file 0 and, with a media
// size, the numbered media files after it.
type output struct {
	name      string // DEST as given
	kind      destKind
	split     bool // media files are DEST.000, DEST.001, …
	stop      atomic.Bool
	stdout    io.Writer
	mu        sync.Mutex
	files     []*os.File // media files opened by us, in order (nil for stdout)
	direct    []*directFile
	onMedia   func(k int, path string)
	lockFile  *os.File
	mediaSize int64
}

// destKindOf classifies a destination without creating it.
func destKindOf(name string) (destKind, error) {
	if name == "-" {
		return destStdout, nil
	}
	st, err := os.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return destFile, nil
	}
	if err != nil {
		return 0, err
	}
	switch {
	case st.Mode()&os.ModeCharDevice != 0:
		return destDevice, nil
	case st.Mode()&os.ModeNamedPipe != 0:
		return destPipe, nil
	case st.Mode().IsRegular():
		return destFile, nil
	}
	return 0, fmt.Errorf("%s: not a regular file, character device or pipe (%s)", name, st.Mode().Type())
}

// mediaPath is the path of media file k.
func (o *output) mediaPath(k int) string {
	if !o.split {
		return o.name
	}
	return stream.MediaName(o.name, k)
}

// lock takes an exclusive advisory lock on f so that two dumps (or a dump
// and a resume) never write the same destination.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EWOULDBLOCK {
			return fmt.Errorf("%s is being written by another dump", f.Name())
		}
		return err
	}
}

// create opens media file 0 for a new stream: files are locked, then
// truncated; stale numbered media files of an earlier dump are removed.
func (o *output) create() (io.Writer, error) {
	switch o.kind {
	case destStdout:
		return &guard{w: o.stdout, stop: &o.stop}, nil
	case destDevice, destPipe:
		f, err := os.OpenFile(o.name, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		o.files = append(o.files, f)
		return &guard{w: f, stop: &o.stop}, nil
	}
	p := o.mediaPath(0)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	o.lockFile = f
	o.files = append(o.files, f)
	if o.split {
		for k := 1; ; k++ {
			if err := os.Remove(o.mediaPath(k)); err != nil {
				break
			}
		}
	}
	if o.onMedia != nil {
		o.onMedia(0, p)
	}
	return o.fileGuard(f, p), nil
}

// fileGuard is the guard of a new, empty media file f: written with
// O_DIRECT where the filesystem allows it, else through the page cache
// with write-behind.
func (o *output) fileGuard(f *os.File, path string) *guard {
	if df := newDirectFile(f, path); df != nil {
		o.mu.Lock()
		o.direct = append(o.direct, df)
		o.mu.Unlock()
		return &guard{w: df, stop: &o.stop}
	}
	return &guard{w: f, stop: &o.stop, wb: newWriteBehind(f)}
}

// openMedia is the Writer's OpenMedia: it creates media file k (k >= 1).
func (o *output) openMedia(k int) (io.Writer, error) {
	p := o.mediaPath(k)
	if o.onMedia != nil {
		o.onMedia(k, p)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.files = append(o.files, f)
	o.mu.Unlock()
	g := o.fileGuard(f, p)
	g.o = o
	return g, nil
}

// existingMedia opens the media files of an interrupted stream for
// stream.Resume: DEST (or DEST.000, DEST.001, … while they exist). Empty
// trailing media files (created just before the interruption) are removed:
// they hold nothing and would not parse.
func (o *output) existingMedia() ([]stream.ResumeFile, error) {
	var out []stream.ResumeFile
	for k := 0; ; k++ {
		p := o.mediaPath(k)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		if k == 0 {
			if err := lock(f); err != nil {
				f.Close()
				return nil, err
			}
			o.lockFile = f
		}
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if k > 0 && st.Size() < stream.MediaHeaderSize {
			f.Close()
			os.Remove(p)
			for j := k + 1; os.Remove(o.mediaPath(j)) == nil; j++ {
			}
			break
		}
		o.files = append(o.files, f)
		out = append(out, &resumeGuard{f: f, stop: &o.stop, wb: newWriteBehind(f)})
		if !o.split {
			break
		}
	}
	return out, nil
}

// mediaFiles lists the media files written, with their sizes.
func (o *output) mediaFiles() ([]string, []int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var names []string
	var sizes []int64
	if o.kind == destStdout {
		return []string{"-"}, []int64{-1}
	}
	for k := 0; ; k++ {
		p := o.mediaPath(k)
		st, err := os.Stat(p)
		if err != nil {
			break
		}
		names = append(names, p)
		sz := st.Size()
		if o.kind != destFile {
			sz = -1
		}
		sizes = append(sizes, sz)
		if !o.split {
			break
		}
	}
	return names, sizes
}

// sync flushes the media files to stable storage (devices and files).
func (o *output) sync() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.files {
		if o.kind == destFile {
			if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
				return fmt.Errorf("%s: %w", f.Name(), err)
			}
		}
	}
	return nil
}

// close closes every media file we opened (the Writer already closed the
// numbered ones it finished; closing twice is harmless here).
func (o *output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, df := range o.direct {
		df.close()
	}
	o.direct = nil
	for _, f := range o.files {
		f.Close()
	}
	o.files = nil
}

// writeBehindBytes is how much a media file may gain before its writeback
// is started.
const writeBehindBytes = 8 << 20

// writeBehind starts the writeback of a media file's dirty pages every few
// MiB (sync_file_range WRITE: it does not wait). Left to itself the kernel
// starts only once a tenth of memory is dirty, so a whole stream would wait
// in the page cache for the final fsync; this way the disk writes while the
// dump reads, and that fsync has little left to do. Durability still comes
// from the fsync alone.
type writeBehind struct {
	fd      int
	pending int
	off     bool // the filesystem refused: no more attempts
}

func newWriteBehind(f *os.File) *writeBehind { return &writeBehind{fd: int(f.Fd())} }

func (b *writeBehind) wrote(n int) {
	if b == nil || b.off {
		return
	}
	b.pending += n
	if b.pending < writeBehindBytes {
		return
	}
	b.pending = 0
	// The whole file: pages already being written are skipped, and a
	// resumed stream's position need not be known.
	if err := unix.SyncFileRange(b.fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE); err != nil && err != unix.EINTR {
		b.off = true
	}
}

// guard passes writes through until the stream is stopped.
type guard struct {
	w    io.Writer
	stop *atomic.Bool
	o    *output      // set on numbered media files, which Close closes
	wb   *writeBehind // set on regular files we opened
}

func (g *guard) Write(p []byte) (int, error) {
	if g.stop.Load() {
		return 0, errAborted
	}
	n, err := g.w.Write(p)
	g.wb.wrote(n)
	return n, err
}

// Staged and Flush make every guard a stream.StagedWriter (staging is
// the directFile's).
func (g *guard) Staged() int64 {
	if sw, ok := g.w.(stream.StagedWriter); ok {
		return sw.Staged()
	}
	return 0
}

func (g *guard) Flush() error {
	if g.stop.Load() {
		return errAborted
	}
	if sw, ok := g.w.(stream.StagedWriter); ok {
		return sw.Flush()
	}
	return nil
}

// Close is called by the Writer on numbered media files it has filled:
// they are made durable and closed (a long dump can fill thousands).
func (g *guard) Close() error {
	if g.o == nil {
		return nil
	}
	f, ok := g.w.(*os.File)
	if df, isDirect := g.w.(*directFile); isDirect {
		if err := df.Flush(); err != nil {
			return err
		}
		df.close()
		f, ok = df.f, true
		g.o.mu.Lock()
		g.o.direct = slices.DeleteFunc(g.o.direct, func(x *directFile) bool { return x == df })
		g.o.mu.Unlock()
	}
	if !ok {
		return nil
	}
	g.o.mu.Lock()
	g.o.files = slices.DeleteFunc(g.o.files, func(x *os.File) bool { return x == f })
	g.o.mu.Unlock()
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return f.Close()
}

// resumeGuard is a guard over a media file handed to stream.Resume, which
// needs to read, seek and truncate it as well.
type resumeGuard struct {
	f    *os.File
	stop *atomic.Bool
	wb   *writeBehind
}

func (g *resumeGuard) Write(p []byte) (int, error) {
	if g.stop.Load() {
		return 0, errAborted
	}
	n, err := g.f.Write(p)
	g.wb.wrote(n)
	return n, err
}
func (g *resumeGuard) ReadAt(p []byte, off int64) (int, error) { return g.f.ReadAt(p, off) }
func (g *resumeGuard) Seek(off int64, whence int) (int64, error) {
	return g.f.Seek(off, whence)
}
func (g *resumeGuard) Truncate(size int64) error { return g.f.Truncate(size) }
func (g *resumeGuard) Name() string              { return g.f.Name() }
