package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"xfskit/internal/stream"
)

// TOCEntry is one name in a table of contents.
type TOCEntry struct {
	Path string `json:"path"`
	// PathBytes holds the exact bytes of a Path that is not valid UTF-8
	// (JSON strings cannot: encoding/json writes U+FFFD for such bytes).
	PathBytes []byte `json:"path_bytes,omitempty"`
	Type      string `json:"type"`
	Ino       uint64 `json:"ino"`
	Mode      uint32 `json:"mode"` // permission bits (with setuid/setgid/sticky)
	UID       uint32 `json:"uid"`
	GID       uint32 `json:"gid"`
	Size      int64  `json:"size"`
	Nlink     uint32 `json:"nlink"`
	Atime     string `json:"atime"`
	Mtime     string `json:"mtime"`
	Ctime     string `json:"ctime"`
	Target    string `json:"target,omitempty"`
	// TargetBytes: the same for a symlink target.
	TargetBytes []byte   `json:"target_bytes,omitempty"`
	Rdev        uint64   `json:"rdev,omitempty"`
	Xattrs      []string `json:"xattrs,omitempty"`
	Session     string   `json:"session"`
}

var typeNames = map[stream.FileType]string{
	stream.TypeRegular: "file", stream.TypeDir: "dir", stream.TypeSymlink: "symlink",
	stream.TypeCharDev: "chardev", stream.TypeBlockDev: "blockdev", stream.TypeFIFO: "fifo",
	stream.TypeSocket: "socket",
}

func fmtTime(t stream.Timestamp) string {
	return time.Unix(t.Sec, int64(t.Nsec)).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

func tocEntry(p string, m *stream.FileMeta, xs []stream.Xattr, session string) TOCEntry {
	e := TOCEntry{Path: p, Type: typeNames[m.Type()], Ino: m.Ino, Mode: permBits(m.Mode), UID: m.UID, GID: m.GID,
		Size: m.Size, Nlink: m.Nlink, Atime: fmtTime(m.Atime), Mtime: fmtTime(m.Mtime), Ctime: fmtTime(m.Ctime),
		Target: m.Symlink, Rdev: m.Rdev, Session: session}
	if e.Type == "" {
		e.Type = fmt.Sprintf("mode-%o", m.Mode&stream.ModeTypeMask)
	}
	if !utf8.ValidString(e.Path) {
		e.PathBytes = []byte(e.Path)
	}
	if !utf8.ValidString(e.Target) {
		e.TargetBytes = []byte(e.Target)
	}
	for i := range xs {
		if n, err := xattrName(&xs[i]); err == nil {
			e.Xattrs = append(e.Xattrs, n)
		} else {
			e.Xattrs = append(e.Xattrs, fmt.Sprintf("ns%d.%s", xs[i].Namespace, xs[i].Name))
		}
	}
	return e
}

// toc lists what the sessions hold, in path order.
func toc(ctx context.Context, opts Options, sel *selection, sessions []*sessionIn, res *Result) error {
	var all []TOCEntry
	for _, ss := range sessions {
		info := ss.info()
		res.Sessions = append(res.Sessions, info)
		if !ss.hdrOK {
			res.Problems = append(res.Problems, Problem{Reason: fmt.Sprintf("session %s: no stream header could be read", info.ID)})
		}
		r := &run{opts: &opts, sel: sel, ss: ss, res: res}
		workers := make([]*worker, len(ss.streams))
		var wg sync.WaitGroup
		for i, st := range ss.streams {
			workers[i] = &worker{r: r, st: st}
			wg.Add(1)
			go func() { defer wg.Done(); workers[i].readDirs() }()
		}
		wg.Wait()
		for _, w := range workers {
			if w.err != nil {
				return w.err
			}
		}
		merged, _ := mergeDirs(workers)
		tr, err := buildTree(merged, nil, sel, &res.Problems)
		if err != nil {
			return fmt.Errorf("session %s: %w", info.ID, err)
		}
		for _, p := range tr.unmatched(sel) {
			res.Problems = append(res.Problems, Problem{Path: p, Reason: "not in the dump (-s)"})
		}
		var mu sync.Mutex
		for _, d := range tr.order {
			if d.meta != nil && (d.inside || d.path == "") && (d.path != "" || sel.all()) {
				p := d.path
				if p == "" {
					p = "."
				}
				all = append(all, tocEntry(p, d.meta, d.xattrs, info.ID))
			}
		}
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := w.pending
				for {
					if e == nil {
						var err error
						if e, err = w.st.r.Next(); err == io.EOF {
							return
						} else if err != nil {
							w.err = fmt.Errorf("%s: %w", w.st.name(), err)
							return
						}
					}
					if ctx.Err() != nil {
						w.err = ErrInterrupted
						return
					}
					if f, ok := e.(*stream.File); ok {
						if fn := tr.files[f.Meta.Ino]; fn != nil {
							mu.Lock()
							for _, n := range fn.names {
								all = append(all, tocEntry(tr.filePath(n), &f.Meta, f.Xattrs, info.ID))
							}
							mu.Unlock()
						}
					}
					e = nil
				}
			}()
		}
		wg.Wait()
		for _, w := range workers {
			if w.err != nil {
				return w.err
			}
			for _, d := range w.st.r.Damage() {
				res.Damage = append(res.Damage, d.Error())
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	out := opts.TOCOut
	if out == nil {
		out = os.Stdout
	}
	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Sessions []SessionInfo `json:"sessions"`
			Entries  []TOCEntry    `json:"entries"`
			Damage   []string      `json:"damage"`
			Problems []Problem     `json:"problems"`
		}{res.Sessions, all, res.Damage, res.Problems})
	}
	for _, e := range all {
		if e.Type == "dir" && e.Path != "." {
			fmt.Fprintf(out, "%s/\n", EscapeName(e.Path))
		} else if e.Path != "." {
			fmt.Fprintln(out, EscapeName(e.Path))
		}
	}
	return nil
}

// EscapeName writes a name on one line of text, as ls -b does: a
// backslash, control bytes (a newline would split the entry in two) and
// bytes that are not UTF-8 become C escapes (\\, \n, \t, \ooo).
func EscapeName(p string) string {
	control := func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }
	if utf8.ValidString(p) && !strings.ContainsFunc(p, control) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case control(r) || r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\%03o", p[i])
		default:
			b.WriteString(p[i : i+n])
		}
		i += n
	}
	return b.String()
}
