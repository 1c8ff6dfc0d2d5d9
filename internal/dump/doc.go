// Package dump is xfskit's dump: it reads an unmounted XFS v5 image or
// device directly (read-only; a dirty log is replayed in memory) and writes dump
// streams (internal/stream) recorded in the inventory.
//
// A session makes three passes. The first walks every allocated inode in
// inode order with large sequential reads, keeping a small record per
// inode (type, data size, whether it changed since the base session). The
// selection then reads the directories it needs (a level at a time, in
// parallel) and takes what is reachable from the root or from the
// subtrees (with the directories on the way to them, holding only the
// entries on the way),
// and of the non-directory inodes those that changed (all of them at level
// 0), and cuts them into one contiguous inode range per stream, balanced
// by data bytes plus a per-file cost. Finally every stream is written
// concurrently: the whole directory section (the same in every stream, so
// that each stream can be restored on its own and a restore can apply
// deletions and renames), then its files in inode order, each once however
// many names it has (the directory section gives the names), with file
// data read through the engine's data map: holes and unwritten extents
// stay holes.
//
// Resumption: each stream's options and inode range are stored with its
// inventory checkpoints. A resumed session recomputes the same selection
// from the unchanged image (checked with a fingerprint of the superblock
// counters and the log head) and continues every stream after the last
// checkpoint that is intact in its media files.
package dump
