package ondisk_test

import (
	"errors"
	"testing"

	"xfskit/ondisk"
)

func TestSymlinkHeaderRoundTrip(t *testing.T) {
	uuid := ondisk.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	b := make([]byte, 1024)
	target := "some/where/else"
	copy(b[ondisk.SymlinkHdrSize:], target)
	h := &ondisk.SymlinkHeader{Magic: ondisk.SymlinkMagic, Offset: 0, Bytes: uint32(len(target)), UUID: uuid, Owner: 4242, Blkno: 96, LSN: 0x100000002}
	h.Encode(b, true)
	got, piece, err := ondisk.VerifySymlinkBlock(b, uuid, 96, 4242, "test")
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h || string(piece) != target {
		t.Fatalf("decoded %+v %q", got, piece)
	}
	bad := map[string]func(b []byte, h *ondisk.SymlinkHeader){
		"crc":    func(b []byte, h *ondisk.SymlinkHeader) { b[500] ^= 1 },
		"magic":  func(b []byte, h *ondisk.SymlinkHeader) { h.Magic++; h.Encode(b, true) },
		"owner":  func(b []byte, h *ondisk.SymlinkHeader) { h.Owner++; h.Encode(b, true) },
		"blkno":  func(b []byte, h *ondisk.SymlinkHeader) { h.Blkno++; h.Encode(b, true) },
		"uuid":   func(b []byte, h *ondisk.SymlinkHeader) { h.UUID[3]++; h.Encode(b, true) },
		"length": func(b []byte, h *ondisk.SymlinkHeader) { h.Offset, h.Bytes = 900, 124; h.Encode(b, true) },
		"space":  func(b []byte, h *ondisk.SymlinkHeader) { h.Bytes = 980; h.Encode(b, true) },
	}
	for name, mut := range bad {
		c := append([]byte(nil), b...)
		hc := *h
		mut(c, &hc)
		_, _, err := ondisk.VerifySymlinkBlock(c, uuid, 96, 4242, "test")
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.Field != name && !(name == "length" || name == "space") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if n := ondisk.SymlinkBlocks(1024, 1023); n != 2 {
		t.Errorf("1023 bytes on 1 KiB blocks need %d blocks, want 2", n)
	}
	if n := ondisk.SymlinkBlocks(4096, 1023); n != 1 {
		t.Errorf("1023 bytes on 4 KiB blocks need %d blocks, want 1", n)
	}
}
