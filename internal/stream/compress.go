package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"
)

// compressor turns raw chunk bytes into stored bytes. It is safe for
// concurrent use.
type compressor struct {
	kind Compression
	zenc *zstd.Encoder
	dict int // LZMA2 dictionary capacity
}

func newCompressor(kind Compression, chunkSize, workers int) (*compressor, error) {
	c := &compressor{kind: kind}
	switch kind {
	case CompressNone:
	case CompressZstd:
		win := zstd.MinWindowSize
		for win < chunkSize && win < zstd.MaxWindowSize {
			win <<= 1
		}
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest), // dump speed first; -z xz is for size
			zstd.WithEncoderConcurrency(workers),
			zstd.WithEncoderCRC(false),
			zstd.WithWindowSize(win),
			zstd.WithZeroFrames(true))
		if err != nil {
			return nil, fmt.Errorf("stream: zstd encoder: %w", err)
		}
		c.zenc = enc
	case CompressXZ:
		c.dict = max(chunkSize, lzma.MinDictCap)
	default:
		return nil, fmt.Errorf("stream: unknown compression %d", kind)
	}
	return c, nil
}

// compress returns the stored form of raw and the compression actually
// used. Compressed bytes are appended to dst[:0]; chunks that do not shrink
// are stored uncompressed and the result is raw itself, so a stored chunk
// is never larger than its raw bytes.
func (c *compressor) compress(dst, raw []byte) (stored, buf []byte, kind Compression, err error) {
	dst = dst[:0]
	switch c.kind {
	case CompressZstd:
		dst = c.zenc.EncodeAll(raw, dst)
	case CompressXZ:
		bb := bytes.NewBuffer(dst)
		w, err := lzma.Writer2Config{DictCap: c.dict}.NewWriter2(bb)
		if err == nil {
			_, err = w.Write(raw)
		}
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			return nil, dst, 0, fmt.Errorf("stream: xz encoder: %w", err)
		}
		dst = bb.Bytes()
	}
	if c.kind == CompressNone || len(dst) >= len(raw) {
		return raw, dst, CompressNone, nil
	}
	return dst, dst, c.kind, nil
}

func (c *compressor) close() {
	if c.zenc != nil {
		c.zenc.Close()
	}
}

// decompressor inflates chunks with a hard output limit. With ra set it
// hands out chunks that the read-ahead has already inflated on worker
// goroutines (see readahead.go).
type decompressor struct {
	zdec *zstd.Decoder
	ra   *readAhead
}

func (d *decompressor) close() {
	if d.ra != nil {
		d.ra.close()
		d.ra = nil
	}
	if d.zdec != nil {
		d.zdec.Close()
		d.zdec = nil
	}
}

var errDecodedSize = errors.New("decompressed size does not match the chunk header")

// decompress inflates stored into dst[:rawLen] (dst must have cap >=
// rawLen); uncompressed chunks are returned as stored itself. The result
// is valid until the next call. It never produces more than rawLen bytes
// and recovers from panics in the decompressors (hostile input must not
// crash the reader).
func (d *decompressor) decompress(kind Compression, stored []byte, rawLen int, dst []byte) ([]byte, error) {
	if d.ra != nil {
		return d.ra.decompress(d, kind, stored, rawLen, dst)
	}
	return d.inflate(kind, stored, rawLen, dst)
}

// inflate is decompress without read-ahead: a pure function of kind,
// stored and rawLen, so a chunk inflated ahead on another goroutine gives
// the same bytes and the same error as inflating it in place.
func (d *decompressor) inflate(kind Compression, stored []byte, rawLen int, dst []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%s decompressor failed: %v", kind, r)
		}
	}()
	dst = dst[:0:rawLen]
	switch kind {
	case CompressNone:
		if len(stored) != rawLen {
			return nil, errDecodedSize
		}
		return stored, nil
	case CompressZstd:
		if d.zdec == nil {
			dec, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(MaxChunkSize),
				zstd.WithDecoderMaxWindow(MaxChunkSize),
				zstd.WithDecodeAllCapLimit(true),
				zstd.IgnoreChecksum(true))
			if err != nil {
				return nil, err
			}
			d.zdec = dec
		}
		out, err := d.zdec.DecodeAll(stored, dst)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if len(out) != rawLen {
			return nil, errDecodedSize
		}
		return out, nil
	case CompressXZ:
		r, err := lzma.Reader2Config{DictCap: max(rawLen, lzma.MinDictCap)}.NewReader2(bytes.NewReader(stored))
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		dst = dst[:rawLen]
		if _, err := io.ReadFull(r, dst); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		var one [1]byte
		if n, _ := r.Read(one[:]); n != 0 {
			return nil, errDecodedSize
		}
		return dst, nil
	}
	return nil, fmt.Errorf("unknown compression %d", kind)
}
