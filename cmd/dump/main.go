// Command dump is xfskit's dump (installed as xfskit-dump).
package main

import (
	"github.com/spf13/cobra"

	"xfskit/internal/cli"
)

func main() {
	cmd := &cobra.Command{
		Use:   "dump",
		Short: "xfskit dump (not implemented yet)",
		RunE:  cli.NotYet("dump"),
	}
	cli.Main(cmd, 3)
}
