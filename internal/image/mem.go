package image

import (
	"fmt"
	"io"
)

// Mem is a Device over bytes in memory: tests and fuzzing make a fresh
// copy of an image for every input. Writes go into B, or are refused
// (with an error naming them) when ReadOnly, for code that must not write.
type Mem struct {
	B        []byte
	ReadOnly bool
}

func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.B)) {
		return 0, io.EOF
	}
	n := copy(p, m.B[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	if m.ReadOnly || off < 0 || off+int64(len(p)) > int64(len(m.B)) {
		return 0, fmt.Errorf("mem.img: write of %d bytes at %d refused", len(p), off)
	}
	return copy(m.B[off:], p), nil
}

func (m *Mem) Sync() error  { return nil }
func (m *Mem) Size() int64  { return int64(len(m.B)) }
func (m *Mem) Close() error { return nil }
func (m *Mem) Name() string { return "mem.img" }
