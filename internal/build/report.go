package build

import (
	"fmt"
	"io"
)

// Report prints the geometry block that mkfs.xfs prints (and that -N
// stops after); name is the target as given on the command line.
func (g *Geometry) Report(w io.Writer, name string) error {
	sb := &g.SB
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	logSect := 512
	if sb.VersionNum&0x0800 != 0 { // XFS_SB_VERSION_SECTORBIT
		logSect = int(sb.LogSectSize)
	}
	_, err := fmt.Fprintf(w, ""+
		"meta-data=%-22s isize=%-6d agcount=%d, agsize=%d blks\n"+
		"         =%-22s sectsz=%-5d attr=%d, projid32bit=%d\n"+
		"         =%-22s crc=%-8d finobt=%d, sparse=%d, rmapbt=%d\n"+
		"         =%-22s reflink=%-4d bigtime=%d inobtcount=%d nrext64=%d\n"+
		"data     =%-22s bsize=%-6d blocks=%d, imaxpct=%d\n"+
		"         =%-22s sunit=%-6d swidth=%d blks\n"+
		"naming   =version %-14d bsize=%-6d ascii-ci=%d, ftype=%d\n"+
		"log      =%-22s bsize=%-6d blocks=%d, version=%d\n"+
		"         =%-22s sectsz=%-5d sunit=%d blks, lazy-count=%d\n"+
		"realtime =%-22s extsz=%-6d blocks=%d, rtextents=%d\n",
		name, sb.InodeSize, sb.AGCount, sb.AGBlocks,
		"", sb.SectSize, 2, 1,
		"", 1, b(g.Finobt), b(g.Sparse), b(g.Rmapbt),
		"", b(g.Reflink), b(g.Bigtime), b(g.InobtCount), b(g.Nrext64),
		"", sb.BlockSize, sb.DBlocks, sb.IMaxPct,
		"", sb.Unit, sb.Width,
		2, g.DirBlockSize, b(g.ASCIICI), 1,
		"internal log", sb.BlockSize, sb.LogBlocks, 2,
		"", logSect, sb.LogSUnit/sb.BlockSize, 1,
		"none", sb.RExtSize*sb.BlockSize, 0, 0)
	return err
}
