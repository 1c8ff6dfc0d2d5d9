package build

import (
	"crypto/rand"
	"fmt"

	"xfskit/ondisk"
)

// TargetInfo describes the device or image file to format. ProbeTarget
// fills it from the system; tests may build one by hand.
type TargetInfo struct {
	Path           string
	Exists         bool
	IsBlock        bool  // a block device; otherwise a regular file
	Size           int64 // bytes; 0 for a file that does not exist yet
	LogicalSector  int   // device logical sector (or the host filesystem's direct I/O size for files); 0 = 512
	PhysicalSector int   // 0 = same as logical
	MinIO, OptIO   int   // block device I/O hints in bytes (stripe unit/width)
	AlignOffset    int   // block device alignment offset in bytes
}

// Geometry is the resolved layout of the filesystem to write.
type Geometry struct {
	BlockSize, SectorSize, LogSectorSize int
	DirBlockSize, InodeSize              int
	DBlocks                              uint64
	AGBlocks, AGCount                    uint32
	LogBlocks                            uint32
	LogStart                             uint64 // filesystem block of the internal log
	LogAGNo                              uint32
	DSunit, DSwidth, LSunit              uint32 // filesystem blocks
	IMaxPct                              int
	RTExtBlocks                          uint32

	Finobt, Sparse, Rmapbt, Reflink bool
	InobtCount, Bigtime, Nrext64    bool
	ASCIICI                         bool

	UUID  ondisk.UUID
	Label string

	// Root directory attributes from -d rtinherit,projinherit,...
	RootFlags      uint16
	RootFlags2     uint64
	RootProjID     uint32
	RootExtSize    uint32
	RootCowExtSize uint32

	// SB is the superblock as mkfs.xfs holds it before the root directory
	// exists (rootino unset, in progress); Format completes it.
	SB ondisk.Superblock

	// CreateFile: the target is a regular file to be created (or, with
	// -d file, replaced) at the filesystem size rather than formatted in
	// place.
	CreateFile bool

	// Warnings are printed to stderr (mkfs.xfs prints the same ones, or
	// refuses where xfskit warns).
	Warnings []string

	mp *mountGeom
}

// Plan validates the options against the target and derives the complete
// geometry exactly as mkfs.xfs 6.1 would. It does no I/O.
func Plan(o *Options, t TargetInfo) (*Geometry, error) {
	g := &Geometry{Label: o.Label}
	warn := func(f string, a ...any) { g.Warnings = append(g.Warnings, fmt.Sprintf(f, a...)) }

	if err := o.validateFields(); err != nil {
		return nil, err
	}
	if !o.CRC {
		return nil, usagef("crc=0 (V4 filesystems) is not supported: xfskit only writes V5 (CRC-enabled) filesystems, which mkfs.xfs also makes by default")
	}
	if o.RTDevice != "" {
		return nil, usagef("realtime devices are not supported")
	}
	if !o.LogInternal || o.LogDevice != "" {
		return nil, usagef("external log devices are not supported; use an internal log")
	}
	if len(o.Label) > 12 {
		return nil, usagef("Invalid value %s for -L option (maximum 12 characters)", o.Label)
	}

	// validate_blocksize
	bs := 1 << 12
	if o.BlockSize != 0 {
		bs = o.BlockSize
	}
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return nil, usagef("illegal block size %d", bs)
	}
	if bs < 1024 {
		return nil, usagef("Minimum block size for CRC enabled filesystems is 1024 bytes.")
	}
	g.BlockSize = bs
	blog := log2(bs)

	// validate_sectorsize: device type, then topology.
	if t.Path == "" {
		return nil, usagef("No device name specified")
	}
	if t.IsBlock && o.DataFile {
		return nil, usagef("specified \"-d file\" on a block device %s", t.Path)
	}
	if !t.Exists && o.DataSize == "" {
		return nil, usagef("%s does not exist: give -d size= to create an image file of that size", t.Path)
	}
	if o.DataFile && o.DataSize == "" {
		return nil, usagef("if -d file then -d name and -d size are required")
	}
	if !t.IsBlock && (!t.Exists || o.DataFile) {
		g.CreateFile = true
	}
	lsect, psect := t.LogicalSector, t.PhysicalSector
	var ftSunit, ftSwidth int // 512-byte units, from the device
	if t.IsBlock {
		ftSunit, ftSwidth = t.MinIO, t.OptIO
		if ftSunit == psect || ftSwidth == psect {
			ftSunit, ftSwidth = 0, 0
		}
		ftSunit >>= 9
		ftSwidth >>= 9
		if t.AlignOffset != 0 {
			if !o.Force {
				return nil, usagef("warning: device is not properly aligned %s\nUse -f to force usage of a misaligned device", t.Path)
			}
			warn("warning: device is not properly aligned %s", t.Path)
			psect = lsect
		}
	} else {
		psect = lsect
	}
	ss := o.SectorSize
	if ss == 0 {
		if lsect == 0 {
			lsect = 512
		}
		if psect == 0 || psect > maxSectorSize {
			psect = lsect
		}
		ss = psect
		if bs < ss && bs >= lsect {
			warn("specified blocksize %d is less than device physical sector size %d\nswitching to logical sector size %d", bs, psect, lsect)
			ss = lsect
		}
	}
	if ss < minSectorSize || ss > maxSectorSize || ss&(ss-1) != 0 {
		return nil, usagef("illegal sector size %d", ss)
	}
	if bs < ss {
		return nil, usagef("block size %d cannot be smaller than sector size %d", bs, ss)
	}
	if lsect != 0 && ss < lsect {
		return nil, usagef("illegal sector size %d; hw sector is %d", ss, lsect)
	}
	g.SectorSize = ss

	// validate_log_sectorsize (internal log only)
	if o.LogSectSize != 0 && o.LogSectSize != ss {
		return nil, usagef("Can't change sector size on internal log!")
	}
	lss := ss
	if lss > bs {
		return nil, usagef("illegal log sector size %d", lss)
	}
	if lss > 512 && o.LogVersion < 2 {
		return nil, usagef("Version 1 logs do not support sector size %d", lss)
	}
	g.LogSectorSize = lss

	// validate_sb_features for CRC filesystems
	switch {
	case o.InodeSize != 0 && o.InodeSize < 512:
		return nil, usagef("Minimum inode size for CRCs is 512 bytes")
	case !o.InodeAlign:
		return nil, usagef("Inodes always aligned for CRC enabled filesystems")
	case !o.LazyCount:
		return nil, usagef("Lazy superblock counters always enabled for CRC enabled filesystems")
	case o.LogVersion != 2:
		return nil, usagef("V2 logs always enabled for CRC enabled filesystems")
	case o.AttrVersion != 2:
		return nil, usagef("V2 attribute format always enabled on CRC enabled filesystems")
	case !o.ProjID32:
		return nil, usagef("32 bit Project IDs always enabled on CRC enabled filesystems")
	case !o.FType:
		return nil, usagef("Directory ftype field always enabled on CRC enabled filesystems")
	}
	g.Finobt, g.Sparse, g.Rmapbt, g.Reflink = o.Finobt, o.Sparse, o.Rmapbt, o.Reflink
	g.InobtCount, g.Bigtime, g.Nrext64, g.ASCIICI = o.InobtCount, o.Bigtime, o.Nrext64, o.ASCIICI
	if !g.Finobt && g.InobtCount {
		if o.IsSet('m', "inobtcount") {
			return nil, usagef("inode btree counters not supported without finobt support")
		}
		g.InobtCount = false
	}
	if o.CowExtSize > 0 && !g.Reflink {
		return nil, usagef("cowextsize not supported without reflink support")
	}
	g.UUID = o.UUID
	if g.UUID.IsZero() {
		if _, err := rand.Read(g.UUID[:]); err != nil {
			return nil, fmt.Errorf("generating a UUID: %w", err)
		}
		g.UUID[6] = g.UUID[6]&0x0f | 0x40 // version 4
		g.UUID[8] = g.UUID[8]&0x3f | 0x80 // RFC 4122 variant
	}

	// validate_dirblocksize
	if o.DirBlockSize != "" {
		v, err := convertLater('n', "size", o.DirBlockSize, bs, ss)
		if err != nil {
			return nil, err
		}
		if int(v) < bs || v > maxBlockSize {
			return nil, usagef("illegal directory block size %d", v)
		}
		g.DirBlockSize = int(v)
	} else if bs < 1<<minRecDirLog {
		g.DirBlockSize = 1 << minRecDirLog
	} else {
		g.DirBlockSize = bs
	}

	// validate_inodesize
	ilog := 9
	switch {
	case o.InodesPerBlock != 0:
		ilog = blog - log2(o.InodesPerBlock)
	case o.InodeSize != 0:
		ilog = log2(o.InodeSize)
	}
	if ilog < 9 {
		return nil, usagef("Minimum inode size for CRCs is 512 bytes")
	}
	isz := 1 << ilog
	if isz > bs/2 || bs/isz < 2 || isz < 256 || isz > 2048 {
		maxsz := min(bs/2, 2048)
		if maxsz == 256 {
			return nil, usagef("illegal inode size %d\nallowable inode size with %d byte blocks is 256", isz, bs)
		}
		return nil, usagef("illegal inode size %d\nallowable inode size with %d byte blocks is between 256 and %d", isz, bs, maxsz)
	}
	g.InodeSize = isz

	// calc_dev_size for the data and log sections
	devSize := func(class byte, v string, what string) (uint64, error) {
		if v == "" {
			return 0, nil
		}
		n, err := convertLater(class, "size", v, bs, ss)
		if err != nil {
			return 0, err
		}
		if n%512 != 0 {
			return 0, usagef("illegal %s length %d, not a multiple of 512", what, n)
		}
		blocks := uint64(n) >> blog
		if n%int64(bs) != 0 {
			warn("warning: %s length %d not a multiple of %d, truncated to %d", what, n, bs, blocks<<blog)
		}
		return blocks, nil
	}
	dblocks, err := devSize('d', o.DataSize, "data")
	if err != nil {
		return nil, err
	}
	logblocks, err := devSize('l', o.LogSize, "log")
	if err != nil {
		return nil, err
	}
	switch {
	case o.RTExtSize != "":
		v, err := convertLater('r', "extsize", o.RTExtSize, bs, ss)
		if err != nil {
			return nil, err
		}
		if v%int64(bs) != 0 {
			return nil, usagef("illegal rt extent size %d, not a multiple of %d", v, bs)
		}
		g.RTExtBlocks = uint32(v >> blog)
	case bs < minRTExtSize:
		g.RTExtBlocks = uint32(minRTExtSize >> blog)
	default:
		g.RTExtBlocks = 1
	}
	if o.RTSize != "" {
		if _, err := convertLater('r', "size", o.RTSize, bs, ss); err != nil {
			return nil, err
		}
		return nil, usagef("size specified for non-existent rt subvolume")
	}

	// open_devices: usable device size in 512-byte units, rounded down to
	// the sector size (or 1 KiB).
	var dsizeBB uint64
	if !g.CreateFile {
		mask := ^uint64(0) << (max(log2(ss), 10) - 9)
		dsizeBB = uint64(t.Size>>9) & mask
	}

	// validate_datadev
	switch {
	case dsizeBB == 0:
		if t.IsBlock {
			return nil, usagef("can't get size of data subvolume")
		}
		if dblocks == 0 {
			return nil, usagef("%s is empty: give -d size= for the image size", t.Path)
		}
	case dblocks != 0:
		if dblocks > dsizeBB>>(blog-9) {
			return nil, usagef("size %s specified for data subvolume is too large, maximum is %d blocks", o.DataSize, dsizeBB>>(blog-9))
		}
	default:
		dblocks = dsizeBB >> (blog - 9)
	}
	agMinBlocks := uint64(agMinBytes >> blog)
	agMaxBlocks := uint64((agMaxBytes - 1) >> blog)
	if dblocks < agMinBlocks {
		return nil, usagef("size %d of data subvolume is too small, minimum %d blocks", dblocks, agMinBlocks)
	}

	// validate_logdev (internal)
	if o.LogSize != "" && logblocks >= dblocks {
		return nil, usagef("log size %d too large for internal log", logblocks)
	}

	// calc_stripe_factors
	dsunit, dswidth, err := g.stripeFactors(o, bs, ss, dblocks, ftSunit, ftSwidth, warn)
	if err != nil {
		return nil, err
	}
	g.DSunit, g.DSwidth = uint32(dsunit), uint32(dswidth)
	var lsunit int
	switch {
	case o.IsSet('l', "sunit"):
		lsunit = o.LogSunit
	case o.IsSet('l', "su"):
		lsu, err := convertLater('l', "su", o.LogSU, bs, ss)
		if err != nil {
			return nil, err
		}
		if lsu%int64(bs) != 0 {
			return nil, usagef("log stripe unit (%d) must be a multiple of the block size (%d)", lsu, bs)
		}
		lsunit = int(lsu / 512)
	case lss > 512: // larger than a log record header: align the log to blocks
		lsunit = bs / 512
	}
	if lsunit*512%bs != 0 {
		return nil, usagef("log stripe unit (%d) must be a multiple of the block size (%d)", lsunit*512, bs)
	}
	if lsunit != 0 {
		g.LSunit = uint32(lsunit * 512 >> blog)
	} else if g.DSunit != 0 {
		g.LSunit = g.DSunit
	}
	if int(g.LSunit)*bs > 256*1024 {
		// mkfs.xfs 6.1 means to warn only for -l su/sunit but its test is
		// always true, so it always warns.
		warn("log stripe unit (%d bytes) is too large (maximum is 256KiB)\nlog stripe unit adjusted to 32KiB", int(g.LSunit)*bs)
		g.LSunit = uint32(32 * 1024 / bs)
	}

	// calculate_initial_ag_geometry
	var agsize, agcount uint64
	switch {
	case o.AGSize != "":
		v, err := convertLater('d', "agsize", o.AGSize, bs, ss)
		if err != nil {
			return nil, err
		}
		if v%int64(bs) != 0 {
			return nil, usagef("agsize (%s) not a multiple of fs blk size (%d)", o.AGSize, bs)
		}
		agsize = uint64(v) / uint64(bs)
		agcount = dblocks/agsize + b2u(dblocks%agsize != 0)
	case o.AGCount != 0:
		agcount = uint64(o.AGCount)
		agsize = dblocks/agcount + b2u(dblocks%agcount != 0)
	default:
		agsize, agcount = defaultAGGeometry(blog, dblocks, g.DSunit != 0)
	}

	// align_ag_geometry
	dblocks, agsize, agcount, err = g.alignAG(o, blog, dblocks, agsize, agcount, agMinBlocks, agMaxBlocks, warn)
	if err != nil {
		return nil, err
	}
	g.DBlocks, g.AGBlocks, g.AGCount = dblocks, uint32(agsize), uint32(agcount)

	// calculate_imaxpct
	g.IMaxPct = o.IMaxPct
	if g.IMaxPct == 0 {
		switch {
		case dblocks < uint64(1)<<(40-blog):
			g.IMaxPct = 25
		case dblocks < uint64(50)<<(40-blog):
			g.IMaxPct = 5
		default:
			g.IMaxPct = 1
		}
	}

	// start_superblock_setup
	g.initSuperblock()
	sb := &g.SB
	g.mp = newMountGeom(mountParams{
		blockSize: bs, sectSize: ss, inodeSize: isz, agBlocks: sb.AGBlocks, agCount: sb.AGCount,
		dBlocks: sb.DBlocks, dirBlockLog: int(sb.DirBlkLog), logSunit: int(sb.LogSUnit),
		inoAlignMt: sb.InoAlignMt, spinoAlign: sb.SpinoAlign,
		finobt: g.Finobt, rmapbt: g.Rmapbt, reflink: g.Reflink, nrext64: g.Nrext64,
		sparse: g.Sparse, inodeAlign: true,
	})

	// calculate_log_size
	if err := g.logSize(o, logblocks, warn); err != nil {
		return nil, err
	}

	// finish_superblock_setup
	copy(sb.FName[:], g.Label)
	sb.LogStart = g.LogStart
	sb.RootIno, sb.RBMIno, sb.RSumIno = ondisk.NullIno, ondisk.NullIno, ondisk.NullIno
	sb.LogBlocks = g.LogBlocks
	sb.InProgress = 1
	sb.IMaxPct = uint8(g.IMaxPct)
	sb.FDBlocks = g.DBlocks - uint64(g.AGCount)*uint64(g.mp.preallocBlocks) - uint64(g.LogBlocks)
	sb.Unit, sb.Width = g.DSunit, g.DSwidth
	// Stripe alignment is on the mount geometry from here on (inode
	// allocation alignment).
	g.mp = newMountGeom(mountParams{
		blockSize: bs, sectSize: ss, inodeSize: isz, agBlocks: sb.AGBlocks, agCount: sb.AGCount,
		dBlocks: sb.DBlocks, dirBlockLog: int(sb.DirBlkLog), logSunit: int(sb.LogSUnit),
		inoAlignMt: sb.InoAlignMt, spinoAlign: sb.SpinoAlign, dalign: g.DSunit,
		finobt: g.Finobt, rmapbt: g.Rmapbt, reflink: g.Reflink, nrext64: g.Nrext64,
		sparse: g.Sparse, inodeAlign: true,
	})

	if err := g.rootAttrs(o); err != nil {
		return nil, err
	}

	// validate_supported: mkfs.xfs refuses these; xfskit warns.
	if g.DBlocks < uint64(300)<<(20-blog) {
		warn("warning: filesystem smaller than 300MB; mkfs.xfs refuses this size (use it for tests and small images only)")
	}
	if uint64(g.LogBlocks) < uint64(64)<<(20-blog) {
		warn("warning: log smaller than 64MB; mkfs.xfs refuses such logs")
	}
	if g.AGCount < 2 {
		warn("warning: a single allocation group has no backup superblock")
	}
	return g, nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// defaultAGGeometry is calc_default_ag_geometry: 4 AGs on single disks of
// 128 MiB to 4 TiB, more for striped (multidisk) storage and tiny sizes.
func defaultAGGeometry(blog int, dblocks uint64, multidisk bool) (agsize, agcount uint64) {
	tb := func(n uint64) uint64 { return n << (40 - blog) }
	gb := func(n uint64) uint64 { return n << (30 - blog) }
	mb := func(n uint64) uint64 { return n << (20 - blog) }
	agMax := uint64((agMaxBytes - 1) >> blog)
	var blocks uint64
	shift := 0
	switch {
	case dblocks >= tb(32):
		blocks = agMax
	case !multidisk && dblocks >= tb(4):
		blocks = agMax
	default:
		if !multidisk && dblocks >= mb(128) {
			shift = 2
		} else {
			shift = 5
			if dblocks <= gb(512) {
				shift--
			}
			if dblocks <= gb(8) {
				shift--
			}
			if dblocks < mb(128) {
				shift--
			}
			if dblocks < mb(64) {
				shift--
			}
			if dblocks < mb(32) {
				shift--
			}
		}
		blocks = dblocks >> shift
		if dblocks&(1<<shift-1) != 0 && blocks < agMax {
			blocks++
		}
	}
	return blocks, dblocks/blocks + b2u(dblocks%blocks != 0)
}

func validStripe(sunit, swidth int64, sectsize int) error {
	switch {
	case swidth > maxInt:
		return usagef("stripe width (%d) is too large", swidth)
	case sunit > swidth:
		return usagef("stripe unit (%d) is larger than the stripe width (%d)", sunit, swidth)
	case sectsize != 0 && int(sunit)%sectsize != 0:
		return usagef("stripe unit (%d) must be a multiple of the sector size (%d)", sunit, sectsize)
	case sunit != 0 && swidth == 0:
		return usagef("invalid stripe unit (%d) and stripe width of 0", sunit)
	case sunit == 0 && swidth != 0:
		return usagef("invalid stripe width (%d) and stripe unit of 0", swidth)
	case sunit != 0 && int(swidth)%int(sunit) != 0:
		return usagef("stripe width (%d) must be a multiple of the stripe unit (%d)", swidth, sunit)
	}
	return nil
}

// stripeFactors is the data half of calc_stripe_factors; it returns the
// stripe unit and width in filesystem blocks.
func (g *Geometry) stripeFactors(o *Options, bs, ss int, dblocks uint64, ftSunit, ftSwidth int, warn func(string, ...any)) (int, int, error) {
	var dsunit, dswidth int64
	if o.IsSet('d', "sunit") {
		dsunit = int64(o.DataSunit)
	}
	if o.IsSet('d', "swidth") {
		dswidth = int64(o.DataSwidth)
	}
	var dsu, dsw int64
	if o.IsSet('d', "su") {
		v, err := convertLater('d', "su", o.DataSU, bs, ss)
		if err != nil {
			return 0, 0, err
		}
		dsu = v
	}
	if o.IsSet('d', "sw") {
		dsw = int64(o.DataSW)
	}
	if o.IsSet('d', "sunit") != o.IsSet('d', "swidth") {
		return 0, 0, usagef("both data sunit and data swidth options must be specified")
	}
	if dsu != 0 || dsw != 0 {
		if o.IsSet('d', "su") != o.IsSet('d', "sw") {
			return 0, 0, usagef("both data su and data sw options must be specified")
		}
		big := dsu * dsw
		if big/512 > maxInt {
			return 0, 0, usagef("data stripe width (%d) is too large of a multiple of the data stripe unit (%d)", big, dsu)
		}
		if err := validStripe(dsu, big, ss); err != nil {
			return 0, 0, err
		}
		dsunit, dswidth = dsu/512, big/512
	} else if err := validStripe(dsunit*512, dswidth*512, ss); err != nil {
		return 0, 0, err
	}
	noalign := o.NoAlign
	if (o.IsSet('d', "sunit") || o.IsSet('d', "su")) && dsunit == 0 && dswidth == 0 {
		noalign = true
	}
	if noalign {
		return 0, 0, nil
	}
	useDev := false
	if dsunit == 0 {
		switch {
		case validStripe(int64(ftSunit)*512, int64(ftSwidth)*512, 0) != nil:
			warn("Volume reports invalid stripe unit (%d) and stripe width (%d), ignoring.", ftSunit*512, ftSwidth*512)
		case dblocks < uint64(1)<<(30-log2(bs)):
			if ftSunit != 0 || ftSwidth != 0 {
				warn("small data volume, ignoring data volume stripe unit %d and stripe width %d", ftSunit, ftSwidth)
			}
		default:
			dsunit, dswidth = int64(ftSunit), int64(ftSwidth)
			useDev = true
		}
	} else {
		if ftSunit != 0 && int64(ftSunit) != dsunit {
			warn("Specified data stripe unit %d is not the same as the volume stripe unit %d", dsunit, ftSunit)
		}
		if ftSwidth != 0 && int64(ftSwidth) != dswidth {
			warn("Specified data stripe width %d is not the same as the volume stripe width %d", dswidth, ftSwidth)
		}
	}
	if (dsunit*512)%int64(bs) != 0 || (dswidth*512)%int64(bs) != 0 {
		if !useDev {
			return 0, 0, usagef("Stripe unit(%d) or stripe width(%d) is not a multiple of the block size(%d)", dsunit*512, dswidth*512, bs)
		}
		return 0, 0, nil
	}
	shift := log2(bs) - 9
	return int(dsunit >> shift), int(dswidth >> shift), nil
}

// alignAG is align_ag_geometry followed by validate_ag_geometry.
func (g *Geometry) alignAG(o *Options, blog int, dblocks, agsize, agcount, agMin, agMax uint64, warn func(string, ...any)) (uint64, uint64, uint64, error) {
	dsunit := uint64(g.DSunit)
	if dsunit != 0 {
		if agsize%dsunit != 0 {
			tmp := (agsize + dsunit - 1) / dsunit * dsunit
			if tmp > agMax {
				tmp = agsize / dsunit * dsunit
			}
			agsize = tmp
			if !o.IsSet('d', "agcount") {
				agcount = dblocks/agsize + b2u(dblocks%agsize != 0)
			}
			if o.IsSet('d', "agsize") {
				warn("agsize rounded to %d, sunit = %d", agsize, dsunit)
			}
		}
		if agsize%uint64(g.DSwidth) == 0 && g.DSwidth != g.DSunit && agcount > 1 {
			if o.IsSet('d', "agcount") || o.IsSet('d', "agsize") {
				warn("Warning: AG size is a multiple of stripe width.  This can cause performance\nproblems by aligning all AGs on the same disk.  To avoid this, run mkfs with\nan AG size that is one stripe unit smaller or larger, for example %d.", agsize-dsunit)
			} else {
				tmp := agsize - dsunit
				if tmp < agMin {
					tmp = agsize + dsunit
					if dblocks < agsize {
						tmp = agsize
					}
				}
				agsize = tmp
				agcount = dblocks/agsize + b2u(dblocks%agsize != 0)
			}
		}
	}
	// A last AG too small to hold metadata is dropped.
	if dblocks%agsize != 0 && dblocks%agsize < agMin {
		dblocks = (agcount - 1) * agsize
		agcount--
	}
	switch {
	case agsize < agMin:
		return 0, 0, 0, usagef("agsize (%d blocks) too small, need at least %d blocks", agsize, agMin)
	case agsize > agMax:
		return 0, 0, 0, usagef("agsize (%d blocks) too big, maximum is %d blocks", agsize, agMax)
	case agsize > dblocks:
		return 0, 0, 0, usagef("agsize (%d blocks) too big, data area is %d blocks", agsize, dblocks)
	case dblocks%agsize != 0 && dblocks%agsize < agMin:
		return 0, 0, 0, usagef("last AG size %d blocks too small, minimum size is %d blocks", dblocks%agsize, agMin)
	case agcount > maxAGNumber+1:
		return 0, 0, 0, usagef("%d allocation groups is too many, maximum is %d", agcount, uint64(maxAGNumber)+1)
	}
	return dblocks, agsize, agcount, nil
}

// initSuperblock is start_superblock_setup with sb_set_features.
func (g *Geometry) initSuperblock() {
	sb := &g.SB
	bs, blog := g.BlockSize, log2(g.BlockSize)
	sb.MagicNum = ondisk.SBMagic
	sb.SectSize = uint16(g.SectorSize)
	sb.SectLog = uint8(log2(g.SectorSize))
	sb.BlockSize = uint32(bs)
	sb.BlockLog = uint8(blog)
	sb.AGBlocks = g.AGBlocks
	sb.AGBlkLog = uint8(ceilLog2(uint64(g.AGBlocks)))
	sb.AGCount = g.AGCount
	sb.DBlocks = g.DBlocks
	sb.InodeSize = uint16(g.InodeSize)
	sb.InodeLog = uint8(log2(g.InodeSize))
	sb.InoPBlock = uint16(bs / g.InodeSize)
	sb.InoPBLog = uint8(blog - log2(g.InodeSize))
	sb.DirBlkLog = uint8(log2(g.DirBlockSize) - blog)
	sb.UUID = g.UUID
	sb.MetaUUID = ondisk.UUID{} // only with the metauuid feature

	sb.VersionNum = ondisk.SBVersion5 | ondisk.SBVersionNlinkBit | ondisk.SBVersionExtFlg |
		ondisk.SBVersionDirV2 | ondisk.SBVersionAlignBit | ondisk.SBVersionLogV2 | ondisk.SBVersionMoreBits
	cluster := inodeBigClusterSize * g.InodeSize / 256
	sb.InoAlignMt = uint32(cluster >> blog)
	if g.DSunit != 0 {
		sb.VersionNum |= ondisk.SBVersionDAlign
	}
	if g.ASCIICI {
		sb.VersionNum |= ondisk.SBVersionBorg
	}
	if g.SectorSize > 512 || g.LogSectorSize > 512 {
		sb.VersionNum |= ondisk.SBVersionSector
		sb.LogSectLog = uint8(log2(g.LogSectorSize))
		sb.LogSectSize = uint16(g.LogSectorSize)
	}
	sb.Features2 = ondisk.SBF2LazySBCount | ondisk.SBF2ProjID32 | ondisk.SBF2CRC | ondisk.SBF2Attr2
	sb.BadFeatures2 = sb.Features2
	sb.FeaturesIncompat = ondisk.IncompatFType
	if g.Finobt {
		sb.FeaturesROCompat |= ondisk.ROCompatFinobt
	}
	if g.Rmapbt {
		sb.FeaturesROCompat |= ondisk.ROCompatRmapbt
	}
	if g.Reflink {
		sb.FeaturesROCompat |= ondisk.ROCompatReflink
	}
	if g.InobtCount {
		sb.FeaturesROCompat |= ondisk.ROCompatInobtCnt
	}
	if g.Bigtime {
		sb.FeaturesIncompat |= ondisk.IncompatBigtime
	}
	if g.Sparse {
		sb.SpinoAlign = sb.InoAlignMt
		sb.InoAlignMt = uint32(64 * g.InodeSize >> blog)
		sb.FeaturesIncompat |= ondisk.IncompatSpinodes
	}
	if g.Nrext64 {
		sb.FeaturesIncompat |= ondisk.IncompatNrext64
	}
	if g.LSunit != 0 {
		sb.LogSUnit = g.LSunit << blog
	} else {
		sb.LogSUnit = 1
	}
	sb.RExtSize = g.RTExtBlocks
}

// logSize is calculate_log_size for an internal log.
func (g *Geometry) logSize(o *Options, logblocks uint64, warn func(string, ...any)) error {
	mp := g.mp
	blog := log2(g.BlockSize)
	minLog := max(uint64(mp.minLogBlocks()), minLogBlocks)
	if o.LogSize == "" && g.DBlocks >= uint64(1<<30)>>blog {
		minLog = max(minLog, uint64(minLogBytes)>>blog)
	}
	maxLog := uint64(mp.agMaxUsable()) - 1
	if maxLog < minLog {
		return usagef("max log size %d smaller than min log size %d, filesystem is too small", maxLog, minLog)
	}
	validate := func() error {
		switch {
		case logblocks < minLog:
			return usagef("log size %d blocks too small, minimum size is %d blocks", logblocks, minLog)
		case logblocks > maxLogBlocks:
			return usagef("log size %d blocks too large, maximum size is %d blocks", logblocks, maxLogBlocks)
		case logblocks<<blog > maxLogBytes:
			return usagef("log size %d bytes too large, maximum size is %d bytes", logblocks<<blog, uint64(maxLogBytes))
		}
		return nil
	}
	if logblocks == 0 {
		logblocks = (g.DBlocks << blog) / 2048 >> blog
		logblocks = max(logblocks, uint64(64)<<(20-blog))
		if g.DBlocks < uint64(300)<<(20-blog) {
			logblocks = minLog
		}
		logblocks = min(max(minLog, logblocks), maxLog)
		logblocks = min(logblocks, maxLogBlocks)
		if logblocks<<blog > maxLogBytes {
			logblocks = maxLogBytes >> blog
		}
		if err := validate(); err != nil {
			return err
		}
	} else if logblocks > maxLog {
		return usagef("internal log size %d too large, must be less than %d", logblocks, maxLog)
	}
	if logblocks > uint64(g.AGBlocks-mp.preallocBlocks) {
		return usagef("internal log size %d too large, must fit in allocation group", logblocks)
	}
	if o.IsSet('l', "agnum") {
		if uint64(o.LogAGNum) >= uint64(g.AGCount) {
			return usagef("log ag number %d too large, must be less than %d", o.LogAGNum, g.AGCount)
		}
		g.LogAGNo = uint32(o.LogAGNum)
	} else {
		g.LogAGNo = g.AGCount / 2
	}
	if g.LogAGNo == 0 {
		// Leave room in AG 0 for the root inode chunk and an aligned
		// allocation (adjust_ag0_internal_logblocks).
		backoff := max(uint64(64*g.InodeSize>>blog)*4, uint64(g.DSunit)*2)
		maxLog -= backoff
		if o.IsSet('l', "size") && logblocks > maxLog {
			return usagef("internal log size %d too large, must be less than %d", logblocks, maxLog)
		}
		logblocks = min(logblocks, maxLog)
	}
	start := uint64(g.LogAGNo)<<g.SB.AGBlkLog | uint64(mp.preallocBlocks)
	sunit := uint64(g.LSunit)
	if sunit == 0 {
		sunit = uint64(g.DSunit)
	}
	if sunit != 0 {
		if start%sunit != 0 {
			start = (start + sunit - 1) / sunit * sunit
		}
		if !g.verifyFSBExt(start, 1) {
			return usagef("Due to stripe alignment, the internal log start (%d) cannot be aligned\nwithin an allocation group.", start)
		}
		if logblocks%sunit != 0 {
			if o.IsSet('l', "size") {
				return usagef("log size %d is not a multiple of the log stripe unit %d", logblocks, sunit)
			}
			tmp := (logblocks + sunit - 1) / sunit * sunit
			if tmp > maxLogBlocks || tmp<<blog > maxLogBytes || tmp > maxLog {
				tmp = logblocks / sunit * sunit
			}
			logblocks = tmp
		}
		if !g.verifyFSBExt(start, logblocks) && logblocks > sunit {
			logblocks -= sunit
		}
		if !g.verifyFSBExt(start, logblocks) {
			return usagef("Due to stripe alignment, the internal log size (%d) is too large.\nMust fit within an allocation group.", logblocks)
		}
	}
	if err := validate(); err != nil {
		return err
	}
	g.LogStart, g.LogBlocks = start, uint32(logblocks)
	return nil
}

// verifyFSBExt is xfs_verify_fsbext: the extent lies inside one AG, past
// the AG headers.
func (g *Geometry) verifyFSBExt(fsb, length uint64) bool {
	if fsb+length <= fsb {
		return false
	}
	ok := func(b uint64) bool {
		agno := b >> g.SB.AGBlkLog
		agbno := b & (1<<g.SB.AGBlkLog - 1)
		if agno >= uint64(g.AGCount) {
			return false
		}
		eoag := uint64(g.AGBlocks)
		if agno == uint64(g.AGCount)-1 {
			eoag = g.DBlocks - agno*uint64(g.AGBlocks)
		}
		return agbno < eoag && agbno > uint64(g.mp.agflBlock)
	}
	end := fsb + length - 1
	return ok(fsb) && ok(end) && fsb>>g.SB.AGBlkLog == end>>g.SB.AGBlkLog
}

// rootAttrs resolves -d rtinherit,projinherit,extszinherit,cowextsize,
// daxinherit into root directory fields, validating the hints as mkfs.xfs.
func (g *Geometry) rootAttrs(o *Options) error {
	limit := min(uint64(1<<21-1), uint64(g.AGBlocks)/2)
	if o.RTInherit {
		g.RootFlags |= ondisk.DiflagRTInherit
	}
	if o.ProjInherit >= 0 {
		g.RootFlags |= ondisk.DiflagProjInherit
		g.RootProjID = uint32(o.ProjInherit)
	}
	if o.ExtSzInherit > 0 {
		if uint64(o.ExtSzInherit) > limit {
			return usagef("illegal extent size hint %d, must be less than %d.", o.ExtSzInherit, limit)
		}
		g.RootFlags |= ondisk.DiflagExtSzInherit
		g.RootExtSize = uint32(o.ExtSzInherit)
	}
	if o.CowExtSize > 0 {
		if uint64(o.CowExtSize) > limit {
			return usagef("illegal CoW extent size hint %d, must be less than %d.", o.CowExtSize, limit)
		}
		g.RootFlags2 |= ondisk.Diflag2CowExtSize
		g.RootCowExtSize = uint32(o.CowExtSize)
	}
	if o.DAXInherit {
		g.RootFlags2 |= ondisk.Diflag2DAX
	}
	return nil
}
