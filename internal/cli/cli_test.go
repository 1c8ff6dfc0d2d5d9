package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

// TestProfileFlag: --cpuprofile writes a profile that ends when the
// command does, and the command's own pre-run hook still runs.
func TestProfileFlag(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cpu.prof")
	ran, preRan := false, false
	cmd := &cobra.Command{Use: "x",
		PersistentPreRunE: func(*cobra.Command, []string) error { preRan = true; return nil },
		RunE:              func(*cobra.Command, []string) error { ran = true; return nil }}
	stop := profile(cmd)
	cmd.SetArgs([]string{"--cpuprofile", out})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	stop()
	fi, err := os.Stat(out)
	if err != nil || fi.Size() == 0 || !ran || !preRan {
		t.Fatalf("profile %v %v, ran %v, pre-run %v", fi, err, ran, preRan)
	}
	if f := cmd.PersistentFlags().Lookup("cpuprofile"); f == nil || !f.Hidden {
		t.Error("--cpuprofile should exist and be hidden")
	}
}
