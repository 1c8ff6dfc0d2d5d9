package restore

import (
	"fmt"
	"io"
	"strings"

	"xfskit/internal/stream"
)

// OwnerMode chooses whether file owners are restored.
type OwnerMode int

const (
	// OwnerAuto restores owners when running as root (like tar).
	OwnerAuto OwnerMode = iota
	// OwnerKeep always tries to restore owners and reports failures.
	OwnerKeep
	// OwnerNone never changes owners (files belong to the caller).
	OwnerNone
)

// Options describe one restore.
type Options struct {
	// Sources are the media files of all streams of the session (any
	// order); "-" reads Stdin. A name that does not exist but has
	// numbered media files NAME.000, NAME.001, … stands for all of them.
	// With Cumulative, sources may hold several sessions, applied in the
	// order they were dumped.
	Sources []string
	// BlockSize is the size of reads from tapes and other character
	// devices: a multiple of the record size the stream was written with
	// (0: DefaultBlockSize).
	BlockSize int
	// Dest is the directory to restore into (created if missing).
	Dest string
	// Subtrees restricts the restore to these paths (relative to the
	// dumped root) and what is below them; empty means everything.
	Subtrees []string

	// TOC lists the contents instead of restoring (to TOCOut), as JSON
	// when JSON is set.
	TOC    bool
	TOCOut io.Writer
	JSON   bool

	// Cumulative applies incremental sessions on top of what earlier
	// cumulative restores into Dest left (see the package doc).
	Cumulative bool
	// Resume continues an interrupted restore into Dest.
	Resume bool
	// StateDir holds the housekeeping state (default Dest/.xfskit-restore).
	StateDir string

	// Owner chooses whether owners are restored; ForceUID/ForceGID, when
	// set, give everything restored that owner or group (like tar --owner
	// and --group).
	Owner              OwnerMode
	ForceUID, ForceGID *uint32

	// NoXFlags leaves XFS inode flags, project ids and extent size hints
	// alone (by default they are restored and whatever the destination
	// does not take is reported; see xflags_run.go).
	NoXFlags bool

	// Progress, if not nil, receives progress bars (a terminal).
	Progress io.Writer
	// Stdin is what "-" reads (default os.Stdin).
	Stdin io.Reader

	// hook, if set, is called at every step that changes the destination
	// (tests kill the process there).
	hook func(event string)
	// flushEvery, if set, replaces the writeback interval (tests).
	flushEvery int64
}

// Problem is something that was not restored, or not completely.
type Problem struct {
	Path   string `json:"path,omitempty"` // relative to Dest; "" when unknown
	Ino    uint64 `json:"ino,omitempty"`  // dumped inode number; 0 when unknown
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Path != "" && p.Ino != 0:
		fmt.Fprintf(&b, "%s (inode %d)", p.Path, p.Ino)
	case p.Path != "":
		b.WriteString(p.Path)
	case p.Ino != 0:
		fmt.Fprintf(&b, "inode %d", p.Ino)
	default:
		return p.Reason // about the whole run: the tool's name goes first
	}
	b.WriteString(": ")
	b.WriteString(p.Reason)
	return b.String()
}

// SessionInfo describes a session that was read.
type SessionInfo struct {
	ID      string   `json:"id"`
	Level   uint32   `json:"level"`
	Base    string   `json:"base,omitempty"`
	Label   string   `json:"label,omitempty"`
	FSUUID  string   `json:"fs_uuid"`
	Created string   `json:"created"`
	Streams int      `json:"streams"` // streams read
	Of      uint32   `json:"of"`      // streams in the session
	Skipped bool     `json:"skipped,omitempty"`
	Note    string   `json:"note,omitempty"`
	Media   []string `json:"media"`
}

// Result is what a restore did.
type Result struct {
	Sessions []SessionInfo `json:"sessions"`
	Dirs     int64         `json:"dirs"`      // directories created or updated
	Files    int64         `json:"files"`     // non-directory inodes written
	Links    int64         `json:"links"`     // extra hard-link names
	Bytes    int64         `json:"bytes"`     // file data bytes written
	Resumed  int64         `json:"resumed"`   // files found complete from an interrupted run
	Moved    int64         `json:"moved"`     // names moved by a cumulative restore
	Removed  int64         `json:"removed"`   // names removed by a cumulative restore
	Damage   []string      `json:"damage"`    // damaged stream regions
	Problems []Problem     `json:"problems"`  // what was not restored
	State    string        `json:"state_dir"` // state directory kept ("" when removed)
}

// OK reports whether everything was restored.
func (r *Result) OK() bool { return len(r.Problems) == 0 && len(r.Damage) == 0 }

func uuidString(u stream.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
