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
			zstd.WithEncoderLevel(zstd.SpeedDefault),
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

// compress appends the stored form of raw to dst and returns it together
// with the compression actually used: chunks that do not shrink are stored
// uncompressed, so a stored chunk is never larger than its raw bytes.
func (c *compressor) compress(dst, raw []byte) ([]byte, Compression, error) {
	start := len(dst)
	switch c.kind {
	case CompressZstd:
		dst = c.zenc.EncodeAll(raw, dst)
	case CompressXZ:
		buf := bytes.NewBuffer(dst)
		w, err := lzma.Writer2Config{DictCap: c.dict}.NewWriter2(buf)
		if err != nil {
			return dst[:start], 0, fmt.Errorf("stream: xz encoder: %w", err)
		}
		if _, err := w.Write(raw); err != nil {
			return dst[:start], 0, fmt.Errorf("stream: xz encoder: %w", err)
		}
		if err := w.Close(); err != nil {
			return dst[:start], 0, fmt.Errorf("stream: xz encoder: %w", err)
		}
		dst = buf.Bytes()
	}
	if c.kind == CompressNone || len(dst)-start >= len(raw) {
		return append(dst[:start], raw...), CompressNone, nil
	}
	return dst, c.kind, nil
}

func (c *compressor) close() {
	if c.zenc != nil {
		c.zenc.Close()
	}
}

// decompressor inflates chunks with a hard output limit.
type decompressor struct {
	zdec *zstd.Decoder
}

func (d *decompressor) close() {
	if d.zdec != nil {
		d.zdec.Close()
	}
}

var errDecodedSize = errors.New("decompressed size does not match the chunk header")

// decompress inflates stored into dst[:rawLen]. dst must have cap >= rawLen.
// It never produces more than rawLen bytes and recovers from panics in the
// decompressors (hostile input must not crash the reader).
func (d *decompressor) decompress(kind Compression, stored []byte, rawLen int, dst []byte) (out []byte, err error) {
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
		return append(dst, stored...), nil
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
