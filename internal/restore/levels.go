package restore

import "sync"

// levelShare is the fewest directories of one depth worth a goroutine.
const levelShare = 32

// byLevels calls fn for each of dirs (breadth-first, as tree.order), one
// depth after another: top-down, or deepest first with up. Work on a
// directory never depends on another of the same depth, so each depth is
// cut into runs (siblings stay together, and so mostly in one run) that
// goroutines take in parallel, each with a directory cache of its own
// from newCache, kept from one depth to the next.
func byLevels(dirs []*dirNode, up bool, newCache func() *dirCache, fn func(c *dirCache, d *dirNode)) {
	var levels [][]*dirNode
	for i := 0; i < len(dirs); {
		j := i + 1
		for j < len(dirs) && dirs[j].depth == dirs[i].depth {
			j++
		}
		levels = append(levels, dirs[i:j])
		i = j
	}
	caches := make([]*dirCache, appliers)
	defer func() {
		for _, c := range caches {
			if c != nil {
				c.close()
			}
		}
	}()
	cache := func(i int) *dirCache {
		if caches[i] == nil {
			caches[i] = newCache()
		}
		return caches[i]
	}
	for k := range levels {
		lv := levels[k]
		if up {
			lv = levels[len(levels)-1-k]
		}
		n := min(appliers, len(lv)/levelShare)
		if n <= 1 {
			c := cache(0)
			for _, d := range lv {
				fn(c, d)
			}
			continue
		}
		var wg sync.WaitGroup
		for i := range n {
			run := lv[i*len(lv)/n : (i+1)*len(lv)/n]
			c := cache(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, d := range run {
					fn(c, d)
				}
			}()
		}
		wg.Wait()
	}
}
