package xfs

import "xfskit/ondisk"

// Test hooks for the external tests: which index path a lookup took and
// how many directory or attribute blocks it read.

func (f *FS) LookupWithStats(dir *Inode, name []byte) (DirEntry, string, int, error) {
	var st dirLookupStats
	e, err := f.dirLookup(dir, name, &st)
	return e, st.path, st.blocks, err
}

func (f *FS) GetXattrWithStats(ip *Inode, ns ondisk.AttrNamespace, name []byte) ([]byte, int, error) {
	v, st, err := f.getXattr(ip, ns, name)
	return v, st.blocks, err
}
