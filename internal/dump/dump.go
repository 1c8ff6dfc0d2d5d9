package dump

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"xfskit/internal/image"
	"xfskit/internal/replay"
	"xfskit/internal/stream"
	"xfskit/internal/xfs"
	"xfskit/internal/xlog"
	"xfskit/inventory"
	"xfskit/ondisk"
)

// resumeState is what a stream needs to be continued by another process:
// stored as the opaque Data of its inventory checkpoints.
type resumeState struct {
	Version      int               `json:"v"`
	Image        string            `json:"image"`
	Fingerprint  string            `json:"fingerprint"`
	Level        int               `json:"level"`
	BaseID       string            `json:"base_id,omitempty"`
	Since        *stream.Timestamp `json:"since,omitempty"`
	Subtrees     []string          `json:"subtrees"`
	Index        int               `json:"index"`
	Count        int               `json:"count"`
	Range        inoRange          `json:"range"`
	Dest         string            `json:"dest"`
	Split        bool              `json:"split"`
	MediaSize    int64             `json:"media_size"`
	BlockSize    int               `json:"block_size"`
	ChunkSize    int               `json:"chunk_size"`
	Compression  string            `json:"compression"`
	SessionLabel string            `json:"session_label"`
	MediaLabel   string            `json:"media_label"`
	FSLabel      string            `json:"fs_label"`
	Created      int64             `json:"created_ns"`
}

const resumeStateVersion = 1

// paths are resumeState's fields that hold names (bytes, which JSON alone
// would mangle when they are not UTF-8).
func (st *resumeState) paths() []*string {
	p := []*string{&st.Image, &st.Dest, &st.SessionLabel, &st.MediaLabel, &st.FSLabel}
	for i := range st.Subtrees {
		p = append(p, &st.Subtrees[i])
	}
	return p
}

// marshal is st as stored in inventory checkpoints.
func (st resumeState) marshal() []byte {
	st.Subtrees = slices.Clone(st.Subtrees)
	for _, p := range st.paths() {
		*p = inventory.EncodePath(*p)
	}
	b, _ := json.Marshal(st)
	return b
}

// unmarshalResumeState undoes marshal.
func unmarshalResumeState(b []byte) (resumeState, error) {
	var st resumeState
	if err := json.Unmarshal(b, &st); err != nil {
		return st, err
	}
	for _, p := range st.paths() {
		var err error
		if *p, err = inventory.DecodePath(*p); err != nil {
			return st, err
		}
	}
	return st, nil
}

// dumper is one run of Dump.
type dumper struct {
	opts     Options
	fs       *xfs.FS
	db       *inventory.DB
	replayed *replay.Result // the log was dirty and replayed in memory
	session  string
	sel      *selection
	model    *fsModel

	scanned  scanCounters
	files    atomic.Int64
	data     atomic.Int64
	mu       sync.Mutex
	problems []string
}

// noteReplay records an in-memory log replay in res.
func (d *dumper) noteReplay(res *Result) {
	if d.replayed != nil {
		res.LogReplay = d.replayed
		res.Notes = append(res.Notes, replayNote(d.replayed))
	}
}

func (d *dumper) problem(format string, a ...any) {
	d.mu.Lock()
	d.problems = append(d.problems, fmt.Sprintf(format, a...))
	d.mu.Unlock()
}

// streamRun is one stream of the session.
type streamRun struct {
	st     resumeState
	hdr    stream.Header
	out    *output
	files  []fileRef // this stream's share
	resume bool
	media  []stream.ResumeFile // existing media of a resumed stream, locked
	res    StreamResult
	cp     atomic.Pointer[stream.Checkpoint]
	saved  *stream.Checkpoint // last checkpoint written to the inventory
	data   []byte             // st as JSON
}

// Dump writes a dump session of opts.Image, or resumes the most recent
// interrupted one with opts.Resume. The session is recorded in the
// inventory and marked complete only when every stream is.
func Dump(ctx context.Context, opts Options) (*Result, error) {
	if opts.Image == "" {
		return nil, usagef("no image given")
	}
	if !opts.Resume {
		if err := opts.check(); err != nil {
			return nil, err
		}
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	// The on-disk state of a read-write mount lags behind the kernel's: a
	// dump of it would miss recent changes yet be recorded as complete,
	// and later levels based on it would lose them for good.
	if m, err := image.MountedAt(opts.Image); err != nil {
		return nil, err
	} else if m != nil && m.Writable {
		return nil, fmt.Errorf("%s is mounted read-write at %s: unmount it (or remount it read-only), or dump a snapshot", opts.Image, m.Point)
	}
	fs, err := openImage(opts)
	if err != nil {
		return nil, err
	}
	logState, err := xlog.Find(fs)
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("%s: reading the log: %w", opts.Image, err)
	}
	var replayed *replay.Result
	if !logState.Clean {
		if fs, replayed, err = recoverInMemory(fs, logState); err != nil {
			return nil, err
		}
	}
	defer fs.Close()
	db, err := openInventory(opts.Inventory)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	d := &dumper{opts: opts, fs: fs, db: db, replayed: replayed}
	fp := fingerprint(fs, logState)
	if opts.Resume {
		return d.resume(ctx, fp)
	}
	return d.fresh(ctx, fp)
}

// recoverInMemory replays a dirty log in memory (dump never writes the
// image) and returns the filesystem as the kernel's recovery would leave
// it; fs is closed on error.
func recoverInMemory(fs *xfs.FS, st *xlog.State) (*xfs.FS, *replay.Result, error) {
	dev, res, err := replay.InMemory(fs.Dev)
	if err == nil {
		var rfs *xfs.FS
		if rfs, err = xfs.OpenDevice(dev); err == nil {
			return rfs, res, nil
		}
	}
	fs.Close()
	var ce *ondisk.CorruptError
	if !errors.Is(err, replay.ErrUnsupported) && !errors.As(err, &ce) {
		return nil, nil, fmt.Errorf("%s: replaying its dirty log in memory: %w", fs.Name(), err) // I/O
	}
	return nil, nil, fmt.Errorf("%s: %w (%s): the filesystem was not cleanly unmounted and its log cannot be replayed in memory: %w. "+
		"Mount and unmount it once (or replay it with 'xfskit-check --replay'), then dump again (dump never writes the image)", fs.Name(), ErrDirtyLog, st, err)
}

// replayNote tells the user what the in-memory replay did.
func replayNote(r *replay.Result) string {
	s := fmt.Sprintf("the log was dirty: %d transactions replayed in memory (the image was not written)", r.Transactions)
	if left := r.LeftToKernel(); len(left) > 0 {
		s += "; left for the kernel's recovery, which changes no file (files deleted while open are nameless and not dumped): " + strings.Join(left, ", ")
	}
	return s
}

func openImage(opts Options) (*xfs.FS, error) {
	if opts.device != nil {
		return xfs.OpenDevice(opts.device)
	}
	fs, err := xfs.Open(opts.Image)
	if err == nil && opts.wrapDevice != nil {
		fs.Dev = opts.wrapDevice(fs.Dev) // after the superblock was read
	}
	return fs, err
}

// fingerprint identifies the state of an image: a resumed session must
// read exactly what the interrupted one read. Mounting the filesystem moves
// the log head, and changes usually move the summary counters too.
func fingerprint(fs *xfs.FS, st *xlog.State) string {
	sb := fs.SB
	return fmt.Sprintf("%s log %d:%d lsn %d icount %d ifree %d fdblocks %d dblocks %d",
		sb.UUID, st.HeadCycle, st.HeadBlock, st.LastRecordLSN, sb.ICount, sb.IFree, sb.FDBlocks, sb.DBlocks)
}

func (d *dumper) fresh(ctx context.Context, fp string) (*Result, error) {
	o := d.opts
	fsUUID := d.fs.SB.UUID.String()
	subtrees, err := canonicalSubtrees(o.Subtrees)
	if err != nil {
		return nil, usagef("%v", err)
	}
	comp, _ := stream.ParseCompression(o.Compression)
	start := time.Now()
	res := &Result{FSUUID: fsUUID, Level: o.Level, Subtrees: subtrees, Start: start}
	d.noteReplay(res)
	var since *stream.Timestamp
	if o.Level > 0 {
		base, err := d.db.BaseFor(fsUUID, o.Level, subtrees)
		if err != nil {
			return nil, err
		}
		if base == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("no complete dump of this filesystem and subtree selection below level %d in the inventory: dumping every file", o.Level))
		} else {
			res.BaseID = base.ID
			t := stream.TimestampOf(base.Start)
			since = &t
		}
	}
	kinds := make([]destKind, len(o.Dests))
	for i, dst := range o.Dests {
		if kinds[i], err = destKindOf(dst); err != nil {
			return nil, usagef("destination %v", err)
		}
		if kinds[i] != destFile && kinds[i] != destStdout && o.MediaSize > 0 {
			return nil, usagef("--media-size needs file destinations; %s is a %s", dst, kinds[i])
		}
	}
	if err := distinctFiles(o.Image, d.db.Path(), o.Dests); err != nil {
		return nil, err
	}
	if err := d.prepare(ctx, since, subtrees); err != nil {
		return nil, err
	}
	d.session = inventory.NewSessionID()
	sid, _ := uuid.Parse(d.session)
	ranges := partition(d.sel.files, len(o.Dests))
	runs := make([]*streamRun, len(o.Dests))
	for i, dst := range o.Dests {
		bs := o.BlockSize
		if bs == 0 && kinds[i] == destDevice {
			bs = DefaultDeviceBlockSize
		}
		st := resumeState{
			Version: resumeStateVersion, Image: o.Image, Fingerprint: fp,
			Level: o.Level, BaseID: res.BaseID, Since: since, Subtrees: subtrees,
			Index: i, Count: len(o.Dests), Range: ranges[i], Dest: dst,
			Split: o.MediaSize > 0, MediaSize: o.MediaSize, BlockSize: bs, ChunkSize: o.ChunkSize,
			Compression: comp.String(), SessionLabel: o.SessionLabel, MediaLabel: o.mediaLabel(i),
			FSLabel: d.fs.SB.Label(), Created: start.UnixNano(),
		}
		runs[i] = d.newRun(st, sid, kinds[i])
	}
	if err := d.db.RecordFilesystem(inventory.Filesystem{UUID: fsUUID, Label: d.fs.SB.Label(), Source: o.Image}); err != nil {
		return nil, err
	}
	// The session, its streams and their resume state are recorded in
	// one transaction: a kill at any moment leaves nothing or a session
	// -R can continue.
	info := inventory.SessionInfo{ID: d.session, FSUUID: fsUUID, Level: o.Level, BaseID: res.BaseID,
		Subtrees: subtrees, Label: o.SessionLabel, Start: start, Compression: comp.String()}
	for _, r := range runs {
		info.Streams = append(info.Streams, inventory.Stream{Index: r.st.Index, Count: r.st.Count, Dest: r.st.Dest,
			MediaLabel: r.st.MediaLabel, Checkpoint: &inventory.Checkpoint{Data: r.data}})
	}
	if err := d.db.BeginSession(info); err != nil {
		return nil, err
	}
	res.SessionID = d.session
	return d.run(ctx, res, runs)
}

// distinctFiles refuses destinations that are the image, the inventory or
// each other (through other names): truncating them would destroy them.
func distinctFiles(image, inv string, dests []string) error {
	paths := append([]string{image, inv}, dests...)
	labels := append([]string{"the image " + image, "the inventory " + inv}, dests...)
	var infos []os.FileInfo
	var names []string
	for i, p := range paths {
		fi, err := os.Stat(p)
		if p == "-" || err != nil || !fi.Mode().IsRegular() {
			continue // stdout, devices, or not there yet
		}
		for k, other := range infos {
			if os.SameFile(other, fi) {
				return usagef("destination %s is the same file as %s", p, names[k])
			}
		}
		infos = append(infos, fi)
		names = append(names, labels[i])
	}
	return nil
}

// prepare runs the first pass and the selection.
func (d *dumper) prepare(ctx context.Context, since *stream.Timestamp, subtrees []string) error {
	stop := d.scanProgress()
	m, err := scan(ctx, d.fs, since, &d.scanned, len(subtrees) == 0)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		return fmt.Errorf("%s: scanning inodes: %w", d.opts.Image, err)
	}
	d.model = m
	sel, problems, err := selectTree(ctx, m, subtrees)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		if errors.Is(err, ErrUsage) {
			return err
		}
		return fmt.Errorf("%s: reading directories: %w", d.opts.Image, err)
	}
	d.sel = sel
	d.problems = append(d.problems, problems...)
	return nil
}

func (d *dumper) newRun(st resumeState, sid uuid.UUID, kind destKind) *streamRun {
	r := &streamRun{st: st}
	r.data = st.marshal()
	var base stream.UUID
	if st.BaseID != "" {
		if u, err := uuid.Parse(st.BaseID); err == nil {
			base = u
		}
	}
	r.hdr = stream.Header{
		SessionID: sid, SessionLabel: st.SessionLabel, MediaLabel: st.MediaLabel,
		StreamIndex: uint32(st.Index), StreamCount: uint32(st.Count),
		FSUUID: d.fs.SB.UUID, FSLabel: st.FSLabel, Level: uint32(st.Level), BaseSessionID: base,
		Subtrees: st.Subtrees, Created: time.Unix(0, st.Created),
	}
	r.out = &output{name: st.Dest, kind: kind, split: st.Split, stdout: d.opts.Stdout, mediaSize: st.MediaSize}
	idx := st.Index
	r.out.onMedia = func(k int, path string) {
		// Best effort: the final AddMediaFile calls record every file.
		d.db.AddMediaFile(inventory.MediaFile{SessionID: d.session, Stream: idx, Seq: k, Path: path})
	}
	for _, f := range d.sel.files {
		if st.Range.in(f.ino) {
			r.files = append(r.files, f)
		}
	}
	r.res = StreamResult{Index: st.Index, Dest: st.Dest, Range: [2]uint64{st.Range.Lo, st.Range.Hi}}
	return r
}

// run writes every stream concurrently and records the outcome.
func (d *dumper) run(ctx context.Context, res *Result, runs []*streamRun) (*Result, error) {
	res.Dirs = int64(len(d.sel.dirs))
	res.Named = int64(d.sel.named)
	var total int64
	for _, f := range d.sel.files {
		total += f.bytes
	}
	stopProgress := d.dumpProgress(total, int64(len(d.sel.files)))
	stopCP := d.checkpointLoop(runs)
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runs {
		g.Go(func() error { return d.runStream(gctx, r) })
	}
	err := g.Wait()
	stopCP()
	stopProgress()
	for _, r := range runs {
		r.out.close()
	}
	res.Problems = append([]string{}, d.problems...)
	for _, r := range runs {
		res.Files += r.res.Files
		res.DataBytes += r.res.DataBytes
		res.Bytes += r.res.Bytes
		res.Streams = append(res.Streams, r.res)
	}
	counts := inventory.Counts{Files: res.Files, Dirs: res.Dirs, Bytes: res.Bytes}
	if err != nil {
		if mErr := d.db.MarkInterrupted(d.session, counts); mErr != nil {
			err = errors.Join(err, mErr)
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("%w (session %s; resume it with -R): %v", ErrInterrupted, d.session, ctx.Err())
		}
		return res, fmt.Errorf("session %s interrupted (resume it with -R once the cause is fixed): %w", d.session, err)
	}
	if err := d.db.CompleteSession(d.session, counts); err != nil {
		return res, err
	}
	res.End = time.Now()
	return res, nil
}

// checkpointLoop copies the streams' durable checkpoints to the inventory
// every few seconds (each write is an fsync'd SQLite transaction; the
// stream itself holds the authoritative checkpoints).
func (d *dumper) checkpointLoop(runs []*streamRun) func() {
	return ticker(2*time.Second, func() { d.saveCheckpoints(runs) })
}

func (d *dumper) saveCheckpoints(runs []*streamRun) {
	for _, r := range runs {
		cp := r.cp.Load()
		if cp == nil || cp == r.saved {
			continue
		}
		d.db.Checkpoint(inventory.Checkpoint{SessionID: d.session, Stream: r.st.Index, LastIno: cp.LastIno, Offset: cp.Logical, Data: r.data})
		r.saved = cp
	}
}

// workers is the number of compression goroutines per stream: the CPUs
// shared among the streams (compression is what bounds a zstd dump).
func (d *dumper) workers(streams int) int {
	if d.opts.Concurrency > 0 {
		return d.opts.Concurrency
	}
	return max(1, min(16, runtime.GOMAXPROCS(0)/streams))
}
