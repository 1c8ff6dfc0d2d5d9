// Command growfs is xfskit's growfs (installed as xfskit-growfs).
package main

import (
	"github.com/spf13/cobra"

	"xfskit/internal/cli"
)

func main() {
	cmd := &cobra.Command{
		Use:   "growfs",
		Short: "xfskit growfs (not implemented yet)",
		RunE:  cli.NotYet("growfs"),
	}
	cli.Main(cmd, 3)
}
