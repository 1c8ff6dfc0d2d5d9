package stream

import (
	"errors"
	"fmt"
	"io"
)

// MediaInfo is what the media header at the start of a media file says
// (docs/stream-format.md, "Media header"). Restore uses it to group media
// files by session and stream before opening a Reader.
type MediaInfo struct {
	VersionMajor, VersionMinor uint16
	SessionID                  UUID
	StreamIndex                uint32 // this media file belongs to stream StreamIndex (0-based)
	StreamCount                uint32 // of StreamCount streams
	MediaSeq                   uint32 // media sequence number (0 for the first file of a stream)
	BlockSize                  uint32 // 0: not blocked
	Logical                    int64  // logical offset of the first chunk in this file
	FirstChunk                 uint64 // sequence number of the first chunk in this file
	ChunkSize                  uint32
	Compression                Compression // informational: each chunk says its own
}

// ErrNoMediaHeader is wrapped by ProbeMedia and DecodeMediaHeader when
// there is no valid media header; the message says why.
var ErrNoMediaHeader = errors.New("no valid media header")

// DecodeMediaHeader decodes the media header in the first MediaHeaderSize
// bytes of b (the start of a media file), checking its magic, CRC, major
// version and size.
func DecodeMediaHeader(b []byte) (MediaInfo, error) {
	h, why := decodeMediaHeader(b, false)
	if why != "" {
		return MediaInfo{}, fmt.Errorf("%w: %s", ErrNoMediaHeader, why)
	}
	return MediaInfo{VersionMajor: h.major, VersionMinor: h.minor, SessionID: h.session,
		StreamIndex: h.streamIndex, StreamCount: h.streamCount, MediaSeq: h.mediaSeq,
		BlockSize: h.blockSize, Logical: h.logical, FirstChunk: h.chunkSeq,
		ChunkSize: h.chunkSize, Compression: h.compression}, nil
}

// ProbeMedia reads and decodes the media header at offset 0 of r. A file
// too short for a header gives ErrNoMediaHeader; read errors are returned
// as they are.
func ProbeMedia(r io.ReaderAt) (MediaInfo, error) {
	b := make([]byte, MediaHeaderSize)
	n, err := r.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return MediaInfo{}, fmt.Errorf("read media header: %w", err)
	}
	return DecodeMediaHeader(b[:n])
}
