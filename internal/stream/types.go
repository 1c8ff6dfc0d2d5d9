package stream

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// UUID is a 16-byte identifier (session, base session, filesystem).
// It converts directly to and from github.com/google/uuid.UUID.
type UUID = [16]byte

// Compression selects how chunks are compressed. The zero value is zstd,
// the default. The numeric values are the on-disk identifiers.
type Compression uint8

const (
	CompressZstd Compression = 0 // github.com/klauspost/compress/zstd, one frame per chunk
	CompressNone Compression = 1 // chunks stored as is
	CompressXZ   Compression = 2 // raw LZMA2 (the xz filter), github.com/ulikunitz/xz/lzma
)

func (c Compression) String() string {
	switch c {
	case CompressZstd:
		return "zstd"
	case CompressNone:
		return "none"
	case CompressXZ:
		return "xz"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// ParseCompression maps "zstd", "xz" and "none" (also "" → zstd) to a Compression.
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "", "zstd", "zst":
		return CompressZstd, nil
	case "xz", "lzma2":
		return CompressXZ, nil
	case "none", "off", "no":
		return CompressNone, nil
	}
	return 0, fmt.Errorf("stream: unknown compression %q (want zstd, xz or none)", s)
}

// Header describes a whole stream. The caller fills the identity fields for
// NewWriter; the writer fills Version*, Compression, ChunkSize and BlockSize
// from its options (values given here for those are ignored).
type Header struct {
	VersionMajor, VersionMinor uint16 // set by the writer / read from the stream

	SessionID     UUID // zero: NewWriter picks a random one
	SessionLabel  string
	MediaLabel    string
	StreamIndex   uint32 // this stream is StreamIndex of StreamCount (0-based)
	StreamCount   uint32 // 0 is treated as 1
	FSUUID        UUID
	FSLabel       string
	Level         uint32   // dump level (0 = full)
	BaseSessionID UUID     // session this incremental is based on (zero for level 0)
	Subtrees      []string // subtree selection (paths relative to the fs root); empty = whole fs
	Created       time.Time

	Compression Compression
	ChunkSize   uint32 // logical bytes per chunk
	BlockSize   uint32 // fixed output block size, 0 if unblocked
}

// Timestamp is an inode time: seconds since the Unix epoch (signed, 64-bit,
// so dates before 1970 and after 2038 work) and nanoseconds (0..999999999).
type Timestamp struct {
	Sec  int64
	Nsec uint32
}

// TimestampOf converts a time.Time.
func TimestampOf(t time.Time) Timestamp {
	return Timestamp{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
}

// Time converts to time.Time.
func (t Timestamp) Time() time.Time { return time.Unix(t.Sec, int64(t.Nsec)) }

// File type bits of Mode (S_IFMT) and the directory entry type codes (the
// values XFS stores in directory entries with the ftype feature).
const (
	ModeTypeMask = 0o170000
	ModeFIFO     = 0o010000
	ModeCharDev  = 0o020000
	ModeDir      = 0o040000
	ModeBlockDev = 0o060000
	ModeRegular  = 0o100000
	ModeSymlink  = 0o120000
	ModeSocket   = 0o140000
)

// FileType is a directory entry type.
type FileType uint8

const (
	TypeUnknown  FileType = 0
	TypeRegular  FileType = 1
	TypeDir      FileType = 2
	TypeCharDev  FileType = 3
	TypeBlockDev FileType = 4
	TypeFIFO     FileType = 5
	TypeSocket   FileType = 6
	TypeSymlink  FileType = 7
)

// TypeOfMode returns the entry type for a mode's S_IFMT bits.
func TypeOfMode(mode uint32) FileType {
	switch mode & ModeTypeMask {
	case ModeRegular:
		return TypeRegular
	case ModeDir:
		return TypeDir
	case ModeCharDev:
		return TypeCharDev
	case ModeBlockDev:
		return TypeBlockDev
	case ModeFIFO:
		return TypeFIFO
	case ModeSocket:
		return TypeSocket
	case ModeSymlink:
		return TypeSymlink
	}
	return TypeUnknown
}

// FileMeta is the metadata of one inode.
type FileMeta struct {
	Ino        uint64
	Mode       uint32 // S_IFMT type bits | permission bits
	UID, GID   uint32
	Nlink      uint32
	Size       int64
	Atime      Timestamp
	Mtime      Timestamp
	Ctime      Timestamp
	Crtime     Timestamp
	Rdev       uint64 // device number for character/block devices
	ProjectID  uint32
	XFlags     uint32 // FS_XFLAG_* (fsxattr) flags
	ExtSize    uint32 // extent size hint, bytes
	CowExtSize uint32 // CoW extent size hint, bytes
	Gen        uint32 // inode generation
	Symlink    string // target, for symlinks only
}

// Type returns the file type encoded in Mode.
func (m *FileMeta) Type() FileType { return TypeOfMode(m.Mode) }

// XattrNamespace is the namespace of an extended attribute.
type XattrNamespace uint8

const (
	XattrUser     XattrNamespace = 0 // user.*
	XattrTrusted  XattrNamespace = 1 // trusted.*
	XattrSecurity XattrNamespace = 2 // security.*
	XattrRoot     XattrNamespace = 3 // XFS "root" namespace: system / POSIX ACLs
)

func (n XattrNamespace) String() string {
	switch n {
	case XattrUser:
		return "user"
	case XattrTrusted:
		return "trusted"
	case XattrSecurity:
		return "security"
	case XattrRoot:
		return "root"
	}
	return fmt.Sprintf("ns%d", uint8(n))
}

// Xattr is one extended attribute. Readers pass unknown namespace values
// through unchanged.
type Xattr struct {
	Namespace XattrNamespace
	Name      string
	Value     []byte
}

// DirEntry is one name in a directory ("." and ".." are not stored).
type DirEntry struct {
	Name string
	Ino  uint64
	Type FileType
}

// Dir is a directory of the dumped tree: its own inode metadata and xattrs,
// its parent and every entry.
type Dir struct {
	Meta    FileMeta
	Parent  uint64 // parent directory inode (the root is its own parent)
	Xattrs  []Xattr
	Entries []DirEntry

	// Damaged is set by the reader when records of this directory were lost;
	// Entries is then incomplete and must not be used to delete names.
	Damaged bool
	Offset  int64 // logical offset of the directory's INODE record (reader)
}

// HardLink says that inode Ino, whose file record was already emitted in
// this stream, has another name: Name in directory Parent.
type HardLink struct {
	Ino    uint64
	Parent uint64
	Name   string
	Offset int64 // logical offset of the record (reader)
}

func (*Dir) isEntry()      {}
func (*HardLink) isEntry() {}

// Entry is what Reader.Next returns: a *Dir, a *File or a *HardLink.
type Entry interface{ isEntry() }

// DataExtent is one piece of file data for Writer.WriteFile: Length bytes
// read from R are stored at file offset Offset. Everything not covered by an
// extent is a hole.
type DataExtent struct {
	Offset int64
	Length int64
	R      io.Reader
}

// Phase tells which section of the stream a checkpoint is in.
type Phase uint8

const (
	PhaseDirs  Phase = 1 // directory section
	PhaseFiles Phase = 2 // file section (the directory section is complete)
	PhaseDone  Phase = 3 // the stream is closed (trailer written)
)

func (p Phase) String() string {
	switch p {
	case PhaseDirs:
		return "dirs"
	case PhaseFiles:
		return "files"
	case PhaseDone:
		return "done"
	}
	return "phase?"
}

// Checkpoint describes the stream just after a completed record group. A
// stream interrupted after a checkpoint became durable can be continued with
// Resume: the caller then emits the directories (PhaseDirs) or files
// (PhaseFiles) whose inode number is greater than LastIno.
type Checkpoint struct {
	Phase     Phase
	LastIno   uint64 // last complete dir (PhaseDirs) or file (PhaseFiles); valid if Dirs/Files > 0
	Dirs      uint64 // directory records complete
	Files     uint64 // file records complete
	HardLinks uint64 // hard link records complete
	DataBytes uint64 // file data bytes in complete file records
	Records   uint64 // sequence number of the next record
	Logical   int64  // logical stream offset just after the checkpoint

	// Where the checkpoint became durable: media file index and the physical
	// offset in it just after the chunk (or block) that completed it. Only
	// set on checkpoints passed to OnCheckpoint / returned by Durable.
	Media       int
	MediaOffset int64
}

// Damage describes one incident found while reading: a stretch of the stream
// that could not be used. The reader resynchronises after it.
type Damage struct {
	Media  string // media/stream file name
	Offset int64  // physical offset in Media where the damage was found (-1 unknown)

	// Lost logical range [Logical, Logical+Lost). Lost is -1 when everything
	// from Logical to the end of the stream is missing, 0 when no logical
	// data was lost (e.g. junk between chunks).
	Logical int64
	Lost    int64

	FirstRecord uint64 // sequence number of the first lost record
	Records     int64  // number of records lost (-1 unknown)

	Inos   []uint64 // inodes with lost records (from context and the trailing index)
	Reason string
}

func (d Damage) Error() string {
	var b strings.Builder
	b.WriteString(d.Media)
	if d.Offset >= 0 {
		fmt.Fprintf(&b, ": offset %d", d.Offset)
	}
	if d.Logical >= 0 {
		switch {
		case d.Lost < 0:
			fmt.Fprintf(&b, ": logical %d..end lost", d.Logical)
		case d.Lost > 0:
			fmt.Fprintf(&b, ": logical %d..%d lost", d.Logical, d.Logical+d.Lost)
		}
	}
	if d.Records == 1 {
		fmt.Fprintf(&b, ", record %d", d.FirstRecord)
	} else if d.Records > 1 {
		fmt.Fprintf(&b, ", records %d..%d", d.FirstRecord, d.FirstRecord+uint64(d.Records)-1)
	} else if d.Records < 0 {
		fmt.Fprintf(&b, ", records from %d", d.FirstRecord)
	}
	if len(d.Inos) > 0 {
		b.WriteString(", inodes")
		for i, ino := range d.Inos {
			if i == 16 {
				fmt.Fprintf(&b, " … (%d more)", len(d.Inos)-16)
				break
			}
			fmt.Fprintf(&b, " %d", ino)
		}
	}
	if d.Reason != "" {
		b.WriteString(": ")
		b.WriteString(d.Reason)
	}
	return b.String()
}

// DamageError is returned by File.NextExtent and File.CopyTo when records of
// that file were lost.
type DamageError struct {
	Ino    uint64
	Damage Damage
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("inode %d: data damaged: %s", e.Ino, e.Damage.Error())
}

// Trailer is the summary at the end of a complete stream.
type Trailer struct {
	Records     uint64 // records before the trailer
	Files       uint64
	Dirs        uint64
	HardLinks   uint64
	DataBytes   uint64
	Xattrs      uint64
	IndexCount  uint64 // entries in the trailing index
	IndexOffset int64  // logical offset of the first INDEX record
	DirsEnd     int64  // logical offset of the DIRS_END record
	EndOffset   int64  // logical offset of the END record
	RecordChain uint32 // CRC32c over the CRC fields of all earlier records
}

// IndexEntry maps an inode to the logical offset of its INODE record.
type IndexEntry struct {
	Ino    uint64
	Offset int64
}

func sortedInos(m map[uint64]struct{}) []uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
