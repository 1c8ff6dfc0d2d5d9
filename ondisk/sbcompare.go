package ondisk

import "fmt"

// SharedDiffs compares two copies of the superblock (the primary p and a
// secondary s) on the fields every copy holds alike once mkfs or growfs
// wrote them, and returns one "field p-value/s-value" string per
// difference. Left out are what legitimately differs: the counters and
// label, dblocks and agcount of an older grow, stripe geometry (a mount
// option rewrites the primary's), imax_pct (growfs -m), the root and
// realtime inode numbers (mkfs.xfs leaves them null in most secondaries,
// a kernel grow copies them), the quota inodes, the feature bits the kernel adds to the
// primary only (attr, nlink, quota, log-incompat features) and
// needsrepair.
func SharedDiffs(p, s *Superblock) []string {
	var out []string
	d := func(field string, a, b uint64) {
		if a != b {
			out = append(out, fmt.Sprintf("%s %d/%d", field, a, b))
		}
	}
	const mayDiffer = SBVersionAttrBit | SBVersionNlinkBit | SBVersionQuotaBit
	if (p.VersionNum^s.VersionNum)&^mayDiffer != 0 {
		out = append(out, fmt.Sprintf("versionnum %#x/%#x", p.VersionNum, s.VersionNum))
	}
	if p.UUID != s.UUID {
		out = append(out, fmt.Sprintf("uuid %s/%s", p.UUID, s.UUID))
	}
	d("blocksize", uint64(p.BlockSize), uint64(s.BlockSize))
	d("sectsize", uint64(p.SectSize), uint64(s.SectSize))
	d("inodesize", uint64(p.InodeSize), uint64(s.InodeSize))
	d("agblocks", uint64(p.AGBlocks), uint64(s.AGBlocks))
	d("logstart", p.LogStart, s.LogStart)
	d("logblocks", uint64(p.LogBlocks), uint64(s.LogBlocks))
	d("rextsize", uint64(p.RExtSize), uint64(s.RExtSize))
	d("rbmblocks", uint64(p.RBMBlocks), uint64(s.RBMBlocks))
	d("rblocks", p.RBlocks, s.RBlocks)
	d("rextents", p.RExtents, s.RExtents)
	d("rextslog", uint64(p.RExtSLog), uint64(s.RExtSLog))
	d("inoalignmt", uint64(p.InoAlignMt), uint64(s.InoAlignMt))
	d("dirblklog", uint64(p.DirBlkLog), uint64(s.DirBlkLog))
	d("logsectsize", uint64(p.LogSectSize), uint64(s.LogSectSize))
	d("logsunit", uint64(p.LogSUnit), uint64(s.LogSUnit))
	d("features2", uint64(p.Features2), uint64(s.Features2))
	d("features_ro_compat", uint64(p.FeaturesROCompat), uint64(s.FeaturesROCompat))
	d("features_incompat", uint64(p.FeaturesIncompat&^IncompatNeedsRepair), uint64(s.FeaturesIncompat&^IncompatNeedsRepair))
	return out
}

// FieldProblems returns what is wrong with the stripe and realtime fields,
// which Verify leaves alone but the kernel refuses to mount with: a stripe
// unit and width that are not both set or not multiples, a stripe unit
// without the data alignment bit, realtime sizes without a realtime
// section (or a section without them), a realtime extent size out of
// range.
func (s *Superblock) FieldProblems() []string {
	var out []string
	if (s.Unit == 0) != (s.Width == 0) || s.Unit != 0 && s.Width%s.Unit != 0 {
		out = append(out, fmt.Sprintf("stripe width %d is not a multiple of stripe unit %d", s.Width, s.Unit))
	}
	if s.Unit != 0 && s.VersionNum&SBVersionDAlign == 0 {
		out = append(out, fmt.Sprintf("stripe unit %d set without the data alignment feature bit", s.Unit))
	}
	if s.RBlocks != 0 && (s.RExtents == 0 || s.RBMBlocks == 0) {
		out = append(out, fmt.Sprintf("rblocks %d without realtime extents or bitmap (rextents %d, rbmblocks %d)", s.RBlocks, s.RExtents, s.RBMBlocks))
	}
	if s.RBlocks == 0 && (s.RExtents != 0 || s.RBMBlocks != 0 || s.RExtSLog != 0 || s.FRExtents != 0) {
		out = append(out, fmt.Sprintf("realtime fields set (rextents %d, rbmblocks %d, rextslog %d, frextents %d) without a realtime device", s.RExtents, s.RBMBlocks, s.RExtSLog, s.FRExtents))
	}
	if rt := uint64(s.RExtSize) * uint64(s.BlockSize); s.RExtSize == 0 || rt > 1<<30 {
		out = append(out, fmt.Sprintf("realtime extent size %d blocks is out of range", s.RExtSize))
	}
	return out
}
