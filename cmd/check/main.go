// Command check verifies an XFS image offline, like `xfs_repair -n`
// (installed as xfskit-check). Exit status: 0 clean, 1 corruption found,
// 2 dirty log (needs replay), 3 usage error, 4 I/O error or unfinished edit.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"xfskit/internal/check"
	"xfskit/internal/cli"
)

func main() {
	var asJSON, quiet, noProgress bool
	cmd := &cobra.Command{
		Use:   "check [options] IMAGE",
		Short: "Verify all metadata of an unmounted XFS image or device (read-only)",
		Long: `check reads an XFS v5 image or unmounted block device and verifies every
piece of metadata, the way 'xfs_repair -n' does, without root or a mount.

Exit status: 0 clean, 1 corruption found, 2 the log is dirty (mount the
filesystem to replay it), 3 usage error, 4 the image could not be read (I/O
error, a read-write mount, or an interrupted xfskit edit left
IMAGE.xfskit-undo: run that command again, which rolls the edit back first).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The checker keeps metadata, not data: trading some memory for
			// fewer collections is worth a good share of the run time.
			debug.SetGCPercent(400)
			opts := check.Options{}
			if !noProgress && !quiet && !asJSON {
				opts.Progress = check.TerminalProgress()
			}
			r, err := check.Run(args[0], opts)
			if err != nil && !errors.Is(err, check.ErrNotXFS) {
				return &cli.ExitError{Code: cli.ExitIOError, Err: err}
			}
			if asJSON {
				r.WriteJSON(os.Stdout)
			} else {
				r.WriteText(os.Stdout)
				if !quiet {
					summarize(args[0], r)
				}
			}
			switch {
			case !r.Clean():
				return &cli.ExitError{Code: cli.ExitCorrupt}
			case r.DirtyLog:
				return &cli.ExitError{Code: cli.ExitDirtyLog}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print findings as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print findings only, no summary")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no progress display")
	cli.Main(cmd, cli.ExitUsage)
}

func summarize(img string, r *check.Report) {
	s := r.Stats
	switch {
	case !r.Clean():
		fmt.Fprintf(os.Stderr, "%s: %d problem(s) found\n", img, r.Total())
	case r.DirtyLog:
		fmt.Fprintf(os.Stderr, "%s: the log is dirty (%s); mount the filesystem to replay it, then check again\n", img, r.LogInfo)
	default:
		fmt.Fprintf(os.Stderr, "%s: clean (%d AGs, %d inodes, %d directories, %d files)\n", img, s.AGs, s.Inodes, s.Directories, s.Files)
	}
}
