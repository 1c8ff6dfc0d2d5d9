// Command estimate is xfskit's estimate (installed as xfskit-estimate).
package main

import (
	"github.com/spf13/cobra"

	"xfskit/internal/cli"
)

func main() {
	cmd := &cobra.Command{
		Use:   "estimate",
		Short: "xfskit estimate (not implemented yet)",
		RunE:  cli.NotYet("estimate"),
	}
	cli.Main(cmd, 3)
}
