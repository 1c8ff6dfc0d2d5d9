package cli

import (
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// TradeMemory lets the collector run only when the heap has grown by
// percent (tools that keep metadata, not data, gain a good share of their
// run time), but no later than when it nears a quarter of the machine's
// memory: the heap of a huge tree or image stays bounded. GOGC and
// GOMEMLIMIT, when set, take precedence.
func TradeMemory(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil && si.Totalram > 0 {
		debug.SetMemoryLimit(int64(uint64(si.Totalram) * uint64(si.Unit) / 4))
	}
}
