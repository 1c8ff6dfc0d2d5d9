// Command dump is xfskit's dump (installed as xfskit-dump): it backs up an
// unmounted XFS image or device into dump streams, with xfsdump's option
// letters. Exit status: 0 success, 1 error or inodes that could not be
// dumped, 2 a dirty log that cannot be replayed in memory, 3 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"xfskit/internal/cli"
	"xfskit/internal/dump"
)

func main() {
	var (
		o                        dump.Options
		list, asJSON, quiet      bool
		prune, dryRun            bool
		noProgress               bool
		mediaSize, blockSize     string
		chunkSize                string
		fsUUID, since, until, st string
	)
	cmd := &cobra.Command{
		Use:   "dump [options] -f DEST IMAGE\n  dump -R [options] IMAGE\n  dump -I [filters] [IMAGE]\n  dump --prune [filters] [IMAGE]",
		Short: "Back up an unmounted XFS filesystem image or device into dump streams",
		Long: `dump reads an XFS v5 image or unmounted block device directly (read-only; no
mount, no root needed) and writes a dump stream per -f destination.

Levels: -l 0 dumps everything; -l N (1-9) dumps the files changed (ctime or
mtime) since the most recent complete dump of the same filesystem and subtree
selection at a lower level, found in the inventory. Every dump records the
whole directory structure, so restore can apply deletions and renames.

Destinations: a file, '-' for stdout, or a character device (fixed-size
records). Several -f write several streams concurrently, the files split
between them by inode ranges of about equal size. --media-size splits each
stream into media files DEST.000, DEST.001, ...

An image whose log is dirty (not cleanly unmounted) is dumped as the
kernel's recovery would leave it: the log is replayed in memory and the
image is never written. Logs that cannot be replayed in memory are refused
(exit 2: mount and unmount the filesystem once). An image mounted
read-write is refused.

Inventory: -I lists the recorded sessions; --prune deletes the sessions
matching the same filters (what xfsinvutil does; e.g. --prune --until
2026-01-01), keeping sessions in progress unless --status in-progress is
given, and prints what it deleted (--dry-run: what it would delete). Dump
streams themselves are not touched.

Exit status: 0 success, 1 error (or some inodes could not be dumped),
2 dirty log that cannot be replayed in memory, 3 usage error.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list || prune {
				return cobra.MaximumNArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if list && prune {
				return cli.Usagef("-I and --prune cannot be combined")
			}
			if dryRun && !prune {
				return cli.Usagef("--dry-run goes with --prune")
			}
			if list || prune {
				lo := dump.ListOptions{Inventory: o.Inventory, FSUUID: fsUUID, Status: st, JSON: asJSON}
				if len(args) == 1 {
					lo.Image = args[0]
				}
				if cmd.Flags().Changed("level") {
					lo.Level = &o.Level
				}
				var err error
				if lo.Since, err = parseTime(since); err != nil {
					return cli.Usagef("--since: %v", err)
				}
				if lo.Until, err = parseTime(until); err != nil {
					return cli.Usagef("--until: %v", err)
				}
				if prune {
					return exitFor(dump.Prune(os.Stdout, lo, dryRun))
				}
				return exitFor(dump.List(os.Stdout, lo))
			}
			o.Image = args[0]
			var err error
			if o.MediaSize, err = parseSize(mediaSize); err != nil {
				return cli.Usagef("--media-size: %v", err)
			}
			bs, err := parseSize(blockSize)
			if err != nil {
				return cli.Usagef("--block-size: %v", err)
			}
			cs, err := parseSize(chunkSize)
			if err != nil {
				return cli.Usagef("--chunk-size: %v", err)
			}
			o.BlockSize, o.ChunkSize = int(bs), int(cs)
			if !o.Resume && len(o.Dests) == 0 {
				return cli.Usagef("no destination: give -f FILE (or -f - for stdout)")
			}
			toStdout := false
			for _, d := range o.Dests {
				toStdout = toStdout || d == "-"
			}
			if asJSON && toStdout {
				return cli.Usagef("--json prints to stdout, which -f - already uses")
			}
			if !noProgress && !quiet {
				o.Progress = dump.TerminalProgress()
			}
			// A closed pipe on -f - (dump -f - IMG | head) fails the write
			// like any other, so the session is recorded as interrupted;
			// the default SIGPIPE would kill dump mid-session.
			signal.Ignore(syscall.SIGPIPE)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			start := time.Now()
			res, err := dump.Dump(ctx, o)
			if res != nil {
				report(res, err, asJSON, quiet, time.Since(start))
			}
			if err != nil {
				return exitFor(err)
			}
			if len(res.Problems) > 0 {
				return cli.Exitf(cli.ExitGenericErr, "session %s is complete, but %d problem(s) left inodes out of it", res.SessionID, len(res.Problems))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.IntVarP(&o.Level, "level", "l", 0, "dump level 0-9 (0: everything; N: changes since the last dump below level N)")
	f.StringArrayVarP(&o.Subtrees, "subtree", "s", nil, "dump only this path (relative to the filesystem root); repeatable")
	f.StringArrayVarP(&o.Dests, "file", "f", nil, "destination: file, '-' (stdout) or character device; repeat for several streams")
	f.StringVarP(&o.SessionLabel, "session-label", "L", "", "session label")
	f.StringArrayVarP(&o.MediaLabels, "media-label", "M", nil, "media label (one, or one per -f)")
	f.StringVarP(&o.Compression, "compress", "z", "zstd", "compression: zstd, xz or none")
	f.StringVar(&mediaSize, "media-size", "", "split each stream into media files of at most this size (e.g. 4g)")
	f.StringVar(&blockSize, "block-size", "", "fixed record size for character devices (default 256k)")
	f.StringVar(&chunkSize, "chunk-size", "", "compression chunk size (64k-8m, default 1m)")
	f.BoolVarP(&o.Resume, "resume", "R", false, "resume the most recent interrupted dump session of IMAGE")
	f.BoolVarP(&list, "inventory-list", "I", false, "list the dump sessions in the inventory (filters: -l, --fs-uuid, --since, --until, --status, IMAGE)")
	f.BoolVar(&prune, "prune", false, "delete the sessions matching the -I filters from the inventory (needs a filter)")
	f.BoolVar(&dryRun, "dry-run", false, "with --prune: print what would be deleted, delete nothing")
	f.StringVar(&o.Inventory, "inventory", "", "inventory database (default /var/lib/xfskit/inventory.db as root, else under $XDG_DATA_HOME)")
	f.StringVar(&fsUUID, "fs-uuid", "", "with -I/--prune: only this filesystem")
	f.StringVar(&since, "since", "", "with -I/--prune: sessions started at or after this time (RFC 3339 or YYYY-MM-DD)")
	f.StringVar(&until, "until", "", "with -I/--prune: sessions started before this time")
	f.StringVar(&st, "status", "", "with -I/--prune: complete, interrupted or in-progress")
	f.BoolVar(&asJSON, "json", false, "print the result (or the -I listing) as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "no summary, no progress")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bars")
	cli.Main(cmd, cli.ExitUsage)
}

// exitFor maps dump's errors to exit statuses.
func exitFor(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dump.ErrUsage):
		return cli.Usagef("%v", err)
	case errors.Is(err, dump.ErrDirtyLog):
		return &cli.ExitError{Code: cli.ExitDirtyLog, Err: err}
	}
	return &cli.ExitError{Code: cli.ExitGenericErr, Err: err}
}

func report(r *dump.Result, err error, asJSON, quiet bool, took time.Duration) {
	if asJSON {
		out := struct {
			*dump.Result
			Error   string  `json:"error,omitempty"`
			Seconds float64 `json:"seconds"`
		}{r, "", took.Seconds()}
		if err != nil {
			out.Error = err.Error()
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(os.Stderr, "dump: note: %s\n", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(os.Stderr, "dump: %s\n", p)
	}
	if quiet || asJSON || err != nil {
		return
	}
	what := "level " + strconv.Itoa(r.Level)
	if r.BaseID != "" {
		what += " (base " + r.BaseID + ")"
	}
	if r.Resumed {
		what += ", resumed"
	}
	fmt.Fprintf(os.Stderr, "dump: session %s %s complete: %d directories, %d of %d files, %s of data, %s written to %d stream(s) in %.1fs\n",
		r.SessionID, what, r.Dirs, r.Files, r.Named, human(r.DataBytes), human(r.Bytes), len(r.Streams), took.Seconds())
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// parseSize reads a byte count with an optional k, m, g or t suffix
// (powers of 1024), as xfsprogs does; "" is 0.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	t := strings.ToLower(strings.TrimSuffix(strings.ToLower(s), "b"))
	if t == "" {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	switch t[len(t)-1] {
	case 'k':
		mult = 1 << 10
	case 'm':
		mult = 1 << 20
	case 'g':
		mult = 1 << 30
	case 't':
		mult = 1 << 40
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

// parseTime reads RFC 3339 or a date (local midnight); "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q (want RFC 3339, YYYY-MM-DD or \"YYYY-MM-DD HH:MM:SS\")", s)
}
