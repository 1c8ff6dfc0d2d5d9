package stream

import "testing"

// TestVerifiedRange: a record skips its own CRC only when every chunk it
// lies in was stored uncompressed and passed its chunk CRC.
func TestVerifiedRange(t *testing.T) {
	rr := &recReader{}
	rr.appendChunk(chunk{logical: 1000, data: make([]byte, 100), verified: true})
	rr.appendChunk(chunk{logical: 1100, data: make([]byte, 100), verified: false})
	rr.appendChunk(chunk{logical: 1200, data: make([]byte, 100), verified: true})
	for _, tc := range []struct {
		off, end int64
		want     bool
	}{
		{1000, 1100, true},  // the first chunk only
		{1050, 1101, false}, // into the unverified one
		{1099, 1100, true},
		{1100, 1101, false},
		{1199, 1250, false},
		{1200, 1300, true}, // the last chunk only
		{900, 1000, false}, // before the buffer: unknown
	} {
		if got := rr.verified(tc.off, tc.end); got != tc.want {
			t.Errorf("verified(%d, %d) = %v, want %v", tc.off, tc.end, got, tc.want)
		}
	}
}
