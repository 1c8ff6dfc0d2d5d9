package build

import (
	"os"
	"syscall"
)

func statBlocks(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Blocks
	}
	return 0
}
