package stream

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// ResumeFile is an existing media file that Resume may read, truncate and
// append to. *os.File (opened read-write) satisfies it.
type ResumeFile interface {
	io.ReaderAt
	io.Writer
	io.Seeker
	Truncate(size int64) error
}

// ErrNoCheckpoint is returned by Resume when the existing output holds no
// complete checkpoint (not even the stream header): start a new stream.
var ErrNoCheckpoint = errors.New("stream: nothing to resume (no complete checkpoint in the existing output)")

// ResumeInfo tells the caller of Resume what survived.
type ResumeInfo struct {
	Checkpoint        // where the stream continues
	Header     Header // header of the existing stream
	// Complete is set when the existing stream was already complete; its
	// END, index and trailer were cut and are written again by Close.
	Complete bool
	// Media is the media file the Writer continues in; media files after it
	// were truncated to zero length and should be removed (the Writer calls
	// OpenMedia again when it needs them).
	Media int
	// Discarded is the number of logical bytes after the checkpoint that
	// were dropped.
	Discarded int64
}

type resumeMedia struct {
	f    ResumeFile
	name string
	size int64
	hdr  mediaHeader
}

// Resume reopens an interrupted stream written by a Writer: it reads the
// media files (any order; all that exist), keeps everything up to the last
// checkpoint whose records are complete and intact, truncates the rest and
// returns a Writer positioned there. The caller then writes the
// directories/files after info.LastIno (see Checkpoint) exactly as the
// original run would have, and calls Close; the result reads back as the
// same logical stream an uninterrupted run would have produced.
//
// Compression, chunk size and block size come from the existing stream;
// opts supplies MaxMediaSize, OpenMedia, Concurrency and OnCheckpoint. The
// Writer does not close the files passed here.
func Resume(files []ResumeFile, opts WriterOptions) (*Writer, ResumeInfo, error) {
	var info ResumeInfo
	if len(files) == 0 {
		return nil, info, errors.New("stream: Resume needs at least one media file")
	}
	media := make([]*resumeMedia, 0, len(files))
	for i, f := range files {
		m := &resumeMedia{f: f, name: fmt.Sprintf("media file %d", i)}
		if n, ok := f.(interface{ Name() string }); ok {
			m.name = n.Name()
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, info, fmt.Errorf("stream: %s: %w", m.name, err)
		}
		m.size = size
		var b [MediaHeaderSize]byte
		if size < MediaHeaderSize {
			if len(files) == 1 {
				return nil, info, ErrNoCheckpoint
			}
			return nil, info, fmt.Errorf("stream: %s: too short for a media header (%d bytes)", m.name, size)
		}
		if _, err := f.ReadAt(b[:], 0); err != nil {
			return nil, info, fmt.Errorf("stream: %s: read media header: %w", m.name, err)
		}
		var why string
		if m.hdr, why = decodeMediaHeader(b[:], false); why != "" {
			return nil, info, fmt.Errorf("stream: %s: %s", m.name, why)
		}
		media = append(media, m)
	}
	sort.Slice(media, func(i, j int) bool { return media[i].hdr.mediaSeq < media[j].hdr.mediaSeq })
	for i, m := range media {
		if m.hdr.mediaSeq != uint32(i) {
			return nil, info, fmt.Errorf("stream: %s is media file %d, expected %d (missing or duplicate media file)", m.name, m.hdr.mediaSeq, i)
		}
		if m.hdr.session != media[0].hdr.session || m.hdr.streamIndex != media[0].hdr.streamIndex {
			return nil, info, fmt.Errorf("stream: %s belongs to another session or stream than %s", m.name, media[0].name)
		}
	}

	// Pass 1: read records strictly up to the first problem, remembering
	// the state at the last checkpoint.
	list := make([]Media, len(media))
	for i, m := range media {
		list[i] = Media{Name: m.name, R: io.NewSectionReader(m.f, 0, m.size)}
	}
	cs, err := openMedia(list, false, 0)
	if err != nil {
		return nil, info, err
	}
	rr := &recReader{cs: cs}
	var (
		hdr    Header
		live   logState
		snap   logState
		have   bool
		idx    []byte
		g      group
		scr    Writer // only for addIndex
		cpInfo Checkpoint
	)
	mark := func() {
		snap = live
		snap.idxLen = len(scr.idx)
		have = true
		cpInfo = Checkpoint{Phase: live.phase, Dirs: live.dirs, Files: live.files, HardLinks: live.links,
			DataBytes: live.dataBytes, Records: live.seq, Logical: live.logical}
		if live.phase == PhaseDirs {
			cpInfo.LastIno = live.lastDir
		} else {
			cpInfo.LastIno = live.lastFile
		}
	}
scan:
	for {
		rec, err := rr.next()
		if err == io.EOF || rec.dmg != nil || len(rr.extra) > 0 {
			break
		}
		if err != nil {
			return nil, info, err
		}
		if rec.hdr.seq != live.seq || rec.off != live.logical {
			break
		}
		var cb [4]byte
		le.PutUint32(cb[:], rec.hdr.crc)
		live.chain = crcUpdate(live.chain, cb[:])
		live.seq++
		live.logical = rec.end()
		switch rec.hdr.typ {
		case recHeader:
			if rec.hdr.seq != 0 {
				break scan
			}
			if hdr, err = decodeHeader(rec.payload); err != nil {
				break scan
			}
			live.phase = PhaseDirs
			mark()
		case recInode:
			if g.open || live.phase == 0 {
				break scan
			}
			meta, _, err := decodeInode(rec.payload)
			if err != nil {
				break scan
			}
			isDir := meta.Type() == TypeDir
			if isDir != (live.phase == PhaseDirs) {
				break scan
			}
			g = group{open: true, dir: isDir, ino: meta.Ino, off: rec.off}
		case recXattrs, recDirents, recData:
			if !g.open || rec.hdr.ino != g.ino {
				break scan
			}
		case recInodeEnd:
			if !g.open || rec.hdr.ino != g.ino {
				break scan
			}
			e, err := decodeInodeEnd(rec.payload)
			if err != nil {
				break scan
			}
			scr.logState = live
			scr.idx = idx
			scr.addIndex(g.ino, g.off)
			idx = scr.idx
			live.idxLen, live.idxCount, live.idxPrevIno, live.idxPrevOff = scr.idxLen, scr.idxCount, scr.idxPrevIno, scr.idxPrevOff
			live.xattrs += e.xattrs
			if g.dir {
				live.dirs++
				live.lastDir = g.ino
			} else {
				live.files++
				live.lastFile = g.ino
				live.dataBytes += e.dataBytes
			}
			g.open = false
			mark()
		case recDirsEnd:
			if g.open || live.phase != PhaseDirs {
				break scan
			}
			live.dirsEndOff = rec.off
			live.phase = PhaseFiles
			mark()
		case recHardLink:
			if g.open || live.phase != PhaseFiles {
				break scan
			}
			live.links++
			mark()
		case recEnd, recIndex, recTrailer:
			info.Complete = !g.open
			break scan
		default:
			break scan
		}
	}
	rr.cs.dec.close()
	if !have {
		return nil, info, ErrNoCheckpoint
	}
	C := snap.logical

	// Pass 2: find the chunk holding logical offset C.
	pos, err := locate(media, C)
	if err != nil {
		return nil, info, err
	}

	// Build the writer.
	wopts := opts
	wopts.Compression = hdr.Compression
	wopts.ChunkSize = int(hdr.ChunkSize)
	wopts.BlockSize = int(hdr.BlockSize)
	if err := checkOptions(&hdr, &wopts); err != nil {
		return nil, info, err
	}
	w := newWriter(hdr, wopts)
	if w.err != nil {
		return nil, info, w.err
	}
	w.logState = snap
	w.idx = idx[:snap.idxLen]
	w.cp = cpInfo
	if len(pos.prefill) > 0 {
		w.cur.raw = append(w.cur.raw[:0], pos.prefill...)
	}
	m := media[pos.media]
	s := w.s
	s.nextSeq = pos.seq
	s.media = pos.media
	s.out = m.f
	s.headerDone = true
	s.written = pos.phys
	s.flushed = pos.phys
	if pos.phys > MediaHeaderSize {
		s.chunksHere = 1
	}
	trunc := pos.phys
	if s.blockSize > 0 {
		trunc = pos.phys / int64(s.blockSize) * int64(s.blockSize)
		if n := int(pos.phys - trunc); n > 0 {
			if _, err := m.f.ReadAt(s.block[:n], trunc); err != nil {
				return nil, info, fmt.Errorf("stream: %s: %w", m.name, err)
			}
			s.blen = n
		}
		s.flushed = trunc
	}
	if err := m.f.Truncate(trunc); err != nil {
		return nil, info, fmt.Errorf("stream: %s: truncate: %w", m.name, err)
	}
	if _, err := m.f.Seek(trunc, io.SeekStart); err != nil {
		return nil, info, fmt.Errorf("stream: %s: %w", m.name, err)
	}
	for _, later := range media[pos.media+1:] {
		if err := later.f.Truncate(0); err != nil {
			return nil, info, fmt.Errorf("stream: %s: truncate: %w", later.name, err)
		}
	}
	s.stats.Media = pos.media + 1
	w.s.start(w.workers())

	info.Checkpoint = cpInfo
	info.Checkpoint.Media, info.Checkpoint.MediaOffset = pos.media, pos.phys
	info.Header = hdr
	info.Media = pos.media
	info.Discarded = live.logical - C
	if rr.dmg != nil || live.logical < C {
		info.Discarded = 0
	}
	return w, info, nil
}

type resumePos struct {
	media   int
	phys    int64 // where the chunk holding C starts (or the next chunk would)
	seq     uint64
	prefill []byte // logical bytes [chunk start, C)
}

// locate walks the chunk headers (already verified by pass 1) to the chunk
// that holds logical offset C.
func locate(media []*resumeMedia, C int64) (resumePos, error) {
	var pos resumePos
	var hb [ChunkHeaderSize]byte
	var nextSeq uint64
	for i, m := range media {
		off := int64(MediaHeaderSize)
		for off+ChunkHeaderSize <= m.size {
			if _, err := m.f.ReadAt(hb[:], off); err != nil {
				return pos, fmt.Errorf("stream: %s: %w", m.name, err)
			}
			h, ok := decodeChunkHeader(hb[:], false)
			if !ok || off+ChunkHeaderSize+int64(h.storedLen) > m.size {
				break
			}
			if h.logical+int64(h.rawLen) > C {
				if h.logical > C {
					return pos, fmt.Errorf("stream: %s: chunk %d at offset %d starts after the checkpoint", m.name, h.seq, off)
				}
				pos = resumePos{media: i, phys: off, seq: h.seq}
				if n := C - h.logical; n > 0 {
					stored := make([]byte, h.storedLen)
					if _, err := m.f.ReadAt(stored, off+ChunkHeaderSize); err != nil {
						return pos, fmt.Errorf("stream: %s: %w", m.name, err)
					}
					var d decompressor
					raw, err := d.decompress(h.compression, stored, int(h.rawLen), make([]byte, 0, h.rawLen))
					d.close()
					if err != nil {
						return pos, fmt.Errorf("stream: %s: chunk %d: %v", m.name, h.seq, err)
					}
					pos.prefill = raw[:n]
				}
				return pos, nil
			}
			off += ChunkHeaderSize + int64(h.storedLen)
			nextSeq = h.seq + 1
		}
		pos = resumePos{media: i, phys: off, seq: nextSeq}
		if i+1 < len(media) && media[i+1].hdr.logical > C {
			break
		}
	}
	return pos, nil
}
