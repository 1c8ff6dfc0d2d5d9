package dump

import (
	"errors"
	"fmt"
	"io"
	"time"

	"xfskit/internal/image"
	"xfskit/internal/replay"
	"xfskit/internal/stream"
)

// Options describe one dump. The zero value of every optional field is
// the default.
type Options struct {
	Image string // image file or unmounted block device (opened read-only)

	// Level 0 dumps everything; level N (1-9) dumps the non-directory
	// inodes whose ctime or mtime is not before the start of the base
	// session: the latest complete session of the same filesystem and
	// subtree selection at a lower level. Every level records the whole
	// directory structure of the selection.
	Level int
	// Subtrees restricts the dump to these paths (relative to the
	// filesystem root; files or directories) and the directories on the
	// way to them. Empty means the whole filesystem.
	Subtrees []string

	// Dests are the stream destinations, one stream each, written
	// concurrently: a file, "-" for Stdout, or a character device (written
	// in fixed-size records of BlockSize bytes).
	Dests []string
	// MediaSize, if not zero, splits each file stream into media files of
	// at most this many bytes named DEST.000, DEST.001, …
	MediaSize int64
	// BlockSize is the record size for character devices (default
	// DefaultDeviceBlockSize); when set it applies to every destination.
	BlockSize int
	// ChunkSize is the stream's compression unit (default 1 MiB).
	ChunkSize int
	// Compression is "zstd" (default), "xz" or "none".
	Compression string

	SessionLabel string   // -L
	MediaLabels  []string // -M: one for every stream, or one per destination

	// Resume continues the most recent interrupted session of the
	// filesystem (all of its recorded options are reused; the fields above
	// other than Image are ignored).
	Resume bool

	// Inventory is the inventory database path ("" is
	// inventory.DefaultPath()).
	Inventory string

	// Progress, if not nil, receives progress bars (a terminal).
	Progress io.Writer
	// Stdout is where "-" writes (default os.Stdout).
	Stdout io.Writer
	// Concurrency is the number of compression goroutines per stream
	// (default: the CPUs shared among the streams).
	Concurrency int

	// beforeFile and onData, if set, are called before each file record
	// and each read of file data (tests).
	beforeFile func(ino uint64)
	onData     func(n int)
	// wrapDevice, if set, wraps the opened image (tests: fault injection).
	wrapDevice func(image.Device) image.Device
	// device, if set, is read instead of Image (fuzzing: an image in
	// memory; Image must still name an existing file).
	device image.Device
}

// Result is what a dump did.
type Result struct {
	SessionID string    `json:"session_id"`
	FSUUID    string    `json:"fs_uuid"`
	Level     int       `json:"level"`
	BaseID    string    `json:"base_id,omitempty"` // base session of an incremental dump ("" for full)
	Subtrees  []string  `json:"subtrees"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Resumed   bool      `json:"resumed"`

	Dirs      int64 `json:"dirs"`       // directories in the directory section (of each stream)
	Files     int64 `json:"files"`      // non-directory inode records, all streams
	DataBytes int64 `json:"data_bytes"` // file data bytes, all streams
	Bytes     int64 `json:"bytes"`      // bytes written to the media, all streams
	Named     int64 `json:"named"`      // non-directory inodes named by the selection (dumped or unchanged)

	Streams []StreamResult `json:"streams"`
	// Notes are remarks for the user (e.g. a level without a base).
	Notes []string `json:"notes,omitempty"`
	// LogReplay is set when the image's log was dirty and was replayed in
	// memory before the dump (the image itself is never written).
	LogReplay *replay.Result `json:"log_replay,omitempty"`
	// Problems lists inodes that could not be dumped (corruption) and
	// directory entries left out because they name free inodes. A dump
	// with problems is complete but not whole: the command exits non-zero.
	Problems []string `json:"problems"`
}

// StreamResult describes one stream of the session.
type StreamResult struct {
	Index     int       `json:"index"`
	Dest      string    `json:"dest"`
	Media     []string  `json:"media"` // media files written (DEST, or DEST.000 …)
	Range     [2]uint64 `json:"inode_range"`
	Files     int64     `json:"files"`
	DataBytes int64     `json:"data_bytes"`
	Bytes     int64     `json:"bytes"` // physical bytes (headers, chunks, padding)
}

// Errors callers can test for with errors.Is.
var (
	// ErrDirtyLog: the image's log needs a replay that dump cannot do in
	// memory (work only the kernel can finish, or a damaged log).
	ErrDirtyLog = errors.New("the filesystem log is dirty")
	// ErrInterrupted: the dump was cancelled; the session is recorded as
	// interrupted and can be resumed with Resume.
	ErrInterrupted = errors.New("dump interrupted")
	// ErrUsage: the options are inconsistent.
	ErrUsage = errors.New("invalid options")
	// ErrNothingToResume: no interrupted session of this filesystem.
	ErrNothingToResume = errors.New("no interrupted dump session to resume")
)

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// check validates the options of a new (not resumed) dump.
func (o *Options) check() error {
	if o.Image == "" {
		return usagef("no image given")
	}
	if o.Level < 0 || o.Level > 9 {
		return usagef("level %d out of range 0-9", o.Level)
	}
	if len(o.Dests) == 0 {
		return usagef("no destination given (-f)")
	}
	seen := map[string]bool{}
	for _, d := range o.Dests {
		if d == "" {
			return usagef("empty destination")
		}
		if seen[d] {
			return usagef("destination %q given twice", d)
		}
		seen[d] = true
		if d == "-" && o.MediaSize > 0 {
			return usagef("--media-size needs file destinations, not stdout")
		}
	}
	if _, err := stream.ParseCompression(o.Compression); err != nil {
		return usagef("%v", err)
	}
	if o.MediaSize < 0 {
		return usagef("negative media size")
	}
	if len(o.MediaLabels) > 1 && len(o.MediaLabels) != len(o.Dests) {
		return usagef("%d media labels for %d destinations (give one, or one per destination)", len(o.MediaLabels), len(o.Dests))
	}
	for _, l := range append([]string{o.SessionLabel}, o.MediaLabels...) {
		if len(l) > stream.MaxLabelLen {
			return usagef("label %.20q… is longer than %d bytes", l, stream.MaxLabelLen)
		}
	}
	if o.ChunkSize != 0 && (o.ChunkSize < stream.MinChunkSize || o.ChunkSize > stream.MaxChunkSize) {
		return usagef("chunk size %d out of range %d..%d", o.ChunkSize, stream.MinChunkSize, stream.MaxChunkSize)
	}
	if o.BlockSize != 0 && (o.BlockSize < stream.MinBlockSize || o.BlockSize > stream.MaxBlockSize) {
		return usagef("block size %d out of range %d..%d", o.BlockSize, stream.MinBlockSize, stream.MaxBlockSize)
	}
	// Before any destination is opened or a session recorded: a media
	// file must hold at least one chunk.
	if min := stream.MinMediaSize(o.ChunkSize, o.BlockSize); o.MediaSize > 0 && o.MediaSize < min {
		return usagef("--media-size %d is too small: a media file holds at least one chunk, %d bytes with these options (or give a smaller --chunk-size)", o.MediaSize, min)
	}
	return nil
}

func (o *Options) mediaLabel(i int) string {
	switch len(o.MediaLabels) {
	case 0:
		return ""
	case 1:
		return o.MediaLabels[0]
	}
	return o.MediaLabels[i]
}
