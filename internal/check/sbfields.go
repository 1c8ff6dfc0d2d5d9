package check

import "xfskit/ondisk"

// checkSBFields checks the superblock fields the geometry verifier leaves
// alone but xfs_repair judges: stripe geometry, log sector size and stripe
// unit, realtime fields without a realtime device, quota fields without
// quota, and the bytes past the structure (zero in every copy).
func (c *checker) checkSBFields(s *ondisk.Superblock, agno uint32, sector []byte) {
	f := func(format string, a ...any) {
		c.r.agf(agno, "superblock", int64(c.sb.AGToFSB(agno, 0)), format, a...)
	}
	// Stripe and realtime fields, as growfs judges them before writing.
	for _, p := range s.FieldProblems() {
		f("%s", p)
	}
	if s.LogSectSize != 0 || s.LogSectLog != 0 {
		l, ok := log2(uint64(s.LogSectSize))
		if !ok || l != s.LogSectLog || s.LogSectSize < 512 || s.LogSectSize > 32768 {
			f("log sector size %d with log %d is invalid", s.LogSectSize, s.LogSectLog)
		}
	}
	if s.LogSUnit > 1 && (s.LogSUnit%s.BlockSize != 0 || s.LogSUnit > 256*1024) {
		f("log stripe unit %d is not a multiple of the block size up to 256 KiB", s.LogSUnit)
	}
	if s.SharedVN != 0 {
		f("shared_vn %d is not zero", s.SharedVN)
	}
	// mkfs.xfs leaves inprogress set in the secondaries; only the primary
	// says whether it finished.
	if agno == 0 && s.InProgress != 0 {
		f("inprogress is set: mkfs did not finish")
	}
	if agno == 0 && s.Flags != 0 {
		f("sb_flags %#x are not zero", s.Flags)
	}
	if s.VersionNum&ondisk.SBVersionQuotaBit == 0 {
		for _, q := range []struct {
			name string
			ino  uint64
		}{{"uquotino", s.UQuotIno}, {"gquotino", s.GQuotIno}, {"pquotino", s.PQuotIno}} {
			if q.ino != 0 && q.ino != ondisk.NullIno {
				f("%s %d set without the quota feature", q.name, q.ino)
			}
		}
		if s.QFlags != 0 {
			f("quota flags %#x set without the quota feature", s.QFlags)
		}
	}
	if !s.HasMetaUUID() && !s.MetaUUID.IsZero() {
		f("meta_uuid %s set without the meta-UUID feature", s.MetaUUID)
	}
	// A zero bad_features2 is legal; only a different non-zero value is not.
	if s.BadFeatures2 != 0 && s.Features2 != s.BadFeatures2 {
		f("features2 %#x and bad_features2 %#x differ", s.Features2, s.BadFeatures2)
	}
	if s.IsV5() && s.Features2&ondisk.SBF2CRC == 0 {
		f("features2 %#x lacks the CRC bit of a v5 filesystem", s.Features2)
	}
	for i := ondisk.SBSize; i < len(sector); i++ {
		if sector[i] != 0 {
			f("byte %d past the superblock is %#x, not zero", i, sector[i])
			break
		}
	}
	if agno == 0 {
		return
	}
	p := c.sb
	if s.Flags != 0 {
		f("secondary sb_flags %#x are not zero", s.Flags)
	}
	// versionnum and features2 are compared with the other shared fields
	// (ondisk.SharedDiffs, checkSuperblocks).
	// Log-incompat features are set and cleared in the primary while
	// mounted; secondaries may lag (xfs_repair only resyncs them).
	if s.FeaturesCompat != p.FeaturesCompat {
		f("secondary compat features %#x differ from the primary's %#x", s.FeaturesCompat, p.FeaturesCompat)
	}
}

func log2(v uint64) (uint8, bool) {
	if v == 0 || v&(v-1) != 0 {
		return 0, false
	}
	var l uint8
	for v > 1 {
		v >>= 1
		l++
	}
	return l, true
}
