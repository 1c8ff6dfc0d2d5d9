// Command restore is xfskit's restore (installed as xfskit-restore): it
// restores dump streams made by xfskit's dump into a directory.
// Exit status: 0 everything restored, 1 something was not restored (or the
// restore could not run), 3 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"xfskit/internal/cli"
	"xfskit/internal/restore"
)

func main() {
	var opts restore.Options
	var noOwner, sameOwner, asJSON, quiet, noProgress bool
	var owner, group string
	cmd := &cobra.Command{
		Use:   "restore [options] -f SRC... DEST",
		Short: "Restore xfskit dump streams into a directory",
		Long: `restore recreates what xfskit's dump saved, in DEST (a directory on any
filesystem). Give every stream of the session with -f (media files of a
split stream in any order; NAME stands for NAME.000, NAME.001, … when NAME
itself does not exist). Streams are read in parallel.

  -t           list the contents instead (paths; --json for details)
  -s PATH      restore only PATH (a file or a subtree); repeatable
  -r           cumulative restore: apply a level 0 session, then each
               incremental one in turn (several sessions may be given at
               once); deletions and renames are applied, and the state is
               kept in DEST/.xfskit-restore (or --state DIR) for the next one
  -R           resume an interrupted restore

Owners are restored when running as root (--no-owner to skip, --same-owner
to try anyway, --owner/--group to force). Times keep nanoseconds, symlinks
get their own times, and every xattr namespace is restored; whatever the
destination refuses is reported.

Exit status: 0 everything restored, 1 something was not restored (listed on
stderr) or the restore could not run, 3 usage error.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.TOC {
				if len(args) > 0 {
					return cli.Usagef("-t takes no destination")
				}
				return nil
			}
			if len(args) != 1 {
				return cli.Usagef("expected one destination directory, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(opts.Sources) == 0 {
				return cli.Usagef("no source given: use -f SRC (one per stream)")
			}
			if len(args) == 1 {
				opts.Dest = args[0]
			}
			if noOwner && (sameOwner || owner != "" || group != "") {
				return cli.Usagef("--no-owner cannot be combined with --same-owner, --owner or --group")
			}
			switch {
			case noOwner:
				opts.Owner = restore.OwnerNone
			case sameOwner:
				opts.Owner = restore.OwnerKeep
			}
			if owner != "" {
				id, err := lookupID(owner, true)
				if err != nil {
					return cli.Usagef("--owner: %v", err)
				}
				opts.ForceUID = &id
			}
			if group != "" {
				id, err := lookupID(group, false)
				if err != nil {
					return cli.Usagef("--group: %v", err)
				}
				opts.ForceGID = &id
			}
			opts.JSON = asJSON
			if !noProgress && !quiet && !asJSON && !opts.TOC {
				opts.Progress = restore.TerminalProgress()
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := restore.Restore(ctx, opts)
			if errors.Is(err, restore.ErrUsage) {
				return &cli.UsageError{Err: err}
			}
			if asJSON && !opts.TOC && res != nil {
				out := struct {
					*restore.Result
					OK    bool   `json:"ok"`
					Error string `json:"error,omitempty"`
				}{Result: res, OK: err == nil && res.OK()}
				if err != nil {
					out.Error = err.Error()
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				enc.Encode(out)
			}
			if res != nil && !asJSON {
				report(res, quiet, opts.TOC)
			}
			if err != nil {
				if errors.Is(err, restore.ErrInterrupted) {
					err = fmt.Errorf("%w: continue with -R", err)
				}
				return &cli.ExitError{Code: 1, Err: err}
			}
			if !res.OK() {
				return &cli.ExitError{Code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Sources, "file", "f", nil, "stream or media file to read (repeatable; - for stdin)")
	f.StringArrayVarP(&opts.Subtrees, "subtree", "s", nil, "restore only this path (relative to the dumped root; repeatable)")
	f.IntVarP(&opts.BlockSize, "block-size", "b", 0, "read size for tapes and other character devices (a multiple of the record size; default 1 MiB)")
	f.BoolVarP(&opts.TOC, "toc", "t", false, "list the contents instead of restoring")
	f.BoolVarP(&opts.Cumulative, "cumulative", "r", false, "cumulative restore of a level 0 session and its incrementals")
	f.BoolVarP(&opts.Resume, "resume", "R", false, "resume an interrupted restore")
	f.StringVar(&opts.StateDir, "state", "", "housekeeping state directory (default DEST/.xfskit-restore)")
	f.BoolVar(&noOwner, "no-owner", false, "do not restore owners")
	f.BoolVar(&sameOwner, "same-owner", false, "restore owners even when not running as root")
	f.BoolVar(&opts.NoXFlags, "no-xflags", false, "do not restore XFS inode flags (immutable, append-only, ...), project ids and extent size hints")
	f.StringVar(&owner, "owner", "", "give everything this owner (name or number)")
	f.StringVar(&group, "group", "", "give everything this group (name or number)")
	f.BoolVar(&asJSON, "json", false, "print the result (or the table of contents) as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "print problems only, no summary")
	f.BoolVar(&noProgress, "no-progress", false, "no progress display")
	cli.Main(cmd, cli.ExitUsage)
}

func lookupID(s string, isUser bool) (uint32, error) {
	s = strings.TrimPrefix(s, "+")
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	var id string
	if isUser {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return uint32(n), err
}

// report prints what was not restored (always) and a summary (unless quiet).
func report(res *restore.Result, quiet, toc bool) {
	for _, d := range res.Damage {
		fmt.Fprintf(os.Stderr, "restore: damaged stream: %s\n", d)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(os.Stderr, "restore: %s\n", p)
	}
	if quiet || toc {
		if !res.OK() {
			fmt.Fprintf(os.Stderr, "restore: %d problem(s), %d damaged region(s)\n", len(res.Problems), len(res.Damage))
		}
		return
	}
	for _, s := range res.Sessions {
		note := ""
		if s.Note != "" {
			note = " (" + s.Note + ")"
		}
		fmt.Fprintf(os.Stderr, "restore: session %s level %d, %d of %d stream(s)%s\n", s.ID, s.Level, s.Streams, s.Of, note)
	}
	fmt.Fprintf(os.Stderr, "restore: %d directories, %d files (%d bytes), %d hard links", res.Dirs, res.Files, res.Bytes, res.Links)
	if res.Resumed > 0 {
		fmt.Fprintf(os.Stderr, ", %d already complete", res.Resumed)
	}
	if res.Moved > 0 || res.Removed > 0 {
		fmt.Fprintf(os.Stderr, ", %d moved, %d removed", res.Moved, res.Removed)
	}
	fmt.Fprintln(os.Stderr)
	if !res.OK() {
		fmt.Fprintf(os.Stderr, "restore: NOT everything was restored: %d problem(s), %d damaged region(s)\n", len(res.Problems), len(res.Damage))
		if res.State != "" {
			fmt.Fprintln(os.Stderr, "restore: a session applied with problems can be applied again (restore -r with an intact copy of its streams) while it is the last one applied")
		}
	}
}
