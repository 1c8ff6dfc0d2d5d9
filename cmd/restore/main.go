// Command restore is xfskit's restore (installed as xfskit-restore).
package main

import (
	"github.com/spf13/cobra"

	"xfskit/internal/cli"
)

func main() {
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "xfskit restore (not implemented yet)",
		RunE:  cli.NotYet("restore"),
	}
	cli.Main(cmd, 3)
}
