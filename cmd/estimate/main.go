// Command estimate tells how big an XFS image a directory tree needs, like
// xfs_estimate, but exactly for xfskit's `mkfs -p` (installed as
// xfskit-estimate). Exit status: 0 success, 1 error or bad usage (as
// xfs_estimate's usage exit).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"xfskit/internal/build"
	"xfskit/internal/cli"
	"xfskit/internal/estimate"
)

const longHelp = `estimate prints how big an XFS image each DIRECTORY needs, with
xfs_estimate's interface and output ("DIR will take about N.N megabytes"),
but the figure is exact for xfskit's own mkfs -p: it is the smallest image
size (within a few blocks per allocation group) at which

    mkfs -p DIR -d size=BYTES IMAGE

succeeds with the same geometry options, found by running mkfs -p's own
planning, formatting and populating code on an in-memory image (no file
data is read, nothing is written). --bytes prints that size alone, usable
as -d size=; -H rounds it up to whole megabytes (checked again).

Geometry options are mkfs's (-b size=, -d agcount=, -i size=, -l size=,
-m rmapbt=1, -n size=, -s size=, ...). For xfs_estimate compatibility,
-b and -i without '=' keep xfs_estimate's meaning: -b BLOCKSIZE is the
block size and -i LOGSIZE the internal log size. External logs (-e) are
not made by xfskit's mkfs. Without -d agcount= or agsize=, sizes that
mkfs would make with a single allocation group are skipped (xfs_repair
cannot check those).

The estimate is for a new image file and for the tree as it is now; files
whose allocated size covers their length are counted as all data.

Exit status: 0 success; 1 when a directory could not be estimated
(missing, unreadable) or on bad usage.`

func main() {
	var (
		raw                   = map[byte]*[]string{}
		verbose, asJSON       bool
		bytesOnly, human, ver bool
		extLog                string
		margin                float64
		trace                 bool
	)
	cmd := &cobra.Command{
		Use:   "estimate [options] DIRECTORY...",
		Short: "How big an XFS image a directory tree needs (xfs_estimate, exact for mkfs -p)",
		Long:  longHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ver {
				fmt.Println("estimate (xfskit), compatible with xfs_estimate version 6.1.0")
				return nil
			}
			// The tree stays live while sizing runs make short-lived
			// metadata by the megabyte: collecting when the heap has
			// grown fivefold halves the collector's CPU time (117k
			// entries: 0.05-0.1 s instead of 0.2 s at 200, 315 MB peak
			// instead of 290).
			cli.TradeMemory(400)
			if len(args) == 0 {
				return usage(errors.New("no directory given"))
			}
			if extLog != "" {
				return usage(errors.New("-e: xfskit's mkfs makes internal logs only; give the log size with -i LOGSIZE or -l size="))
			}
			if bytesOnly && human {
				return usage(errors.New("--bytes and -H exclude each other"))
			}
			if margin < 0 {
				return usage(fmt.Errorf("--size-margin %v: must not be negative", margin))
			}
			values := map[byte][]string{}
			for c, v := range raw {
				values[c] = append(values[c], *v...)
			}
			compat(values)
			bo := build.NewOptions()
			if err := bo.ParseSuboptFlags(values); err != nil {
				return usage(err)
			}
			if bo.DataSize != "" {
				return usage(errors.New("-d size= is what estimate finds; leave it out"))
			}
			o := estimate.Options{Build: bo, Margin: margin / 100}
			if trace {
				o.Trace = func(t *build.Trial) {
					if t.Fits {
						fmt.Fprintf(os.Stderr, "sizing run: %d bytes: fits, %d blocks used, %d free (per AG %v)\n", t.Size, t.Used(), t.FreeAfter, t.AGFree)
					} else {
						fmt.Fprintf(os.Stderr, "sizing run: %d bytes: %v\n", t.Size, t.Err)
					}
				}
			}
			if human {
				o.Round = 1 << 20
			}
			return run(os.Stdout, os.Stderr, o, args, verbose, asJSON, bytesOnly || human)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	for _, s := range build.SuboptFlags {
		v := []string{}
		raw[s.Class] = &v
		usage := s.Usage
		switch s.Class {
		case 'b':
			usage += "; or BLOCKSIZE (xfs_estimate)"
		case 'i':
			usage += "; or LOGSIZE, the internal log size (xfs_estimate)"
		}
		f.StringArrayVarP(raw[s.Class], s.Long, string(s.Class), nil, usage)
	}
	f.StringVarP(&extLog, "external-log", "e", "", "external log size (xfs_estimate; not supported: xfskit makes internal logs)")
	f.BoolVarP(&verbose, "verbose", "v", false, "print a table: block size, blocks, megabytes, log size, inodes, files, directories, data and metadata blocks, AGs, size")
	f.BoolVar(&asJSON, "json", false, "print the estimates as JSON")
	f.BoolVar(&bytesOnly, "bytes", false, "print only the size in bytes, one line per directory (for mkfs -d size=)")
	f.BoolVarP(&human, "human", "H", false, "print only the size rounded up to whole megabytes, as -d size= takes it (e.g. 119m)")
	f.Float64Var(&margin, "size-margin", 0, "room to leave free after populating, in percent of what the tree takes")
	f.BoolVarP(&ver, "version", "V", false, "print the version")
	f.BoolVar(&trace, "trace", false, "print every sizing run to stderr")
	f.MarkHidden("trace")
	cli.Main(cmd, cli.ExitGenericErr)
}

func usage(err error) error { return &cli.UsageError{Err: err} }

// compat maps xfs_estimate's "-b BLOCKSIZE" and "-i LOGSIZE" (values
// without '=') onto mkfs's -b size= and -l size=.
func compat(values map[byte][]string) {
	var inode []string
	for _, v := range values['i'] {
		if strings.Contains(v, "=") {
			inode = append(inode, v)
		} else {
			values['l'] = append(values['l'], "size="+v)
		}
	}
	values['i'] = inode
	for i, v := range values['b'] {
		if !strings.Contains(v, "=") {
			values['b'][i] = "size=" + v
		}
	}
}

// run estimates each directory and prints the results; a directory that
// fails is reported and the others still run.
func run(stdout, stderr io.Writer, o estimate.Options, dirs []string, verbose, asJSON, sizeOnly bool) error {
	var results []*estimate.Result
	failed := 0
	if verbose && !asJSON && !sizeOnly {
		fmt.Fprint(stdout, estimate.VerboseHeader)
	}
	for _, dir := range dirs {
		r, err := estimate.Estimate(o, dir)
		if err != nil {
			var ue *build.UsageError
			if errors.As(err, &ue) {
				return usage(err) // the geometry options, not this directory
			}
			fmt.Fprintf(stderr, "estimate: %v\n", err)
			failed++
			continue
		}
		for _, w := range r.Warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		if !r.AutoFits && r.AutoBytes > 0 {
			fmt.Fprintf(stderr, "warning: %s: mkfs -p without -d size= would pick %d bytes, too small for this tree\n", dir, r.AutoBytes)
		}
		switch {
		case asJSON:
			results = append(results, r)
		case sizeOnly:
			if o.Round > 0 {
				fmt.Fprintln(stdout, estimate.HumanSize(r.Bytes))
			} else {
				fmt.Fprintln(stdout, r.Bytes)
			}
		case verbose:
			r.WriteVerbose(stdout)
		default:
			r.WriteText(stdout)
		}
	}
	if asJSON {
		if results == nil {
			results = []*estimate.Result{}
		}
		if err := estimate.WriteJSON(stdout, results); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &cli.ExitError{Code: 1}
	}
	return nil
}
