package ondisk

import "fmt"

// CorruptError reports a structure that fails verification. It is a typed
// error so the checker can count and classify findings; I/O errors are never
// CorruptErrors.
type CorruptError struct {
	Structure string // e.g. "superblock", "AGF", "inode", "dir3 data block"
	Where     string // e.g. "AG 2", "inode 1234", "daddr 8192"
	Field     string // offending field, may be empty
	Reason    string // what is wrong
}

func (e *CorruptError) Error() string {
	s := e.Structure
	if e.Where != "" {
		s = e.Where + ": " + s
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Reason
}

// Corrupt builds a *CorruptError with a formatted reason.
func Corrupt(structure, where, field, format string, args ...any) *CorruptError {
	return &CorruptError{Structure: structure, Where: where, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// shortErr reports a buffer too small for the structure it should hold.
func shortErr(structure string, have, want int) *CorruptError {
	return Corrupt(structure, "", "", "buffer holds %d bytes, need %d", have, want)
}
