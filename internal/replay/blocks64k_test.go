package replay

import (
	"testing"

	"xfskit/internal/oracle"
)

// TestReplay64KBlocks: with 64 KiB blocks a block holds more than 64
// inodes, so the kernel allocates (and logs in its icreate items) a whole
// block of them at once: 128 of 512 bytes. Replay refused such logs as
// not matching the filesystem, so check, check --replay and dump failed on
// every crashed 64 KiB-block image that had created files.
func TestReplay64KBlocks(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools, oracle.Attr)
	img := oracle.Mkfs(t, "300m", "-b", "size=65536")
	mnt := oracle.Mount(t, img, false)
	workload(t, mnt, "a")
	crash(t, mnt)
	if res := replayAndCompare(t, img); res.ICreates == 0 {
		t.Fatalf("no inode chunk replayed: %+v", *res)
	}
}
