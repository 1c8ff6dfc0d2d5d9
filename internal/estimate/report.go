package estimate

import (
	"encoding/json"
	"fmt"
	"io"
)

// mib is a megabyte as xfs_estimate counts it.
const mib = 1 << 20

// Megabytes is the size in xfs_estimate's "megabytes" (MiB).
func (r *Result) Megabytes() float64 { return float64(r.Bytes) / mib }

// HumanSize is the size as mkfs -d size= takes it: in g or m when that
// is exact, else in bytes.
func HumanSize(b int64) string {
	switch {
	case b > 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%dg", b>>30)
	case b > 0 && b%mib == 0:
		return fmt.Sprintf("%dm", b>>20)
	}
	return fmt.Sprint(b)
}

// WriteText prints xfs_estimate's line: "DIR will take about N.N megabytes".
func (r *Result) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s will take about %.1f megabytes\n", r.Dir, r.Megabytes())
	return err
}

// VerboseHeader is the -v column header: xfs_estimate's five columns,
// then xfskit's.
const VerboseHeader = "directory                               bsize   blocks    megabytes    logsize   inodes    files     dirs  datablks  metablks  ags  size\n"

// WriteVerbose prints one -v row (under VerboseHeader): directory, block
// size, filesystem blocks, megabytes, log size in bytes (as
// xfs_estimate), then inodes, regular files, directories, data blocks,
// directory/attribute/symlink/bmbt blocks, AG count and the -d size=
// value.
func (r *Result) WriteVerbose(w io.Writer) error {
	name := r.Dir
	if len(name) > 39 {
		name = name[:39]
	}
	g, t, c := r.Geometry, r.Trial, r.Counts
	_, err := fmt.Fprintf(w, "%-39s %5d %8d %10.1fMB %10d %8d %8d %8d %9d %9d %4d  %s\n",
		name, g.BlockSize, g.DBlocks, r.Megabytes(), int64(g.LogBlocks)*int64(g.BlockSize),
		c.Inodes, c.Files, c.Dirs, t.Stats.DataBlocks, t.Stats.MetaBlocks, g.AGCount, HumanSize(r.Bytes))
	return err
}

// JSON is the --json form of a Result.
type JSON struct {
	Directory    string  `json:"directory"`
	Bytes        int64   `json:"bytes"`
	Size         string  `json:"size"` // for mkfs -d size=
	Megabytes    float64 `json:"megabytes"`
	BlockSize    int     `json:"block_size"`
	Blocks       uint64  `json:"blocks"`
	InodeSize    int     `json:"inode_size"`
	DirBlockSize int     `json:"dir_block_size"`
	AGCount      uint32  `json:"ag_count"`
	AGBlocks     uint32  `json:"ag_blocks"`
	LogBlocks    uint32  `json:"log_blocks"`

	Inodes      int   `json:"inodes"`
	Directories int   `json:"directories"`
	Files       int   `json:"files"`
	Symlinks    int   `json:"symlinks"`
	Special     int   `json:"special"`
	HardLinks   int   `json:"hard_links"`
	Xattrs      int   `json:"xattrs"`
	DataBytes   int64 `json:"data_bytes"`

	DataBlocks  uint64 `json:"data_blocks"`
	MetaBlocks  uint64 `json:"metadata_blocks"` // directory, attribute, symlink and bmbt blocks
	InodeChunks uint64 `json:"inode_chunks"`    // added to the root's
	UsedBlocks  uint64 `json:"used_blocks"`     // everything the tree takes
	FreeBlocks  uint64 `json:"free_blocks"`     // left free at this size

	MkfsAutoBytes int64    `json:"mkfs_auto_bytes"` // what mkfs -p picks without -d size=
	MkfsAutoFits  bool     `json:"mkfs_auto_fits"`
	SizingRuns    int      `json:"sizing_runs"`
	Warnings      []string `json:"warnings,omitempty"`
}

// JSON returns the --json form.
func (r *Result) JSON() JSON {
	g, t, c := r.Geometry, r.Trial, r.Counts
	return JSON{
		Directory: r.Dir, Bytes: r.Bytes, Size: HumanSize(r.Bytes), Megabytes: r.Megabytes(),
		BlockSize: g.BlockSize, Blocks: g.DBlocks, InodeSize: g.InodeSize, DirBlockSize: g.DirBlockSize,
		AGCount: g.AGCount, AGBlocks: g.AGBlocks, LogBlocks: g.LogBlocks,
		Inodes: c.Inodes, Directories: c.Dirs, Files: c.Files, Symlinks: c.Symlinks, Special: c.Special,
		HardLinks: c.HardLinks, Xattrs: c.Xattrs, DataBytes: c.DataBytes,
		DataBlocks: t.Stats.DataBlocks, MetaBlocks: t.Stats.MetaBlocks, InodeChunks: t.Stats.Chunks,
		UsedBlocks: t.Used(), FreeBlocks: t.FreeAfter,
		MkfsAutoBytes: r.AutoBytes, MkfsAutoFits: r.AutoFits, SizingRuns: r.Trials, Warnings: r.Warnings,
	}
}

// WriteJSON prints results as a JSON array.
func WriteJSON(w io.Writer, rs []*Result) error {
	out := make([]JSON, len(rs))
	for i, r := range rs {
		out[i] = r.JSON()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
