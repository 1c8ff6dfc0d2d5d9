// Command mkfs makes an empty XFS v5 filesystem on an image file or block
// device, with mkfs.xfs 6.1's options, defaults and results (installed as
// xfskit-mkfs). Exit status: 0 success, 1 error (as mkfs.xfs).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"xfskit/internal/build"
	"xfskit/internal/cli"
)

const longHelp = `mkfs makes an empty XFS v5 (CRC-enabled) filesystem on TARGET, an image
file or a block device, exactly as mkfs.xfs 6.1 would for the same options:
the same defaults, AG count, log size and geometry, the same geometry
report, and (given -m uuid=) the same metadata bytes. It needs no root and
no loop device.

TARGET is created as a sparse file when it does not exist and -d size= is
given; a new file is written under a temporary name and renamed into place.
An existing filesystem or partition table is only overwritten with -f.
Unlike mkfs.xfs, filesystems smaller than 300 MiB are made (with a warning)
as long as the kernel mounts them. crc=0 (V4) is refused.

Sizes take mkfs.xfs suffixes: s (sectors), b (filesystem blocks), k, m, g,
t, p (powers of 1024); sunit/swidth are in 512-byte units.
SOURCE_DATE_EPOCH, when set, stamps the root directory instead of the
current time (with -m uuid= the image is then reproducible).

-p DIR copies a directory tree into the new filesystem in one pass: every
file type, holes kept, hard links, owners, modes, nanosecond times and
extended attributes in every namespace (POSIX ACLs included). -p FILE reads
an mkfs.xfs prototype file instead. Without -d size=, a new image is sized
to the tree plus --size-margin. --root-owner or --owner UID:GID replace
every owner; with SOURCE_DATE_EPOCH no timestamp is later than it. The
same input, options and -m uuid= give a byte-identical image.

Exit status: 0 success, 1 error.`

func main() {
	o := build.NewOptions()
	var (
		raw       = map[byte]*[]string{}
		asJSON    bool
		version   bool
		rootOwner bool
		owner     string
		margin    float64
	)
	cmd := &cobra.Command{
		Use:   "mkfs [options] TARGET",
		Short: "Make an XFS v5 filesystem on an image file or device, like mkfs.xfs 6.1",
		Long:  longHelp,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version {
				fmt.Println("mkfs (xfskit), compatible with mkfs.xfs version 6.1.0")
				return nil
			}
			// Sub-options in the mkfs.xfs table order; within a flag, in
			// command-line order (the table is shared with estimate).
			values := map[byte][]string{}
			for c, v := range raw {
				values[c] = *v
			}
			if err := o.ParseSuboptFlags(values); err != nil {
				return usage(err)
			}
			if len(args) == 1 {
				if o.Target != "" {
					return usage(fmt.Errorf("give the target either as an argument or with -d name=, not both"))
				}
				o.Target = args[0]
			}
			if o.Target == "" {
				return usage(fmt.Errorf("no device name given in argument list"))
			}
			if sde := os.Getenv("SOURCE_DATE_EPOCH"); sde != "" {
				sec, err := strconv.ParseInt(sde, 10, 64)
				if err != nil {
					return usage(fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", sde))
				}
				o.Now = time.Unix(sec, 0)
				o.ClampTimes = true
			}
			if owner != "" {
				if rootOwner {
					return usage(fmt.Errorf("--owner and --root-owner exclude each other"))
				}
				uid, gid, err := build.ParseOwner(owner)
				if err != nil {
					return usage(err)
				}
				o.OwnerUID, o.OwnerGID = int64(uid), int64(gid)
			}
			o.RootOwner = rootOwner
			if margin < 0 {
				return usage(fmt.Errorf("--size-margin %v: must not be negative", margin))
			}
			o.SizeMargin = margin / 100
			if o.Proto == "" && (rootOwner || owner != "" || cmd.Flags().Changed("size-margin")) {
				return usage(fmt.Errorf("--root-owner, --owner and --size-margin need -p"))
			}
			var report io.Writer = os.Stdout
			if asJSON {
				report = io.Discard
			}
			g, err := build.Run(o, report, os.Stderr)
			if err != nil {
				var ue *build.UsageError
				if errors.As(err, &ue) {
					return usage(err)
				}
				return &cli.ExitError{Code: 1, Err: err}
			}
			if asJSON {
				return writeJSON(os.Stdout, o.Target, g)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	for _, s := range build.SuboptFlags {
		v := []string{}
		raw[s.Class] = &v
		f.StringArrayVarP(raw[s.Class], s.Long, string(s.Class), nil, s.Usage)
	}
	f.BoolVarP(&o.Force, "force", "f", false, "overwrite an existing filesystem or partition table")
	f.BoolVarP(&o.Force, "force-overwrite", "C", false, "same as -f")
	f.BoolVarP(&o.DryRun, "dry-run", "N", false, "print the geometry only, write nothing")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print the geometry")
	f.BoolVarP(&o.NoDiscard, "no-discard", "K", false, "do not discard (punch out) the old contents first")
	f.StringVarP(&o.Label, "label", "L", "", "filesystem label (at most 12 bytes)")
	f.StringVarP(&o.Proto, "proto", "p", "", "populate from a directory tree or an mkfs.xfs prototype file")
	f.BoolVar(&rootOwner, "root-owner", false, "with -p: make root (0:0) the owner of every file")
	f.StringVar(&owner, "owner", "", "with -p: make UID:GID the owner of every file")
	f.Float64Var(&margin, "size-margin", build.DefaultSizeMargin*100, "with -p and no -d size=: room left in the image, in percent of the tree's size")
	f.BoolVarP(&version, "version", "V", false, "print the version")
	f.BoolVar(&asJSON, "json", false, "print the resulting geometry as JSON instead of the report")
	f.MarkHidden("force-overwrite")
	cli.Main(cmd, 1)
}

func usage(err error) error { return &cli.UsageError{Err: err} }

// writeJSON prints the geometry for scripts.
func writeJSON(w io.Writer, target string, g *build.Geometry) error {
	sb := &g.SB
	v := map[string]any{
		"target":          target,
		"uuid":            g.UUID.String(),
		"label":           g.Label,
		"block_size":      g.BlockSize,
		"sector_size":     g.SectorSize,
		"inode_size":      g.InodeSize,
		"dir_block_size":  g.DirBlockSize,
		"data_blocks":     g.DBlocks,
		"ag_count":        g.AGCount,
		"ag_blocks":       g.AGBlocks,
		"imaxpct":         g.IMaxPct,
		"stripe_unit":     g.DSunit,
		"stripe_width":    g.DSwidth,
		"log_start":       g.LogStart,
		"log_blocks":      g.LogBlocks,
		"log_sector_size": g.LogSectorSize,
		"log_stripe_unit": sb.LogSUnit,
		"features": map[string]bool{
			"crc": true, "finobt": g.Finobt, "sparse": g.Sparse, "rmapbt": g.Rmapbt,
			"reflink": g.Reflink, "inobtcount": g.InobtCount, "bigtime": g.Bigtime,
			"nrext64": g.Nrext64, "ascii_ci": g.ASCIICI,
		},
		"warnings": g.Warnings,
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
