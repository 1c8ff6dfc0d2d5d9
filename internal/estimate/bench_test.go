package estimate

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// benchTree makes a source-like tree: 400 directories two levels deep,
// 12,000 files of 0 to 20 KiB (a few sparse), symlinks, hard links and a
// few attributes.
func benchTree(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	for d := 0; d < 400; d++ {
		sub := filepath.Join(dir, fmt.Sprintf("pkg%02d", d/20), fmt.Sprintf("sub-%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 30; f++ {
			i := d*30 + f
			p := filepath.Join(sub, fmt.Sprintf("file_%d_%s.go", f, "name"[:i%5]))
			size := (i * 7919) % 20000
			if err := os.WriteFile(p, pattern(i, size), 0o644); err != nil {
				b.Fatal(err)
			}
			switch {
			case i%97 == 0:
				if err := os.Truncate(p, 1<<24); err != nil { // sparse tail
					b.Fatal(err)
				}
			case i%53 == 0:
				if err := os.Symlink("../"+filepath.Base(p), p+".lnk"); err != nil {
					b.Fatal(err)
				}
			case i%71 == 0:
				if err := os.Link(p, p+".hard"); err != nil {
					b.Fatal(err)
				}
			case i%89 == 0:
				// Best effort: the temporary directory may not take them.
				unix.Setxattr(p, "user.bench", pattern(i, 40), 0)
			}
		}
	}
	return dir
}

// BenchmarkEstimate times a whole estimate (scan and sizing runs) of a
// 12,400-entry tree with the default geometry.
func BenchmarkEstimate(b *testing.B) {
	dir := benchTree(b)
	var r *Result
	for b.Loop() {
		var err error
		if r, err = Estimate(Options{}, dir); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.Trials), "runs/op")
}
