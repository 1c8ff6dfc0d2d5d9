// Package e2e holds end-to-end tests: they drive the built tools (mkfs,
// check, growfs, dump, restore, estimate) through the workflows users run —
// image building without root, growing before boot, offline checks,
// backups and selective restores — and check every step against the
// kernel, xfs_repair and internal/treecmp. It has no code of its own.
package e2e
