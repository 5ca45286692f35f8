package sm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The replica directory holds generation-named database files and a CURRENT
// file naming the live one. A received snapshot is always installed under a
// new name, because renaming it over the old path would pair the new main
// file with the old -wal and -shm (DRAGONBOAT.md 6.1).
const (
	currentFile = "CURRENT"
	dbPrefix    = "db-"
	dbSuffix    = ".sqlite"
	tmpSuffix   = ".tmp"
)

func dbName(gen uint64) string { return dbPrefix + strconv.FormatUint(gen, 10) + dbSuffix }

// parseGen extracts the generation from a database file name.
func parseGen(name string) (uint64, bool) {
	if !strings.HasPrefix(name, dbPrefix) || !strings.HasSuffix(name, dbSuffix) {
		return 0, false
	}
	g, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, dbPrefix), dbSuffix), 10, 64)
	return g, err == nil && g > 0
}

// readCurrent returns the live generation, or 0 if there is none yet.
func readCurrent(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read CURRENT: %w", err)
	}
	g, ok := parseGen(strings.TrimSpace(string(b)))
	if !ok {
		return 0, fmt.Errorf("%w: CURRENT holds %q", ErrStorage, b)
	}
	return g, nil
}

// writeCurrent switches the live generation atomically: write a temporary
// file, fsync it, rename it over CURRENT, fsync the directory.
func writeCurrent(dir string, gen uint64) error {
	tmp := filepath.Join(dir, currentFile+tmpSuffix)
	if err := writeFileSync(tmp, []byte(dbName(gen)+"\n")); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, currentFile)); err != nil {
		return fmt.Errorf("rename CURRENT: %w", err)
	}
	return syncDir(dir)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// removeStale deletes every database generation but keep (with its -wal and
// -shm) and, when tmpToo, every temporary file: leftovers of a crash
// mid-install or mid-snapshot. Only Open may remove temporary files: once
// the node runs, a staged boot, a backup or an incoming snapshot may be
// writing one.
func removeStale(dir string, keep uint64, tmpToo bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	keepName := dbName(keep)
	for _, e := range ents {
		name := e.Name()
		base := strings.TrimSuffix(strings.TrimSuffix(name, "-wal"), "-shm")
		isTmp := strings.HasSuffix(name, tmpSuffix)
		if isTmp && !tmpToo {
			continue
		}
		stale := isTmp
		if _, isDB := parseGen(strings.TrimSuffix(base, tmpSuffix)); isDB && base != keepName {
			stale = true
		}
		if stale {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %s: %w", name, err)
			}
		}
	}
	return nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
