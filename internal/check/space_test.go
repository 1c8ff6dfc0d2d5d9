package check

import (
	"strings"
	"testing"
)

func TestSweepFindsOverlapsLeaksAndShared(t *testing.T) {
	fsb := func(ag, b uint32) uint64 { return uint64(ag)<<20 | uint64(b) }
	var s agSpace
	s.add(use{start: 0, length: 4, kind: ownHeaders})
	s.add(use{start: 4, length: 6, kind: ownFree})
	s.add(use{start: 8, length: 4, kind: ownBnobt}) // overlaps free 8..9
	// 12..13 leaked
	s.add(use{start: 14, length: 4, kind: ownData, ino: 100})
	s.add(use{start: 14, length: 4, kind: ownData, ino: 101})
	s.add(use{start: 15, length: 2, kind: ownData, ino: 102})
	s.add(use{start: 18, length: 2, kind: ownLog})
	r := newReport()
	shared := s.sweep(r, 0, 22, true, fsb) // 20..21 leaked
	var msgs []string
	for _, f := range r.Findings() {
		msgs = append(msgs, f.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"blocks 8..9 claimed by both free space and bnobt", "blocks 12..13 (2) are neither free nor in use", "blocks 20..21 (2) are neither free nor in use"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing finding %q in:\n%s", want, all)
		}
	}
	if r.Total() != 3 {
		t.Errorf("want 3 findings, got %d:\n%s", r.Total(), all)
	}
	want := []sharedRange{{14, 1, 2}, {15, 2, 3}, {17, 1, 2}}
	if len(shared) != len(want) {
		t.Fatalf("shared = %v, want %v", shared, want)
	}
	for i := range want {
		if shared[i] != want[i] {
			t.Errorf("shared[%d] = %v, want %v", i, shared[i], want[i])
		}
	}
	// Without reflink the same data overlap is corruption.
	r2 := newReport()
	s.sweep(r2, 0, 22, false, fsb)
	if r2.Total() <= 3 {
		t.Errorf("data overlap not reported without reflink")
	}
}
