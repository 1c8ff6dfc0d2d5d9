// Command growfs grows an unmounted XFS v5 filesystem in an image file or
// on a block device, offline and atomically, with xfs_growfs's options
// (installed as xfskit-growfs). Exit status: 0 success, 1 error or
// refusal, 2 dirty log, 3 usage.
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

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"xfskit/internal/build"
	"xfskit/internal/cli"
	"xfskit/internal/grow"
)

const longHelp = `growfs grows the XFS v5 filesystem in TARGET, an image file or block device
that is not mounted, the way xfs_growfs grows a mounted one: the last
allocation group is extended up to the AG size and new AGs are added after
it. It needs no root, no loop device and no mount.

With no option, or with -d, the data section grows to the size of TARGET.
An image file is made larger first with --size SIZE (or truncate -s);
block devices cannot be extended. -D N grows to N filesystem blocks, or,
with a suffix, to a size in bytes: -D 8g (k, m, g, t, p powers of 1024;
b filesystem blocks). A remainder too short for an AG (64 blocks) is left
unused, as the kernel does. Shrinking is refused.

Changes are atomic: the old contents of every block overwritten are saved
in TARGET.xfskit-undo first, so a crash leaves the filesystem as it was or
fully grown (the next xfskit run on TARGET rolls an interrupted grow back,
also cutting an extended file back). --atomic=no writes in place.

A dirty log (not cleanly unmounted) is replayed first, as mounting would,
in the same atomic edit (-n: in memory).

Refused: a mounted filesystem, a dirty log that cannot be replayed offline
(mount and unmount it once), damaged superblocks or free space trees, filesystems
with an external log or realtime section, and log or realtime changes
(-l, -L, -r, -R, -e, -i, -x).

Exit status: 0 success, 1 error or refusal, 2 dirty log that cannot be
replayed offline, 3 usage.`

func main() {
	var (
		o        = grow.Options{IMaxPct: -1}
		dsize    string
		size     string
		maxpct   int
		asJSON   bool
		atomic   string
		quiet    bool
		log, rt  bool
		logSize  string
		rtSize   string
		rtExt    string
		toInt    bool
		toExt    bool
		mtabFile string
	)
	cmd := &cobra.Command{
		Use:   "growfs [options] TARGET",
		Short: "Grow an unmounted XFS v5 filesystem image or device offline, like xfs_growfs",
		Long:  longHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if log || rt || toInt || toExt || f.Changed("log-size") || f.Changed("rt-size") || f.Changed("rt-extsize") {
				return cli.Exitf(cli.ExitGenericErr, "log and realtime changes are not supported: xfskit grows the data section (-d, -D) and sets imaxpct (-m)")
			}
			switch atomic {
			case "yes":
			case "no":
				o.NoAtomic = true
			default:
				return cli.Usagef("--atomic=%s: want yes or no", atomic)
			}
			if f.Changed("data-size") {
				o.Data = true
				if err := parseDataSize(dsize, &o); err != nil {
					return err
				}
			}
			if f.Changed("size") {
				n, ok := build.ParseSize(size, 0, 512)
				if !ok || n <= 0 || strings.HasSuffix(strings.ToLower(size), "b") {
					return cli.Usagef("--size %s: want a byte count with an optional k, m, g, t, p suffix", size)
				}
				o.ExtendTo = n
			}
			if f.Changed("imaxpct") {
				if maxpct < 0 || maxpct > 100 {
					return cli.Usagef("-m %d: imaxpct must be 0 to 100", maxpct)
				}
				o.IMaxPct = maxpct
			}
			// As xfs_growfs: without -d, -D or -m, grow everything we
			// can (the data section).
			if f.Changed("data") || o.ExtendTo > 0 || !f.Changed("imaxpct") {
				o.Data = true
			}
			if !quiet && !asJSON && !o.DryRun && term.IsTerminal(int(os.Stderr.Fd())) {
				var bar *progressbar.ProgressBar
				o.Progress = func(done, total int) {
					if bar == nil {
						bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr),
							progressbar.OptionSetDescription("growfs"), progressbar.OptionShowCount(),
							progressbar.OptionClearOnFinish())
					}
					bar.Set(done)
					if done == total {
						bar.Finish()
					}
				}
			}
			// Ctrl-C stops the grow and rolls it back (the undo journal
			// would otherwise wait for the next run); a signal ignored
			// from the start (nohup) stays ignored.
			var sigs []os.Signal
			for _, sg := range []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP} {
				if !signal.Ignored(sg) {
					sigs = append(sigs, sg)
				}
			}
			if len(sigs) > 0 { // none would mean every signal
				ctx, stop := signal.NotifyContext(context.Background(), sigs...)
				defer stop()
				o.Stop = ctx.Done()
			}
			res, err := grow.Run(args[0], o)
			if err != nil {
				if errors.Is(err, grow.ErrDirtyLog) {
					return &cli.ExitError{Code: cli.ExitDirtyLog, Err: err}
				}
				return &cli.ExitError{Code: cli.ExitGenericErr, Err: err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			for _, n := range res.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), n)
			}
			if quiet {
				return nil
			}
			return res.Report(out, args[0])
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.BoolVarP(&o.Data, "data", "d", false, "grow the data section to the size of TARGET")
	f.StringVarP(&dsize, "data-size", "D", "", "grow the data section to `SIZE` filesystem blocks (or bytes with a k/m/g/t/p suffix)")
	f.StringVar(&size, "size", "", "first extend the image file to `SIZE` bytes (suffixes k, m, g, t, p), then grow into it")
	f.IntVarP(&maxpct, "imaxpct", "m", 0, "set the maximum percentage of space for inodes to `PCT`")
	f.BoolVarP(&o.DryRun, "dry-run", "n", false, "print the geometry and what would change; write nothing")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.StringVar(&atomic, "atomic", "yes", "yes: journal old blocks so a crash leaves the old or the grown filesystem; no: write in place")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors and notes")
	f.BoolVarP(&log, "log", "l", false, "grow the log section (not supported)")
	f.StringVarP(&logSize, "log-size", "L", "", "log size (not supported)")
	f.BoolVarP(&rt, "realtime", "r", false, "grow the realtime section (not supported)")
	f.StringVarP(&rtSize, "rt-size", "R", "", "realtime size (not supported)")
	f.StringVarP(&rtExt, "rt-extsize", "e", "", "realtime extent size (not supported)")
	f.BoolVarP(&toInt, "log-internal", "i", false, "convert the log to internal (not supported)")
	f.BoolVarP(&toExt, "log-external", "x", false, "convert the log to external (not supported)")
	f.StringVarP(&mtabFile, "mtab", "t", "", "ignored (xfs_growfs's mount table; TARGET is not mounted)")
	cli.Main(cmd, cli.ExitUsage)
}

// parseDataSize reads -D: a plain number (or one ending in b) is a count of
// filesystem blocks, as for xfs_growfs; other suffixes give bytes.
func parseDataSize(s string, o *grow.Options) error {
	t := strings.TrimSuffix(strings.TrimSuffix(s, "b"), "B")
	if n, err := strconv.ParseUint(t, 10, 64); err == nil {
		if n == 0 {
			return cli.Usagef("-D %s: size must be positive", s)
		}
		o.Blocks = n
		return nil
	}
	if strings.HasSuffix(strings.ToLower(s), "s") {
		return cli.Usagef("-D %s: give blocks or bytes (k, m, g, t, p), not sectors", s)
	}
	n, ok := build.ParseSize(s, 0, 512)
	if !ok || n <= 0 {
		return cli.Usagef("-D %s: want a number of filesystem blocks, or bytes with a k, m, g, t, p suffix", s)
	}
	o.Bytes = n
	return nil
}
