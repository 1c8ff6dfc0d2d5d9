package build

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzPlan feeds arbitrary option strings and target sizes through
// parsing, planning, layout and the report: none of them may panic, and
// an accepted plan must be self-consistent.
func FuzzPlan(f *testing.F) {
	f.Add("d", "agcount=4,size=1g", int64(0), false)
	f.Add("b", "size=1k", int64(64<<20), false)
	f.Add("d", "su=64k,sw=4", int64(2<<30), true)
	f.Add("l", "size=20m,agnum=0", int64(300<<20), false)
	f.Add("i", "perblock=256", int64(100<<20), false)
	f.Add("m", "rmapbt=1,reflink=0,uuid=11111111-2222-3333-4444-555555555555", int64(1<<40), true)
	f.Add("s", "size=4096", int64(1<<33), false)
	f.Fuzz(func(t *testing.T, class, arg string, size int64, block bool) {
		o := NewOptions()
		o.UUID[0] = 1 // no random UUIDs while fuzzing
		for i, c := range strings.Split(class, "") {
			if i > 3 || c == "" {
				break
			}
			if err := o.ParseSubopts(c[0], arg); err != nil {
				return
			}
		}
		ti := TargetInfo{Path: "/fuzz", Exists: size > 0, IsBlock: block && size > 0, Size: size & (1<<50 - 1)}
		g, err := Plan(o, ti)
		if err != nil {
			return
		}
		if g.DBlocks == 0 || g.AGCount == 0 || uint64(g.AGCount-1)*uint64(g.AGBlocks) >= g.DBlocks {
			t.Fatalf("inconsistent geometry: %d blocks, %d AGs of %d", g.DBlocks, g.AGCount, g.AGBlocks)
		}
		// mkfs.xfs makes 64 KiB-block filesystems with spino_align 0, which
		// the kernel mounts; tolerate the verifier's objection to that.
		if err := g.SB.Verify(nil, "plan"); err != nil && !(g.SB.SpinoAlign == 0 && strings.Contains(err.Error(), "spino_align")) {
			t.Fatalf("planned superblock fails verification: %v", err)
		}
		var b bytes.Buffer
		g.Report(&b, ti.Path)
		if g.AGCount <= 64 {
			if _, err := g.layout(); err != nil {
				t.Logf("layout: %v", err)
			}
		}
	})
}
