package pack

import "xfskit/ondisk"

// daChild is a block below a da-btree node: the largest hash it holds and
// its logical block.
type daChild struct {
	hash uint32
	da   uint64
}

// daTree lays out a da-btree (directory leafn blocks or attribute leaves
// under interior nodes): the root at a fixed logical block, the leaves
// right after it, then the other interior nodes.
type daTree struct {
	root    uint64 // logical block of the root node
	step    uint64 // filesystem blocks per da block
	nleaves int
	maxEnts int
	levels  []int    // interior nodes per level, from level 1 up; the last is 1
	leaves  []lblock // filled in by the caller, in leaf order
}

func newDATree(root, step uint64, nleaves, maxEnts int) *daTree {
	t := &daTree{root: root, step: step, nleaves: nleaves, maxEnts: maxEnts}
	for n := nleaves; ; {
		k := (n + maxEnts - 1) / maxEnts
		t.levels = append(t.levels, k)
		if k <= 1 {
			break
		}
		n = k
	}
	return t
}

// leafDA is the logical block of leaf i.
func (t *daTree) leafDA(i int) uint64 { return t.root + t.step*uint64(1+i) }

// blockCount is the number of da blocks of the tree, leaves included.
func (t *daTree) blockCount() int {
	n := t.nleaves
	for _, k := range t.levels {
		n += k
	}
	return n
}

// blocks returns the root, the leaves and the other interior nodes in
// logical order, the nodes built over children (one per leaf).
func (t *daTree) blocks(children []daChild, fpb int, owner uint64, uuid ondisk.UUID) []lblock {
	next := t.leafDA(t.nleaves) // first block after the leaves
	var root lblock
	var nodes []lblock
	for li, count := range t.levels {
		level := uint16(li + 1)
		groups := splitEven(len(children), t.maxEnts)
		das := make([]uint64, count)
		for i := range das {
			if count == 1 {
				das[i] = t.root
			} else {
				das[i] = next
				next += t.step
			}
		}
		parents := make([]daChild, count)
		for i, g := range groups {
			ents := make([]ondisk.DANodeEntry, 0, g[1]-g[0])
			for _, c := range children[g[0]:g[1]] {
				ents = append(ents, ondisk.DANodeEntry{Hashval: c.hash, Before: uint32(c.da)})
			}
			var back, forw uint32
			if i > 0 {
				back = uint32(das[i-1])
			}
			if i+1 < count {
				forw = uint32(das[i+1])
			}
			b := lblock{off: das[i], n: fpb, fill: func(buf []byte, daddr uint64) error {
				n := &ondisk.DA3Node{Info: ondisk.DA3BlkInfo{Magic: ondisk.DA3NodeMagic, Forw: forw, Back: back,
					Blkno: daddr, UUID: uuid, Owner: owner}, Level: level, Entries: ents}
				return n.Encode(buf)
			}}
			if count == 1 {
				root = b
			} else {
				nodes = append(nodes, b)
			}
			parents[i] = daChild{hash: ents[len(ents)-1].Hashval, da: das[i]}
		}
		children = parents
	}
	out := append([]lblock{root}, t.leaves...)
	return append(out, nodes...)
}
