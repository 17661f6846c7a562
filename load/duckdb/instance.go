//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/duckdb/duckdb-go/v2"
)

// rowGroupSize is the number of rows in the row groups DuckDB writes to a
// warehouse file fhirlake opens for writing, a quarter of DuckDB's
// default (122,880).
//
// The parallel insert of a commit writes each full row group as it fills,
// on every core; what is left over (up to a row group per table and
// thread) is compressed by the commit's checkpoint, on one core. With
// the default, every table of a 1 GB export but the two biggest was left
// over: its commit took 0.77-1.07 s, against 0.12-0.19 s with 30,720
// rows, and the file grew from 39 MB to 41 MB. Four alternating full
// loads took 8.96-9.70 s against 9.29-11.75 s, and peaked at 436-460 MB
// of RSS against 568-589 MB. Smaller groups cost more room than they
// save time: 20,480 rows wrote 47 MB; 61,440 committed in 0.69-0.76 s.
// A 10 GB export's full load (88 s) and a 1% run after it (6-7 s) took
// as long either way; its file grew from 371 MB to 386 MB.
//
// DuckDB takes the size from ATTACH, not from the file or a setting, so
// a warehouse file is attached to an in-memory instance (openFile). A
// compaction's copy is attached without it: DuckDB's default.
const rowGroupSize = 30720

// fileCatalog is the name a warehouse file is attached under, the default
// catalog of every connection to it.
const fileCatalog = "warehouse"

// instances holds the one DuckDB instance of each warehouse file this
// process has open. Two instances of one file in a process would both
// write it: DuckDB's file lock keeps other processes out, not another
// instance of the same process. (DuckDB shares an instance by path for
// a file opened by name, but not for one attached.)
var instances = struct {
	sync.Mutex
	byPath map[string]*instance
}{byPath: map[string]*instance{}}

// instance is an in-memory DuckDB instance with one warehouse file
// attached, and how many opens share it.
type instance struct {
	db       *sql.DB
	readOnly bool
	users    int
}

// openFile connects to the warehouse file at path in this process's
// instance of it, making the instance (and the file, if missing and not
// readOnly) when there is none. A read-only open shares a read-write
// instance; a read-write open of a file this process holds read-only
// fails. The returned release closes the instance when its last user
// releases it; the caller closes conn first.
func openFile(ctx context.Context, path string, readOnly bool) (db *sql.DB, conn *sql.Conn, release func() error, err error) {
	key, err := fileKey(path)
	if err != nil {
		return nil, nil, nil, err
	}
	instances.Lock()
	defer instances.Unlock()
	in := instances.byPath[key]
	if in != nil && in.readOnly && !readOnly {
		return nil, nil, nil, fmt.Errorf("this process has %s open read-only; close it before opening it for writing", path)
	}
	if in == nil {
		options := fmt.Sprintf("ROW_GROUP_SIZE %d", rowGroupSize)
		switch {
		case readOnly:
			options = "READ_ONLY"
		case !exists(path):
			// A file keeps the block size it was made with; naming
			// another is an error.
			options += fmt.Sprintf(", BLOCK_SIZE %d", blockSize)
		}
		attachSQL := fmt.Sprintf("ATTACH IF NOT EXISTS %s AS %s (%s); USE %s", sqlString(path), fileCatalog, options, fileCatalog)
		// Every connection of the pool attaches (once per instance) and
		// works in the file's catalog.
		var db *sql.DB
		db, conn, err = connect(ctx, "", func(e driver.ExecerContext) error {
			_, err := e.ExecContext(context.Background(), attachSQL, nil)
			return err
		})
		if err != nil {
			return nil, nil, nil, err
		}
		// An in-memory instance spills to a folder of the working
		// directory; a warehouse's spill (PHI) goes beside its file, as
		// DuckDB puts it for a file opened by name.
		if _, err := conn.ExecContext(ctx, "SET temp_directory = "+sqlString(path+".tmp")); err != nil {
			conn.Close()
			db.Close()
			return nil, nil, nil, fmt.Errorf("spill folder: %w", err)
		}
		in = &instance{db: db, readOnly: readOnly, users: 1}
		instances.byPath[key] = in
	} else {
		in.users++
		if conn, err = in.db.Conn(ctx); err != nil {
			return nil, nil, nil, errors.Join(err, in.release(key))
		}
	}
	var once sync.Once
	release = func() error {
		var err error
		once.Do(func() {
			instances.Lock()
			defer instances.Unlock()
			err = in.release(key)
		})
		return err
	}
	return in.db, conn, release, nil
}

// fileKey is the key of the file at path in instances: its absolute path,
// through links (a link and its file are one file).
func fileKey(path string) (string, error) {
	key, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if file, err := filepath.EvalSymlinks(key); err == nil {
		key = file
	}
	return key, nil
}

// release drops a user of the instance of the file key, closing it when
// it was the last. The caller holds instances.
func (in *instance) release(key string) error {
	in.users--
	if in.users > 0 {
		return nil
	}
	delete(instances.byPath, key)
	return in.db.Close()
}

// sharedFile reports whether more than one open of this process holds
// the warehouse file at path.
func sharedFile(path string) bool {
	key, err := fileKey(path)
	if err != nil {
		return false
	}
	instances.Lock()
	defer instances.Unlock()
	in := instances.byPath[key]
	return in != nil && in.users > 1
}

// connect opens dsn with DuckDB's memory bounded (MemoryEnv), running
// init on each new connection.
func connect(ctx context.Context, dsn string, init func(driver.ExecerContext) error) (*sql.DB, *sql.Conn, error) {
	connector, err := duckdb.NewConnector(dsn, init)
	if err != nil {
		return nil, nil, err
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := settings(ctx, conn); err != nil {
		conn.Close()
		db.Close()
		return nil, nil, err
	}
	return db, conn, nil
}
