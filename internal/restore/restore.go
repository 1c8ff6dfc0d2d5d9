package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"xfskit/internal/stream"
)

// Errors callers can test for with errors.Is.
var (
	// ErrUsage: the options are inconsistent.
	ErrUsage = errors.New("invalid options")
	// ErrNothingToResume: Resume was asked but no interrupted restore is
	// recorded in the state directory.
	ErrNothingToResume = errors.New("no interrupted restore to resume")
	// ErrInterrupted: the context was cancelled; continue with Resume.
	ErrInterrupted = errors.New("restore interrupted")
)

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// Restore restores the session(s) in opts.Sources into opts.Dest (or lists
// them with opts.TOC). The error is for what stops a restore from starting
// or continuing (usage, unreadable sources, the destination); what could
// not be restored is listed in Result.Problems and Result.Damage, and
// Result.OK is false then.
func Restore(ctx context.Context, opts Options) (*Result, error) {
	if len(opts.Sources) == 0 {
		return nil, usagef("no source given (-f)")
	}
	if !opts.TOC && opts.Dest == "" {
		return nil, usagef("no destination directory given")
	}
	if opts.TOC && (opts.Cumulative || opts.Resume) {
		return nil, usagef("a table of contents (-t) cannot be combined with -r or -R")
	}
	if opts.Cumulative && len(opts.Subtrees) > 0 {
		return nil, usagef("a cumulative restore (-r) restores whole sessions: -s cannot be used with it")
	}
	sel, err := newSelection(opts.Subtrees)
	if err != nil {
		return nil, usagef("%v", err)
	}
	res := &Result{Damage: []string{}, Problems: []Problem{}}
	var counter atomic.Int64
	if opts.BlockSize < 0 || opts.BlockSize > stream.MaxBlockSize {
		return nil, usagef("block size %d out of range (up to %d)", opts.BlockSize, stream.MaxBlockSize)
	}
	srcs, err := openSources(opts.Sources, opts.Stdin, &counter, opts.BlockSize)
	if err != nil {
		return nil, err
	}
	sessions := groupSources(srcs, &res.Problems)
	defer func() {
		for _, ss := range sessions {
			ss.close()
		}
	}()
	for _, ss := range sessions {
		if err := ss.openReaders(opts.BlockSize); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(sessions, func(i, j int) bool {
		return sessions[i].hdr.Created.Before(sessions[j].hdr.Created)
	})
	if opts.TOC {
		return res, toc(ctx, opts, sel, sessions, res)
	}
	if len(sessions) > 1 && !opts.Cumulative && !opts.Resume {
		return nil, usagef("the sources hold %d sessions: give the streams of one session, or use -r to apply them in turn", len(sessions))
	}
	var total int64
	for _, s := range srcs {
		if s.size < 0 {
			total = -1
			break
		}
		total += s.size
	}

	if err := os.MkdirAll(opts.Dest, 0o755); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	rootFd, err := unix.Open(opts.Dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", opts.Dest, err)
	}
	defer unix.Close(rootFd)
	t := &target{root: rootFd, asRoot: os.Geteuid() == 0, uid: -1, gid: -1,
		euid: os.Geteuid(), egid: os.Getegid(), umask: readUmask()}
	switch opts.Owner {
	case OwnerAuto:
		t.chown = t.asRoot
	case OwnerKeep:
		t.chown = true
	}
	if opts.ForceUID != nil {
		t.uid = int(*opts.ForceUID)
	}
	if opts.ForceGID != nil {
		t.gid = int(*opts.ForceGID)
	}

	sd, err := openStateDir(t, opts.Dest, opts.StateDir)
	if err != nil {
		return nil, err
	}
	defer sd.close()
	prog, err := sd.loadProgress()
	if err != nil {
		return nil, err
	}
	switch {
	case opts.Resume && prog == nil:
		if sd.inDest && !sd.exists(stateFile) {
			sd.removeAll(t)
		}
		return nil, fmt.Errorf("%w in %s", ErrNothingToResume, sd.path)
	case !opts.Resume && prog != nil:
		return nil, fmt.Errorf("an interrupted restore of session %s is recorded in %s: continue it with -R, or remove that directory to start over", prog.Session, sd.path)
	case opts.Resume:
		if prog.Cumulative != opts.Cumulative && opts.Cumulative {
			return nil, usagef("the interrupted restore was not cumulative: resume it without -r")
		}
		opts.Cumulative = prog.Cumulative
		if len(opts.Subtrees) > 0 && !equalStrings(opts.Subtrees, prog.Subtrees) {
			return nil, usagef("the interrupted restore selected %q: resume it with the same -s", prog.Subtrees)
		}
		opts.Subtrees = prog.Subtrees
		if sel, err = newSelection(opts.Subtrees); err != nil {
			return nil, err
		}
		found := false
		for _, ss := range sessions {
			found = found || uuidString(ss.id) == prog.Session
		}
		if !found {
			return nil, fmt.Errorf("the interrupted restore in %s is of session %s, which is not among the sources", sd.path, prog.Session)
		}
		if !opts.Cumulative && len(sessions) > 1 {
			return nil, usagef("the sources hold %d sessions: give the streams of session %s", len(sessions), prog.Session)
		}
	}

	var filesDone atomic.Int64
	stopProgress := startProgress(opts.Progress, total, &counter, &filesDone)
	defer stopProgress()

	var saved *savedState
	if opts.Cumulative {
		if saved, err = sd.loadState(); err != nil {
			return nil, err
		}
	}
	keep := false
	for _, ss := range sessions {
		info := ss.info()
		id := uuidString(ss.id)
		if !ss.hdrOK {
			res.Sessions = append(res.Sessions, info)
			return res, fmt.Errorf("session %s: no stream header could be read (damaged start of every stream)", id)
		}
		resuming := prog != nil && prog.Session == id
		if opts.Cumulative {
			skip, again, err := checkChain(saved, ss)
			if err != nil {
				res.Sessions = append(res.Sessions, info)
				return res, err
			}
			if again && !resuming {
				info.Note = "applied again: it was applied incompletely before"
			}
			if skip && !resuming {
				info.Skipped = true
				info.Note = "already applied"
				res.Sessions = append(res.Sessions, info)
				if len(sessions) == 1 {
					return res, fmt.Errorf("session %s was already applied to %s", id, opts.Dest)
				}
				continue
			}
		}
		res.Sessions = append(res.Sessions, info)
		if !resuming {
			p := &progress{Session: id, Level: ss.hdr.Level, Cumulative: opts.Cumulative, Subtrees: opts.Subtrees, Started: time.Now()}
			if err := sd.saveProgress(p); err != nil {
				return res, err
			}
		}
		j, err := sd.openJournal(!resuming)
		if err != nil {
			return res, err
		}
		run := &run{opts: &opts, t: t, sel: sel, ss: ss, j: j, res: res, resuming: resuming, saved: saved, sd: sd, filesDone: &filesDone}
		next, err := run.apply(ctx)
		if jerr := j.close(); err == nil && jerr != nil {
			err = fmt.Errorf("journal: %w", jerr)
		}
		if err != nil {
			return res, err
		}
		if opts.Cumulative {
			saved = next
			keep = true
		}
		prog = nil
	}
	if opts.Cumulative || keep {
		res.State = sd.path
	}
	return res, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkChain decides whether session ss can be applied on top of saved:
// a level 0 session starts (or restarts) the chain; an incremental one
// needs its base session in the chain. skip is set when ss was applied;
// again when it was applied incompletely and is the last one, so that it
// is applied once more (from intact streams, say) to complete it.
func checkChain(saved *savedState, ss *sessionIn) (skip, again bool, err error) {
	id := uuidString(ss.id)
	h := ss.hdr
	if saved == nil {
		if h.Level != 0 || h.BaseSessionID != (stream.UUID{}) {
			return false, false, fmt.Errorf("session %s is a level %d dump: a cumulative restore starts with a level 0 dump", id, h.Level)
		}
		return false, false, nil
	}
	if saved.FSUUID != uuidString(h.FSUUID) {
		return false, false, fmt.Errorf("session %s is of filesystem %s, but the restored tree is of %s", id, uuidString(h.FSUUID), saved.FSUUID)
	}
	for i, c := range saved.Chain {
		if c.Session == id {
			if c.Incomplete && i == len(saved.Chain)-1 {
				return false, true, nil
			}
			return true, false, nil
		}
	}
	if h.Level == 0 {
		return false, false, nil
	}
	base := uuidString(h.BaseSessionID)
	for _, c := range saved.Chain {
		if c.Session == base {
			if c.Level >= h.Level {
				return false, false, fmt.Errorf("session %s (level %d) is based on session %s of level %d", id, h.Level, base, c.Level)
			}
			return false, false, nil
		}
	}
	var have []string
	for _, c := range saved.Chain {
		have = append(have, fmt.Sprintf("%s (level %d)", c.Session, c.Level))
	}
	return false, false, fmt.Errorf("session %s (level %d) is based on session %s, which is not in the applied chain %v: apply the missing sessions first", id, h.Level, base, have)
}

// run applies one session.
type run struct {
	opts     *Options
	t        *target
	sel      *selection
	ss       *sessionIn
	j        *journal
	res      *Result
	resuming bool
	saved    *savedState // cumulative: the tree before this session
	sd       *stateDir

	tree      *tree
	synthetic map[uint64]bool

	hookMu     sync.Mutex
	mu         sync.Mutex // guards res.Problems, incomplete and the maps below
	incomplete bool       // a problem or damage: the session may be applied again
	seen       map[uint64]bool
	restored   map[uint64]savedFile
	carried    map[uint64]bool // cumulative: files kept from earlier sessions
	lost       map[uint64]string

	files, bytes, links atomic.Int64
	filesDone           *atomic.Int64 // all sessions, for the progress bar
	flush               flusher       // background writeback (flush.go)

	xf xfRun // XFS attributes (xflags_run.go)
}

func (r *run) problem(path string, ino uint64, format string, a ...any) {
	p := Problem{Path: path, Ino: ino, Reason: fmt.Sprintf(format, a...)}
	r.mu.Lock()
	r.res.Problems = append(r.res.Problems, p)
	r.incomplete = true
	r.mu.Unlock()
}

func (r *run) hook(event string) {
	if r.opts.hook != nil {
		r.hookMu.Lock() // writers call it concurrently
		r.opts.hook(event)
		r.hookMu.Unlock()
	}
}

// apply restores the session and returns the new state (cumulative).
func (r *run) apply(ctx context.Context) (*savedState, error) {
	r.carried = map[uint64]bool{}
	r.lost = map[uint64]string{}
	ss := r.ss
	if n := max(ss.count, ss.hdr.StreamCount); int(n) > len(ss.streams) {
		have := map[uint32]bool{}
		for _, st := range ss.streams {
			have[st.index] = true
		}
		for i := uint32(0); i < n; i++ {
			if !have[i] {
				r.problem("", 0, "stream %d of %d of session %s was not given: its files are not restored", i, n, uuidString(ss.id))
			}
		}
	}

	// The directory section of every stream, read in parallel.
	workers := make([]*worker, len(ss.streams))
	var wg sync.WaitGroup
	for i, st := range ss.streams {
		w := &worker{r: r, st: st}
		workers[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.readDirs() }()
	}
	wg.Wait()
	for _, w := range workers {
		if w.err != nil {
			return nil, w.err
		}
	}
	merged, authoritative := mergeDirs(workers)
	r.synthetic = map[uint64]bool{}
	if r.saved != nil {
		augment(merged, r.synthetic, r.saved, authoritative)
	}
	tr, err := buildTree(merged, r.synthetic, r.sel, &r.res.Problems)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", uuidString(ss.id), err)
	}
	r.tree = tr
	r.seen = make(map[uint64]bool, len(tr.files))
	r.restored = make(map[uint64]savedFile, len(tr.files))
	for _, p := range tr.unmatched(r.sel) {
		r.problem(p, 0, "not in the dump (-s)")
	}
	for ino, p := range tr.lostDirs {
		if tr.dirs[ino] == nil {
			r.problem(p, ino, "directory missing from the directory section (damaged stream?): it and its contents are not restored")
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, ErrInterrupted
	}

	// Make the directory tree (moving what a cumulative restore moves).
	r.xfStart() // unlock what an earlier session locked (xflags_run.go)
	if !r.j.marks[markPlaced] {
		if err := r.arrange(); err != nil {
			return nil, err
		}
	} else if r.saved != nil {
		r.noteCarried()
	}

	// Files, every stream in parallel.
	if !r.j.marks[markFiles] {
		for _, w := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); w.readFiles(ctx) }()
		}
		wg.Wait()
		for _, w := range workers {
			if w.err != nil {
				if ctx.Err() != nil {
					return nil, ErrInterrupted
				}
				return nil, w.err
			}
		}
		// The list of late XFS flags, before any is set (xflags_run.go).
		if err := r.xfSaveLate(); err != nil {
			return nil, err
		}
		r.j.mark(markFiles)
	} else {
		// Resumed after every file was done: the journal has them all.
		for ino := range r.j.files {
			r.seen[ino] = true
			r.res.Resumed++
			if fn := tr.files[ino]; fn != nil && len(fn.names) > 0 {
				r.restored[ino] = savedFile{Ino: ino, Type: uint8(fn.typ), Names: toSaved(fn.names)}
			}
		}
	}
	for _, w := range workers {
		for _, d := range w.st.r.Damage() {
			msg := d.Error()
			r.res.Damage = append(r.res.Damage, msg)
			r.incomplete = true
			for _, ino := range d.Inos {
				if _, ok := r.lost[ino]; !ok {
					r.lost[ino] = msg
				}
			}
		}
	}
	r.checkMissing()
	r.res.Files += r.files.Load()
	r.res.Bytes += r.bytes.Load()
	r.res.Links += r.links.Load()
	r.xfApplyLate() // immutable, append-only, sync: every file is complete
	r.filesWritten()
	r.hook("dirmeta")

	// Directory metadata, deepest first; the root's after the state is
	// committed (committing changes the root when the state is inside it).
	byLevels(tr.order[1:], true, func() *dirCache { return newDirCache(r.t, tr.root, r.loc) }, func(cache *dirCache, d *dirNode) {
		if d.meta == nil {
			return
		}
		if r.timesOnly(d) {
			// By name: utimensat does not follow a symlink put in its
			// place, and the directory need not be opened.
			pfd, err := cache.open(d.parent)
			if err == nil {
				ts := timespecs(d.meta)
				err = unix.UtimesNanoAt(pfd, d.name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
			}
			if err != nil {
				r.problem(d.path, d.ino, "times: %v", err)
			}
			return
		}
		fd, err := cache.open(d.ino)
		if err != nil {
			r.problem(d.path, d.ino, "metadata not restored: %v", err)
			return
		}
		r.dirMeta(fd, d)
	})
	r.res.Dirs += int64(len(tr.order))
	rd := tr.dirs[tr.root]
	rootMeta := rd.meta != nil && r.sel.all()
	if rootMeta {
		r.dirMeta(r.t.root, rd)
	}
	r.writeBack() // before the state says the session is applied
	var next *savedState
	if r.saved != nil || r.opts.Cumulative {
		// The state directory's own entries do not touch the root.
		next = r.newState()
		if err := r.sd.saveState(next); err != nil {
			return nil, err
		}
		r.hook("committed")
		r.sd.remove(progressFile)
		r.sd.remove(journalFile)
	} else {
		r.hook("committed")
		r.sd.remove(xflagsFile) // xflags_run.go
		r.sd.removeAll(r.t)
		if rootMeta {
			// Removing the state directory changed the root's times.
			if err := futimens(r.t.root, timespecs(rd.meta)); err != nil {
				r.problem(".", rd.ino, "times: %v", err)
			}
		}
	}
	r.xfLockRoot(rd, rootMeta) // the root's immutable/append-only flags, last
	return next, nil
}

// loc places directories of the new tree (and the orphanage).
func (r *run) loc(ino uint64) (uint64, string, bool) {
	if ino == orphanIno {
		return r.tree.root, orphanageName, true
	}
	d := r.tree.dirs[ino]
	if d == nil {
		return 0, "", false
	}
	return d.parent, d.name, true
}

// timesOnly reports whether a directory needs nothing but its times: it
// was made with its final mode and owner, and has no xattrs and no XFS
// attributes to set.
func (r *run) timesOnly(d *dirNode) bool {
	return d.modeSet && len(d.xattrs) == 0 && r.saved == nil && r.t.ownerGiven(d.meta) && r.xfDirDone(d)
}

func (r *run) dirMeta(fd int, d *dirNode) {
	r.xfDirUnlock(fd, d) // a locked directory takes no metadata (xflags_run.go)
	p := d.path
	if p == "" {
		p = "."
	}
	switch {
	case r.saved != nil:
		r.dropStaleXattrs(fd, d, false)
	case !d.fresh:
		// A directory that was there, or inherited a default ACL.
		r.dropStaleXattrs(fd, d, true)
	}
	for _, err := range r.t.setFdMeta(fd, d.meta, d.xattrs, d.modeSet) {
		r.problem(p, d.ino, "%v", err)
	}
	r.xfDir(fd, d) // XFS attributes after the rest (xflags_run.go)
}

// dropStaleXattrs removes attributes an earlier session restored on a
// directory that this session no longer has (only POSIX ACLs, which a new
// directory may inherit, with aclOnly). security.* is left alone: an LSM
// may set it on its own.
func (r *run) dropStaleXattrs(fd int, d *dirNode, aclOnly bool) {
	want := map[string]bool{}
	for i := range d.xattrs {
		if n, err := xattrName(&d.xattrs[i]); err == nil {
			want[n] = true
		}
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Flistxattr(fd, buf)
	if err != nil || n <= 0 {
		return
	}
	for _, name := range splitNul(buf[:n]) {
		if want[name] {
			continue
		}
		acl := name == "system.posix_acl_access" || name == "system.posix_acl_default"
		if acl || (!aclOnly && (hasPrefix(name, "user.") || hasPrefix(name, "trusted."))) {
			unix.Fremovexattr(fd, name)
		}
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// checkMissing reports names whose inode was not restored.
func (r *run) checkMissing() {
	tr := r.tree
	var inos []uint64
	for ino, fn := range tr.files {
		if len(fn.names) > 0 && !r.seen[ino] && !r.carried[ino] {
			inos = append(inos, ino)
		}
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	for _, ino := range inos {
		p := tr.firstPath(ino)
		switch msg, lost := r.lost[ino]; {
		case lost:
			r.problem(p, ino, "lost in a damaged part of the stream (%s)", msg)
		case r.ss.hdr.Level == 0 || r.saved != nil:
			r.problem(p, ino, "not in the streams read")
		}
		// A plain restore of an incremental session has no record of the
		// files that did not change: nothing to report.
	}
}

func toSaved(ns []nameRef) []savedName {
	out := make([]savedName, len(ns))
	for i, n := range ns {
		out[i] = savedName{n.dir, n.name}
	}
	return out
}

// newState is the tree after this session: every directory, and every file
// that is in place.
func (r *run) newState() *savedState {
	tr := r.tree
	st := &savedState{FSUUID: uuidString(r.ss.hdr.FSUUID), Root: tr.root}
	h := r.ss.hdr
	entry := chainEntry{Session: uuidString(r.ss.id), Level: h.Level, Created: h.Created, Label: h.SessionLabel, Incomplete: r.incomplete}
	if h.BaseSessionID != (stream.UUID{}) {
		entry.Base = uuidString(h.BaseSessionID)
	}
	if r.saved != nil && h.Level > 0 {
		// The chain up to the base; sessions after it are superseded.
		for _, c := range r.saved.Chain {
			if c.Session == entry.Session {
				break // resumed after this session was committed
			}
			st.Chain = append(st.Chain, c)
			if c.Session == entry.Base {
				break
			}
		}
	}
	st.Chain = append(st.Chain, entry)
	for _, d := range tr.order {
		st.Dirs = append(st.Dirs, savedDir{Ino: d.ino, Parent: d.parent, Name: d.name})
	}
	var old map[uint64]*savedFile
	if r.saved != nil {
		old = make(map[uint64]*savedFile, len(r.saved.Files))
		for i := range r.saved.Files {
			old[r.saved.Files[i].Ino] = &r.saved.Files[i]
		}
	}
	inos := make([]uint64, 0, len(tr.files))
	for ino := range tr.files {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	for _, ino := range inos {
		fn := tr.files[ino]
		if f, ok := r.restored[ino]; ok {
			// f.Names holds the names HARDLINK records added.
			f.Names = append(toSaved(fn.names), f.Names...)
			st.Files = append(st.Files, f)
		} else if r.carried[ino] && old[ino] != nil {
			f := *old[ino]
			f.Names = toSaved(fn.names)
			st.Files = append(st.Files, f)
		}
	}
	return st
}

// ---- directory sections ----

// mergeDirs takes the directory section of the first stream that read it
// whole; failing that, the best copy of each directory among all streams.
func mergeDirs(workers []*worker) (map[uint64]*stream.Dir, bool) {
	merged := map[uint64]*stream.Dir{}
	for _, w := range workers {
		if w.dirsClean {
			for _, d := range w.dirs {
				merged[d.Meta.Ino] = d
			}
			return merged, true
		}
	}
	for _, w := range workers {
		for _, d := range w.dirs {
			old := merged[d.Meta.Ino]
			if old == nil || (old.Damaged && !d.Damaged) || (old.Damaged && d.Damaged && len(d.Entries) > len(old.Entries)) {
				merged[d.Meta.Ino] = d
			}
		}
	}
	return merged, false
}

// augment completes a damaged directory section with the recorded tree:
// directories whose entries were lost keep their recorded names, and (when
// no stream had the whole section) recorded directories missing from it
// are kept, so that damage never deletes what a cumulative restore has.
func augment(merged map[uint64]*stream.Dir, synthetic map[uint64]bool, saved *savedState, authoritative bool) {
	children := map[uint64][]stream.DirEntry{}
	for _, d := range saved.Dirs {
		if d.Ino != saved.Root {
			children[d.Parent] = append(children[d.Parent], stream.DirEntry{Name: d.Name, Ino: d.Ino, Type: stream.TypeDir})
		}
	}
	for _, f := range saved.Files {
		for _, n := range f.Names {
			children[n.Dir] = append(children[n.Dir], stream.DirEntry{Name: n.Name, Ino: f.Ino, Type: stream.FileType(f.Type)})
		}
	}
	for _, sd := range saved.Dirs {
		d := merged[sd.Ino]
		switch {
		case d == nil && !authoritative:
			parent := sd.Parent
			if sd.Ino == saved.Root {
				parent = sd.Ino
			}
			merged[sd.Ino] = &stream.Dir{Meta: stream.FileMeta{Ino: sd.Ino, Mode: stream.ModeDir | 0o755}, Parent: parent, Entries: children[sd.Ino], Damaged: true}
			synthetic[sd.Ino] = true
		case d != nil && d.Damaged:
			have := map[string]bool{}
			for _, e := range d.Entries {
				have[e.Name] = true
			}
			for _, e := range children[sd.Ino] {
				if !have[e.Name] {
					d.Entries = append(d.Entries, e)
				}
			}
		}
	}
}

// ---- progress ----

func startProgress(w io.Writer, total int64, srcBytes, files *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	return progressBar(w, total, srcBytes, files)
}
