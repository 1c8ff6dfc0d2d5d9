package dump

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"xfskit/internal/oracle"
)

// BenchmarkDump times whole dumps (scan, directories, file data, stream
// written to a file and fsynced) of the kernel-made corpus image, or of
// the image named by XFSKIT_BENCH_IMAGE (e.g. the one bench/make-image.sh
// builds: go test -run '^$' -bench Dump -benchtime 3x ./internal/dump).
// MB/s counts file data.
func BenchmarkDump(b *testing.B) {
	img := os.Getenv("XFSKIT_BENCH_IMAGE")
	if img == "" {
		img = oracle.Corpus(b, oracle.CorpusOptions{})
	}
	for _, comp := range []string{"none", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			dir := b.TempDir()
			inv := filepath.Join(dir, "inv.db")
			var data, out int64
			for b.Loop() {
				dst := filepath.Join(dir, "stream")
				os.Remove(dst)
				r, err := Dump(context.Background(), Options{Image: img, Dests: []string{dst}, Inventory: inv, Compression: comp})
				if err != nil {
					b.Fatal(err)
				}
				data, out = r.DataBytes, r.Bytes
			}
			b.SetBytes(data)
			b.ReportMetric(float64(out)/float64(max(data, 1)), "out/data")
		})
	}
}
