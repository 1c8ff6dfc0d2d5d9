package xfs

import (
	"fmt"

	"xfskit/ondisk"
)

// Sector indexes of the AG headers, for ReadAGHeader.
const (
	agSectorAGF  = 1
	agSectorAGI  = 2
	agSectorAGFL = 3
)

func (f *FS) checkAGNo(agno uint32, what string) error {
	if agno >= f.SB.AGCount {
		return fmt.Errorf("%s: %s of AG %d: filesystem has %d AGs: %w", f.name, what, agno, f.SB.AGCount, ErrOutOfRange)
	}
	return nil
}

// AGF reads, decodes and verifies the AGF of AG agno. Verification failures
// are *ondisk.CorruptError located at "AG n"; the decoded header is returned
// with them so that a checker can still look at it.
func (f *FS) AGF(agno uint32) (*ondisk.AGF, error) {
	if err := f.checkAGNo(agno, "AGF"); err != nil {
		return nil, err
	}
	buf, err := f.ReadAGHeader(agno, agSectorAGF)
	if err != nil {
		return nil, err
	}
	a, err := ondisk.DecodeAGF(buf)
	if err != nil {
		return nil, err
	}
	return a, a.Verify(buf, agno, f.SB)
}

// AGI reads, decodes and verifies the AGI of AG agno (see AGF for errors).
func (f *FS) AGI(agno uint32) (*ondisk.AGI, error) {
	if err := f.checkAGNo(agno, "AGI"); err != nil {
		return nil, err
	}
	buf, err := f.ReadAGHeader(agno, agSectorAGI)
	if err != nil {
		return nil, err
	}
	a, err := ondisk.DecodeAGI(buf)
	if err != nil {
		return nil, err
	}
	return a, a.Verify(buf, agno, f.SB)
}

// AGFL reads, decodes and verifies the AGFL of AG agno (see AGF for errors).
// Use (*ondisk.AGFL).FreeList with the AGF for the blocks actually on the list.
func (f *FS) AGFL(agno uint32) (*ondisk.AGFL, error) {
	if err := f.checkAGNo(agno, "AGFL"); err != nil {
		return nil, err
	}
	buf, err := f.ReadAGHeader(agno, agSectorAGFL)
	if err != nil {
		return nil, err
	}
	a, err := ondisk.DecodeAGFL(buf)
	if err != nil {
		return nil, err
	}
	return a, a.Verify(buf, agno, f.SB)
}
