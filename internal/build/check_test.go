package build

import (
	"strings"
	"testing"

	"xfskit/internal/check"
)

// TestCheckAcceptsOurImages runs xfskit's own checker over formats with a
// spread of options.
func TestCheckAcceptsOurImages(t *testing.T) {
	const M, G = 1 << 20, 1 << 30
	for _, c := range []geometryCase{
		{1 * G, nil},
		{64 * M, []string{"-b", "size=1024", "-m", "rmapbt=1"}},
		{1 * G, []string{"-b", "size=65536", "-i", "size=2048"}},
		{700 * M, []string{"-d", "su=64k,sw=4", "-m", "finobt=0,inobtcount=0,reflink=0"}},
		{200 * M, []string{"-d", "agcount=1", "-i", "nrext64=1"}},
		{726459904, []string{"-d", "agcount=35", "-d", "sunit=64,swidth=256", "-l", "su=256k"}},
	} {
		t.Run(strings.ReplaceAll(c.String(), " ", "_"), func(t *testing.T) {
			img, _ := makeOurs(t, c.size, c.args...)
			r, err := check.Run(img, check.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Clean() || r.DirtyLog {
				var b strings.Builder
				r.WriteText(&b)
				t.Errorf("check finds problems (dirty log %v):\n%s", r.DirtyLog, b.String())
			}
		})
	}
}
