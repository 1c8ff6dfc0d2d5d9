package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

type failingReaderAt struct{}

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("medium error") }

// TestProbeMedia probes every media file of a split, blocked stream and
// checks each field against what the writer was told and did, then that
// damaged headers are refused with the reason.
func TestProbeMedia(t *testing.T) {
	tr := genTree(11, treeOpts{dirs: 5, files: 60, maxFile: 200 << 10})
	tr.hdr.StreamIndex, tr.hdr.StreamCount = 2, 3
	var media []*bytes.Buffer
	media = append(media, &bytes.Buffer{})
	w, err := NewWriter(media[0], tr.hdr, WriterOptions{Compression: CompressXZ, ChunkSize: 128 << 10,
		BlockSize: 4096, MaxMediaSize: 256 << 10,
		OpenMedia: func(k int) (io.Writer, error) {
			media = append(media, &bytes.Buffer{})
			return media[k], nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.write(w, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(media) < 3 {
		t.Fatalf("%d media files", len(media))
	}
	r, err := NewReader(bytes.NewReader(media[0].Bytes()), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hdr, ok := r.Header()
	r.Close()
	if !ok {
		t.Fatal("no stream header")
	}
	var logical int64
	var chunks uint64
	for k, m := range media {
		mi, err := ProbeMedia(bytes.NewReader(m.Bytes()))
		if err != nil {
			t.Fatalf("media %d: %v", k, err)
		}
		want := MediaInfo{VersionMajor: VersionMajor, VersionMinor: VersionMinor, SessionID: hdr.SessionID,
			StreamIndex: 2, StreamCount: 3, MediaSeq: uint32(k), BlockSize: 4096, Logical: logical,
			FirstChunk: chunks, ChunkSize: 128 << 10, Compression: CompressXZ}
		if mi != want {
			t.Fatalf("media %d:\n got %+v\nwant %+v", k, mi, want)
		}
		// The next media file starts where this one's chunks end.
		for p := MediaHeaderSize; p+ChunkHeaderSize <= m.Len(); {
			h, ok := decodeChunkHeader(m.Bytes()[p:], false)
			if !ok {
				break
			}
			if h.seq != chunks || h.logical != logical {
				t.Fatalf("media %d: chunk %d at logical %d, expected %d at %d", k, h.seq, h.logical, chunks, logical)
			}
			chunks++
			logical += int64(h.rawLen)
			p += ChunkHeaderSize + int(h.storedLen)
		}
		if mi2, err := DecodeMediaHeader(m.Bytes()[:MediaHeaderSize]); err != nil || mi2 != mi {
			t.Fatalf("media %d: DecodeMediaHeader %+v %v", k, mi2, err)
		}
	}

	good := media[1].Bytes()[:MediaHeaderSize]
	badVersion := append([]byte(nil), good...)
	badVersion[8] = VersionMajor + 1
	le.PutUint32(badVersion[124:], crc(badVersion[:124]))
	for _, c := range []struct {
		name, why string
		b         []byte
	}{
		{"empty", "short media header", nil},
		{"short", "short media header", good[:MediaHeaderSize-1]},
		{"chunk", "bad media header magic", media[1].Bytes()[MediaHeaderSize:]},
		{"crc", "media header CRC mismatch", func() []byte { b := append([]byte(nil), good...); b[40] ^= 1; return b }()},
		{"version", "unsupported format major version 2", badVersion},
	} {
		_, err := ProbeMedia(bytes.NewReader(c.b))
		if !errors.Is(err, ErrNoMediaHeader) || err.Error() != ErrNoMediaHeader.Error()+": "+c.why {
			t.Errorf("%s: %v, want %q", c.name, err, c.why)
		}
	}
	if _, err := ProbeMedia(failingReaderAt{}); err == nil || errors.Is(err, ErrNoMediaHeader) {
		t.Errorf("read error: %v", err)
	}
}
