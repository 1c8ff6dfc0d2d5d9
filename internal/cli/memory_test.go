package cli

import (
	"math"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTradeMemory: the collector percent is raised and the heap bounded by
// a quarter of the machine's memory, unless GOGC/GOMEMLIMIT say otherwise.
func TestTradeMemory(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	TradeMemory(400)
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent %d, want 400", got)
	}
	if got, want := debug.SetMemoryLimit(math.MaxInt64), int64(uint64(si.Totalram)*uint64(si.Unit)/4); got != want {
		t.Errorf("memory limit %d, want %d", got, want)
	}
	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	TradeMemory(400)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent %d, want it left at 100", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set: memory limit %d, want it left alone", got)
	}
}
