// Command check verifies an XFS image offline, like `xfs_repair -n`
// (installed as xfskit-check). Exit status: 0 clean, 1 corruption found,
// 2 dirty log (needs replay), 3 usage error, 4 I/O error or unfinished edit.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"xfskit/internal/check"
	"xfskit/internal/cli"
	"xfskit/internal/replay"
	"xfskit/ondisk"
)

func main() {
	var asJSON, quiet, noProgress, doReplay, doPrintLog bool
	cmd := &cobra.Command{
		Use:   "check [options] IMAGE",
		Short: "Verify all metadata of an unmounted XFS image or device (read-only)",
		Long: `check reads an XFS v5 image or unmounted block device and verifies every
piece of metadata, the way 'xfs_repair -n' does, without root or a mount.

A dirty log (a filesystem that was not cleanly unmounted) is replayed in
memory, writing nothing, and the filesystem is checked as the replay
leaves it; the exit status stays 2 unless that finds problems. With
--replay, a dirty log is first replayed into the image offline (through an
undo journal, so a crash leaves the old image or the replayed one), then
the image is checked. With --print-log, check only prints the log: its
place and state and every transaction a replay would apply, item by item
(xfs_logprint -t's view; --json for scripts).

Exit status: 0 clean, 1 corruption found (or a damaged log), 2 the log is
dirty (use --replay, or mount the filesystem to replay it), 3 usage error, 4 the image could not be read (I/O
error, a read-write mount, or an interrupted xfskit edit left
IMAGE.xfskit-undo: run that command again, which rolls the edit back first).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The checker keeps metadata, not data: trading some memory for
			// fewer collections is worth a good share of the run time.
			cli.TradeMemory(400)
			if doPrintLog {
				if doReplay {
					return cli.Usagef("--print-log and --replay do not go together")
				}
				return printLog(args[0], asJSON)
			}
			if doReplay {
				if code, err := runReplay(args[0], quiet || asJSON); err != nil {
					return &cli.ExitError{Code: code, Err: err}
				}
			}
			opts := check.Options{}
			if !noProgress && !quiet && !asJSON {
				opts.Progress = check.TerminalProgress()
			}
			r, err := check.Run(args[0], opts)
			if err != nil && !errors.Is(err, check.ErrNotXFS) {
				return &cli.ExitError{Code: cli.ExitIOError, Err: err}
			}
			if err == nil && r.DirtyLog && r.Clean() {
				rr, why, err := checkRecovered(args[0], opts)
				if err != nil {
					return &cli.ExitError{Code: cli.ExitIOError, Err: err}
				}
				if rr != nil {
					r = rr
				}
				r.NotReplayed = why
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
	cmd.Flags().BoolVar(&doReplay, "replay", false, "replay a dirty log into the image (offline, atomic) before checking")
	cmd.Flags().BoolVar(&doPrintLog, "print-log", false, "print the log's transactions between tail and head, like xfs_logprint -t (nothing is checked or written)")
	cli.Main(cmd, cli.ExitUsage)
}

func summarize(img string, r *check.Report) {
	s := r.Stats
	const replayHint = "run check --replay to replay it into the image offline (or mount the filesystem once)"
	switch {
	case r.DirtyLog && r.Replayed != nil && !r.Clean():
		fmt.Fprintf(os.Stderr, "%s: the log is dirty (%s); as its replay (done in memory, nothing written) would leave it, the filesystem has %d problem(s)\n", img, r.LogInfo, r.Total())
	case !r.Clean():
		fmt.Fprintf(os.Stderr, "%s: %d problem(s) found\n", img, r.Total())
	case r.DirtyLog && r.Replayed != nil:
		fmt.Fprintf(os.Stderr, "%s: the log is dirty (%s); as its replay (done in memory, nothing written) would leave it, the filesystem is clean (%d AGs, %d inodes, %d directories, %d files): %s\n",
			img, r.LogInfo, s.AGs, s.Inodes, s.Directories, s.Files, replayHint)
	case r.DirtyLog:
		why := r.NotReplayed
		if why != "" {
			why = "; " + why
		}
		fmt.Fprintf(os.Stderr, "%s: the log is dirty (%s)%s; %s, then check again\n", img, r.LogInfo, why, replayHint)
	default:
		fmt.Fprintf(os.Stderr, "%s: clean (%d AGs, %d inodes, %d directories, %d files)\n", img, s.AGs, s.Inodes, s.Directories, s.Files)
	}
}

// runReplay replays the log before the check. A refused log stays dirty
// (exit 2), a damaged one is corruption (exit 1).
func runReplay(img string, quiet bool) (int, error) {
	res, err := replay.Run(img)
	var ce *ondisk.CorruptError
	switch {
	case errors.Is(err, replay.ErrUnsupported):
		return cli.ExitDirtyLog, err
	case errors.As(err, &ce):
		return cli.ExitCorrupt, err
	case err != nil:
		return cli.ExitIOError, err
	}
	if !quiet && !res.WasClean {
		fmt.Fprintf(os.Stderr, "%s: log replayed: %d transactions (%d buffers, %d inodes, %d inode chunks; %d cancelled, %d already on disk), %d uncommitted dropped\n",
			img, res.Transactions, res.Buffers, res.Inodes, res.ICreates, res.Cancelled, res.BufSkipped+res.InodeSkipped, res.Uncommitted)
		if res.Torn != "" {
			fmt.Fprintf(os.Stderr, "%s: the last log write was torn by the crash and dropped, as the kernel does: %s\n", img, res.Torn)
		}
	}
	return 0, nil
}
