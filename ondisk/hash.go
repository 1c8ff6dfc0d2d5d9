package ondisk

import "math/bits"

// DAHash is the directory and extended attribute name hash
// (xfs_da_hashname): the hash is rotated left 7 bits before each byte is
// XORed in. The loop below folds four bytes per step, which gives the same
// value because a byte shifted left by at most 21 never wraps.
func DAHash(name []byte) uint32 {
	var h uint32
	for len(name) >= 4 {
		h = uint32(name[0])<<21 ^ uint32(name[1])<<14 ^ uint32(name[2])<<7 ^
			uint32(name[3]) ^ bits.RotateLeft32(h, 28)
		name = name[4:]
	}
	for _, c := range name {
		h = uint32(c) ^ bits.RotateLeft32(h, 7)
	}
	return h
}

// ASCIICIFold maps a byte the way case-insensitive (ascii-ci) XFS
// directories do before hashing and comparing: A-Z and the Latin-1
// upper-case letters 0xc0-0xd6 and 0xd8-0xde become lower case; every other
// byte, including UTF-8 sequences, is left alone.
func ASCIICIFold(c byte) byte {
	if c >= 'A' && c <= 'Z' || c >= 0xc0 && c <= 0xd6 || c >= 0xd8 && c <= 0xde {
		return c + ('a' - 'A')
	}
	return c
}

// DAHashASCIICI is the name hash of ascii-ci directories: DAHash over the
// case-folded name.
func DAHashASCIICI(name []byte) uint32 {
	var h uint32
	for _, c := range name {
		h = uint32(ASCIICIFold(c)) ^ bits.RotateLeft32(h, 7)
	}
	return h
}

// EqualASCIICI compares two names the way ascii-ci directories do.
func EqualASCIICI(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && ASCIICIFold(a[i]) != ASCIICIFold(b[i]) {
			return false
		}
	}
	return true
}

// IsASCIICI reports a filesystem formatted with case-insensitive
// directories (mkfs -n version=ci); attribute names are never folded.
func IsASCIICI(sb *Superblock) bool { return sb.VersionNum&SBVersionBorg != 0 }

// DirHash hashes a directory entry name as the filesystem's directories do.
func DirHash(sb *Superblock, name []byte) uint32 {
	if IsASCIICI(sb) {
		return DAHashASCIICI(name)
	}
	return DAHash(name)
}
