package restore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"

	"xfskit/internal/stream"
)

// Media header fields restore needs before opening a stream, to group media
// files by session and stream (see docs/stream-format.md, "Media header").
// internal/stream does not export a probe; these offsets mirror its format.
const (
	mediaHdrSize     = stream.MediaHeaderSize
	mhMagicEnd       = 8
	mhMajor          = 8
	mhSession        = 16
	mhStreamIndex    = 32
	mhStreamCount    = 36
	mhMediaSeq       = 40
	mhCRC            = 124
	mediaMagicPrefix = "\xd7XKMED\x0d\x8a"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// probe is what the media header of a source says.
type probe struct {
	ok      bool
	why     string
	session stream.UUID
	index   uint32
	count   uint32
	seq     uint32
}

func decodeProbe(b []byte) probe {
	switch {
	case len(b) < mediaHdrSize:
		return probe{why: "too short for a media header"}
	case string(b[:mhMagicEnd]) != mediaMagicPrefix:
		return probe{why: "no media header magic"}
	case binary.LittleEndian.Uint32(b[mhCRC:]) != crc32.Checksum(b[:mhCRC], castagnoli):
		return probe{why: "media header CRC mismatch"}
	case binary.LittleEndian.Uint16(b[mhMajor:]) != stream.VersionMajor:
		return probe{why: fmt.Sprintf("unsupported stream format version %d", binary.LittleEndian.Uint16(b[mhMajor:]))}
	}
	p := probe{ok: true}
	copy(p.session[:], b[mhSession:mhSession+16])
	p.index = binary.LittleEndian.Uint32(b[mhStreamIndex:])
	p.count = binary.LittleEndian.Uint32(b[mhStreamCount:])
	p.seq = binary.LittleEndian.Uint32(b[mhMediaSeq:])
	return p
}

// source is one media file given on the command line.
type source struct {
	name   string
	f      *os.File // nil for stdin
	r      io.Reader
	size   int64 // -1 when unknown
	probe  probe
	device bool // a character device: read in whole records
}

// countingReader adds what passes through it to a shared counter.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// expandSources replaces a name that does not exist by its numbered media
// files NAME.000, NAME.001, … when there are any.
func expandSources(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if n == "-" {
			out = append(out, n)
			continue
		}
		if _, err := os.Stat(n); err != nil && errors.Is(err, os.ErrNotExist) {
			m, _ := filepath.Glob(escapeGlob(n) + ".[0-9][0-9][0-9]")
			if len(m) > 0 {
				sort.Strings(m)
				for _, x := range m {
					if !seen[x] {
						seen[x] = true
						out = append(out, x)
					}
				}
				continue
			}
		}
		if seen[n] {
			return nil, usagef("%s given twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

func escapeGlob(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// DefaultBlockSize is the read size for tapes and other character devices
// when none is given: a multiple of the record sizes dump writes.
const DefaultBlockSize = 1 << 20

// openSources opens and probes every source; counter receives the bytes
// read; block is the record size of tapes (0: DefaultBlockSize).
func openSources(names []string, stdin io.Reader, counter *atomic.Int64, block int) ([]*source, error) {
	if block <= 0 {
		block = DefaultBlockSize
	}
	names, err := expandSources(names)
	if err != nil {
		return nil, err
	}
	var out []*source
	stdinUsed := false
	for _, n := range names {
		s := &source{name: n, size: -1}
		if n == "-" {
			if stdinUsed {
				return closeAll(out, usagef("standard input given twice"))
			}
			stdinUsed = true
			if stdin == nil {
				stdin = os.Stdin
			}
			br := bufio.NewReaderSize(stdin, 1<<20)
			b, err := br.Peek(mediaHdrSize)
			if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
				return closeAll(out, fmt.Errorf("standard input: %w", err))
			}
			s.name = "(stdin)"
			s.probe = decodeProbe(b)
			s.r = br
		} else {
			f, err := os.Open(n)
			if err != nil {
				return closeAll(out, err)
			}
			s.f = f
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return closeAll(out, err)
			}
			if st.IsDir() {
				f.Close()
				return closeAll(out, fmt.Errorf("%s is a directory", n))
			}
			if st.Mode().IsRegular() {
				s.size = st.Size()
				b := make([]byte, mediaHdrSize)
				k, err := f.ReadAt(b, 0)
				if err != nil && err != io.EOF {
					f.Close()
					return closeAll(out, fmt.Errorf("%s: %w", n, err))
				}
				s.probe = decodeProbe(b[:k])
				s.r = f
			} else {
				// A pipe, fifo or tape: read the header (a whole record
				// for tapes) and put it back in front.
				s.device = st.Mode()&os.ModeCharDevice != 0
				b := make([]byte, max(block, mediaHdrSize))
				k, err := io.ReadAtLeast(f, b, mediaHdrSize)
				if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
					f.Close()
					return closeAll(out, fmt.Errorf("%s: %w", n, err))
				}
				s.probe = decodeProbe(b[:k])
				s.r = io.MultiReader(bytes.NewReader(b[:k]), f)
			}
		}
		s.r = &countingReader{r: s.r, n: counter}
		out = append(out, s)
	}
	return out, nil
}

func closeAll(srcs []*source, err error) ([]*source, error) {
	for _, s := range srcs {
		if s.f != nil {
			s.f.Close()
		}
	}
	return nil, err
}

// streamIn is one stream of a session and its reader.
type streamIn struct {
	index uint32
	media []*source
	r     *stream.Reader
	hdr   stream.Header
	hdrOK bool
}

func (s *streamIn) name() string {
	if len(s.media) == 1 {
		return s.media[0].name
	}
	return fmt.Sprintf("%s (+%d media files)", s.media[0].name, len(s.media)-1)
}

// sessionIn is a session: its streams and header.
type sessionIn struct {
	id      stream.UUID
	streams []*streamIn
	hdr     stream.Header
	hdrOK   bool
	count   uint32 // streams in the session, from media headers
}

func (s *sessionIn) info() SessionInfo {
	si := SessionInfo{ID: uuidString(s.id), Streams: len(s.streams), Of: s.count}
	if s.hdrOK {
		si.Level = s.hdr.Level
		if s.hdr.BaseSessionID != (stream.UUID{}) {
			si.Base = uuidString(s.hdr.BaseSessionID)
		}
		si.Label = s.hdr.SessionLabel
		si.FSUUID = uuidString(s.hdr.FSUUID)
		si.Created = s.hdr.Created.UTC().Format("2006-01-02T15:04:05.999999999Z")
		if s.hdr.StreamCount > si.Of {
			si.Of = s.hdr.StreamCount
		}
	}
	for _, st := range s.streams {
		for _, m := range st.media {
			si.Media = append(si.Media, m.name)
		}
	}
	return si
}

// groupSources sorts the sources into sessions and streams. Media files
// whose header is unreadable join the only stream there is; with several
// streams they are reported and left out.
func groupSources(srcs []*source, problems *[]Problem) []*sessionIn {
	type key struct {
		s stream.UUID
		i uint32
	}
	streams := map[key]*streamIn{}
	sessions := map[stream.UUID]*sessionIn{}
	var order []*sessionIn
	var bad []*source
	for _, s := range srcs {
		if !s.probe.ok {
			bad = append(bad, s)
			continue
		}
		k := key{s.probe.session, s.probe.index}
		st := streams[k]
		if st == nil {
			st = &streamIn{index: s.probe.index}
			streams[k] = st
			ss := sessions[k.s]
			if ss == nil {
				ss = &sessionIn{id: k.s}
				sessions[k.s] = ss
				order = append(order, ss)
			}
			ss.streams = append(ss.streams, st)
			ss.count = max(ss.count, s.probe.count)
		}
		st.media = append(st.media, s)
	}
	switch {
	case len(bad) > 0 && len(streams) == 0:
		// No readable media header at all: let the stream reader find the
		// chunks (it orders media files by their first chunk).
		ss := &sessionIn{streams: []*streamIn{{media: bad}}}
		order = append(order, ss)
	case len(bad) > 0 && len(streams) == 1:
		for _, st := range streams {
			st.media = append(st.media, bad...)
		}
	default:
		for _, s := range bad {
			*problems = append(*problems, Problem{Reason: fmt.Sprintf("%s: %s: cannot tell which stream it belongs to; not used", s.name, s.probe.why)})
		}
	}
	for _, ss := range order {
		sort.Slice(ss.streams, func(i, j int) bool { return ss.streams[i].index < ss.streams[j].index })
	}
	return order
}

// openReaders opens the stream reader of every stream of a session and
// takes the session header from the first stream that has it.
func (ss *sessionIn) openReaders(block int) error {
	if block <= 0 {
		block = DefaultBlockSize
	}
	for _, st := range ss.streams {
		media := make([]stream.Media, len(st.media))
		for i, m := range st.media {
			media[i] = stream.Media{Name: m.name, R: m.r}
		}
		ro := stream.ReaderOptions{Name: st.media[0].name}
		for _, m := range st.media {
			if m.device {
				ro.BlockSize = block
			}
		}
		r, err := stream.NewMediaReader(media, ro)
		if err != nil {
			return fmt.Errorf("%s: %w", st.name(), err)
		}
		st.r = r
		st.hdr, st.hdrOK = r.Header()
		if st.hdrOK && ss.id != (stream.UUID{}) && (st.hdr.SessionID != ss.id || st.hdr.StreamIndex != st.index) {
			return fmt.Errorf("%s: its header says session %s stream %d, its media header session %s stream %d",
				st.name(), uuidString(st.hdr.SessionID), st.hdr.StreamIndex, uuidString(ss.id), st.index)
		}
		if st.hdrOK && !ss.hdrOK {
			ss.hdr, ss.hdrOK = st.hdr, true
		}
	}
	if ss.id == (stream.UUID{}) && ss.hdrOK {
		ss.id = ss.hdr.SessionID
	}
	return nil
}

func (ss *sessionIn) close() {
	for _, st := range ss.streams {
		for _, m := range st.media {
			if m.f != nil {
				m.f.Close()
				m.f = nil
			}
		}
	}
}
