package pack_test

import (
	"strings"
	"testing"

	"xfskit/internal/pack"
	"xfskit/ondisk"
)

// TestDuplicateNames: a directory repeating a name is refused whether its
// entries come in ascending order (mkfs -p's, checked without a set of
// names), in any other order, or differ only in case on a
// case-insensitive filesystem.
func TestDuplicateNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string
		ci    bool
		dup   bool
	}{
		{"ascending", []string{"a", "b", "c"}, false, false},
		{"ascending-repeat", []string{"a", "b", "b", "c"}, false, true},
		{"unordered", []string{"c", "a", "b"}, false, false},
		{"unordered-repeat", []string{"c", "a", "c"}, false, true},
		{"case-only", []string{"A", "B", "a"}, false, false},
		{"case-only-ci", []string{"A", "B", "a"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := fuzzSB(12)
			if tc.ci {
				sb.VersionNum |= ondisk.SBVersionBorg
			}
			space := pack.NewSpace(sb)
			for agno := uint32(0); agno < sb.AGCount; agno++ {
				if err := space.SetFree(agno, []pack.AGExtent{{Bno: 64, Len: sb.AGBlocks - 64}}); err != nil {
					t.Fatal(err)
				}
			}
			p, err := pack.New(sb, space, &nullDisk{size: int64(sb.DBlocks) << 12})
			if err != nil {
				t.Fatal(err)
			}
			ino := sb.AGInoToIno(1, sb.AGBToAGIno(64))
			in := &pack.Inode{Ino: ino, Mode: ondisk.ModeDir | 0o755, NLink: 2, Parent: ino}
			for i, n := range tc.names {
				in.Entries = append(in.Entries, pack.DirEntry{Name: []byte(n), Ino: ino + uint64(i+1), FType: ondisk.DirFTRegFile})
			}
			_, err = p.Pack(in, make([]byte, sb.InodeSize))
			if got := err != nil && strings.Contains(err.Error(), "duplicate directory entry"); got != tc.dup {
				t.Fatalf("names %q (ci %v): %v", tc.names, tc.ci, err)
			}
		})
	}
}
