package dump

import (
	"context"
	"os"
	"testing"
)

func TestProfBench(t *testing.T) {
	img := os.Getenv("PROF_IMG")
	if img == "" {
		t.Skip()
	}
	r, err := Dump(context.Background(), Options{Image: img, Dests: []string{"/var/tmp/db1/prof.out"}, Inventory: "/var/tmp/db1/prof.db", Compression: os.Getenv("PROF_Z")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files %d bytes", r.Files, r.Bytes)
}
