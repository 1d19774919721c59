package tenants

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
)

// walkReaders is how many tenant directories the walk reads at once, and
// walkWindow how far ahead of the visit it may read. A walk of 100,000
// tenant directories is one listing (or one lstat) per directory: on a cold
// cache each waits for the disk, and several in flight keep it busy where
// one after the other would leave it idle between reads. The directories
// are handed to the readers aheadGroupSize at a time: on a warm cache the
// hand-offs between goroutines, not the reads, were what a hand-off per
// directory cost (scheduler wake-ups, about 2 per directory).
const (
	walkReaders    = 16
	walkWindow     = 256
	aheadGroupSize = 8
)

// aheadEntry is one entry of a tenant directory, read ahead.
type aheadEntry struct {
	name string
	mode fs.FileMode
}

// aheadSlot is one entry of dir matching segs[0], with (for a directory)
// what its reader found in it for segs[1].
type aheadSlot struct {
	name    string
	mode    fs.FileMode
	entries []aheadEntry
	err     error
}

// aheadGroup is consecutive slots of the listing, read by one reader.
type aheadGroup struct {
	slots []aheadSlot
	done  chan struct{} // closed once every slot is read
}

// walkAhead walks dir for segs (two segments: the tenant directories, then
// the DB files in each): it lists dir, and walkReaders goroutines read the
// matching subdirectories (a listing, or an lstat for a literal last
// segment) up to walkWindow ahead, while the entries are visited in the
// listing's order, exactly as the sequential walk visits them: same order,
// same skips, the first error in that order ends the walk.
func walkAhead(ctx context.Context, dir, rel string, segs []string, fn func(tenant, path string) error, skip func(tenant, reason string)) error {
	seg, next := segs[0], segs[1]
	quit := make(chan struct{})
	order := make(chan *aheadGroup, walkWindow/aheadGroupSize)
	work := make(chan *aheadGroup, walkWindow/aheadGroupSize)
	var listErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(work)
		b := &aheadGroup{done: make(chan struct{})}
		send := func() error {
			select {
			case work <- b:
			case <-quit:
				return errStopped
			}
			select {
			case order <- b:
			case <-quit:
				return errStopped
			}
			b = &aheadGroup{done: make(chan struct{})}
			return nil
		}
		listErr = readDir(dir, func(name string, mode fs.FileMode) error {
			if ok, _ := filepath.Match(seg, name); !ok {
				return nil
			}
			b.slots = append(b.slots, aheadSlot{name: name, mode: mode})
			if len(b.slots) < aheadGroupSize {
				return nil
			}
			return send()
		})
		if len(b.slots) > 0 && listErr != errStopped {
			send() // the entries listed before an error are visited, as in the sequential walk
		}
	}()
	for range walkReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				for i := range b.slots {
					s := &b.slots[i]
					if !s.mode.IsDir() {
						continue // visited as it is (a symlink, a file)
					}
					select {
					case <-quit:
					default:
						s.entries, s.err = readAhead(filepath.Join(dir, s.name), next)
					}
				}
				close(b.done)
			}
		}()
	}
	stop := func() {
		close(quit)
		for range order { // let the lister see quit
		}
		wg.Wait()
	}
	for b := range order {
		<-b.done
		for i := range b.slots {
			if err := ctx.Err(); err != nil {
				stop()
				return err
			}
			if err := visitAhead(ctx, dir, rel, segs, &b.slots[i], fn, skip); err != nil {
				stop()
				return err
			}
		}
	}
	wg.Wait()
	if listErr != nil {
		return fmt.Errorf("cannot read %s: %w", dir, listErr)
	}
	return nil
}

var errStopped = errors.New("walk stopped")

// readAhead reads what a tenant directory holds for the last segment.
func readAhead(dir, seg string) ([]aheadEntry, error) {
	if !hasMeta(seg) {
		st, err := os.Lstat(filepath.Join(dir, seg))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		return []aheadEntry{{seg, st.Mode()}}, nil
	}
	var out []aheadEntry
	err := readDir(dir, func(name string, mode fs.FileMode) error {
		if ok, _ := filepath.Match(seg, name); ok {
			out = append(out, aheadEntry{name, mode})
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("cannot read %s: %w", dir, err)
	}
	return out, nil
}

// visitAhead visits one slot as the sequential walk would have: the entry
// itself (a symlink is skipped, a file ignored), then what its directory
// held, then its reading error.
func visitAhead(ctx context.Context, dir, rel string, segs []string, s *aheadSlot, fn func(tenant, path string) error, skip func(tenant, reason string)) error {
	if !s.mode.IsDir() || s.mode&fs.ModeSymlink != 0 {
		return visitEntry(ctx, dir, rel, segs, s.name, s.mode, fn, skip)
	}
	sub, subRel := filepath.Join(dir, s.name), s.name
	if rel != "" {
		subRel = path.Join(rel, s.name)
	}
	for _, e := range s.entries {
		if err := visitEntry(ctx, sub, subRel, segs[1:], e.name, e.mode, fn, skip); err != nil {
			return err
		}
	}
	return s.err
}
