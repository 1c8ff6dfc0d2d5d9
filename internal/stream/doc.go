// Package stream implements the xfskit dump stream: the byte format that
// dump writes and restore reads. It knows nothing about XFS; callers hand
// it inodes, directories, xattrs and data extents in its own record types.
// The byte-level format is specified in docs/stream-format.md.
//
// # Layers
//
// A stream is a logical byte sequence of framed records (header, directory
// section, inode-ordered file records, END, index, trailer). Each record has
// a sync marker, type, length, sequence number, inode number and CRC32c, so
// a reader that hits damage scans forward to the next record that verifies
// and reports exactly what was lost. The logical stream is cut into chunks
// (DefaultChunkSize logical bytes) that are compressed independently (zstd by
// default, xz or none) and framed with their own uncompressed header, so a
// damaged chunk costs only itself. Chunks are written to one or more media
// files, each starting with a media header; optionally every write is a
// fixed-size block (tape).
//
// # Writing (dump)
//
//	w, err := stream.NewWriter(f, stream.Header{SessionID: id, Level: 0, …},
//		stream.WriterOptions{Compression: stream.CompressZstd})
//	for each directory in ascending inode order:
//		w.WriteDir(stream.Dir{Meta: …, Parent: …, Xattrs: …, Entries: …})
//		// or BeginDir / AddEntries… / EndDir for huge directories
//	for each other inode in ascending inode order:
//		w.WriteFile(meta, xattrs, []stream.DataExtent{{Offset, Length, R}, …})
//		// or BeginFile / WriteData… / EndFile to stream extents one by one
//		w.WriteHardLink(stream.HardLink{Ino: ino, Parent: dir, Name: name}) // optional extra names
//	err = w.Close() // END, index, trailer; flushes; does not close f
//
// Extents must be ascending and non-overlapping; what they do not cover is a
// hole and takes no space. Data is streamed in pieces of at most
// MaxDataPiece bytes, so memory stays bounded whatever the file size: a
// few chunk buffers per compression goroutine, the compressor state and a
// few bytes per inode for the index. Compression runs in Concurrency
// goroutines, overlapping with the caller.
//
// Media splitting: set WriterOptions.MaxMediaSize and OpenMedia; w is media
// file 0, OpenMedia(k) gives file k (see MediaName: name.000, name.001, …).
// Chunks never straddle media files, and each media file names its session,
// stream, sequence number and logical offset, so they can be read back in
// any order. Fixed blocks: set WriterOptions.BlockSize; every Write on a
// media file is then exactly that size and each media file ends padded with
// zeros.
//
// Checkpoints: after every directory, file and hard link, and after the
// directory section, the Writer records a Checkpoint (Writer.Checkpoint).
// Once all of its bytes have been handed to the media it is durable:
// OnCheckpoint is called and Writer.Durable returns it. To continue an
// interrupted dump, open the existing media files read-write and call
// Resume: it verifies what is there, cuts the output after the last
// complete checkpoint (re-reading the partly kept chunk, so chunk and block
// boundaries stay as they were) and returns a Writer plus the checkpoint.
// The caller then repeats what follows it: with Phase PhaseDirs the
// directories after LastIno (all of them if Dirs is 0) and then every file;
// with PhaseFiles the files after LastIno (all if Files is 0). Equivalently,
// skip the first Dirs+Files+HardLinks writer calls. The finished stream is
// byte-for-byte the stream an uninterrupted run would have written.
//
// # Reading (restore)
//
//	r, err := stream.NewReader(f, stream.ReaderOptions{Name: path})
//	// or stream.NewMediaReader([]stream.Media{{Name, R}, …}, opts) for a
//	// split stream, media files in any order
//	hdr, ok := r.Header()
//	for {
//		e, err := r.Next()
//		if err == io.EOF { break }
//		switch e := e.(type) {
//		case *stream.Dir:      // e.Entries complete unless e.Damaged
//		case *stream.File:     // e.Meta, e.Xattrs; data via e.CopyTo(w) or e.NextExtent()
//		case *stream.HardLink: // another name for an inode already returned
//		}
//	}
//	if !r.Complete() { report r.Damage() }
//
// Directories come first (all of them, so restore can compute deletions and
// renames before touching files), then files in inode order. A File's data
// must be read before the next call to Next (unread data is skipped).
//
// The reader treats its input as hostile: every length is capped before
// anything is allocated (names ≤ MaxNameLen, xattr values ≤ MaxXattrValue,
// records ≤ MaxRecordPayload, chunks ≤ MaxChunkSize, per-directory and
// per-inode totals by ReaderOptions), decompression is bounded by the chunk
// header, names that could escape a restore target ("", ".", "..", "/" or
// NUL inside) are rejected, and it never panics. Damage does not stop it: a
// bad chunk or record is skipped, the reader resynchronises on the next good
// record, and Damage lists each incident with the media file, physical
// offset, lost logical range, lost record numbers and the affected inodes
// (from context and from the trailing index). A File touched by damage has
// Damaged set and NextExtent/CopyTo return a *DamageError; a Dir has
// Damaged set and its entry list must not be used to delete names. Next
// returns an error only for I/O errors of the underlying reader.
package stream
