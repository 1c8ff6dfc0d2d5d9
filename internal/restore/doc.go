// Package restore is xfskit's restore: it reads dump streams
// (internal/stream) and recreates the dumped tree in a destination
// directory on any filesystem.
//
// A session is read from all its streams at once. Every stream starts with
// the same directory section (the whole directory structure at dump time),
// so the tree is known before any file arrives: restore merges the
// sections (a damaged copy in one stream is replaced by an intact one in
// another), creates every directory, and then each stream's goroutine
// writes its share of the files. Directory modes, owners, attributes and
// times are set last, deepest first, so that creating their contents does
// not undo them.
//
// Safety against hostile streams: every name is checked (no '/', NUL, "."
// or ".."), and nothing is ever resolved through a symlink. Directories are
// opened one component at a time with O_NOFOLLOW|O_DIRECTORY relative to
// the descriptor of their parent, starting from the descriptor of the
// destination; files are created with O_CREAT|O_EXCL|O_NOFOLLOW relative
// to a directory descriptor, and every metadata call uses the *at form
// with AT_SYMLINK_NOFOLLOW (or a descriptor of the object itself).
//
// Cumulative restores (-r) keep a state directory: the tree as of the last
// applied session (inode → names), the chain of applied sessions, and,
// while a session is being applied, an in-progress marker and a journal.
// Applying the next session compares the recorded tree with the new
// directory section: directories and files that moved are parked in an
// orphanage directory inside the destination and put in their new places,
// names that disappeared are removed, and files of the new session are
// written over. Every step is idempotent or journalled, so an interrupted
// restore continues with Resume (-R).
package restore
