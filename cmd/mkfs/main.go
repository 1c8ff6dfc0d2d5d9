// Command mkfs is xfskit's mkfs (installed as xfskit-mkfs).
package main

import (
	"github.com/spf13/cobra"

	"xfskit/internal/cli"
)

func main() {
	cmd := &cobra.Command{
		Use:   "mkfs",
		Short: "xfskit mkfs (not implemented yet)",
		RunE:  cli.NotYet("mkfs"),
	}
	cli.Main(cmd, 3)
}
