package engine

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// sfBenchDB builds a DB of about SHOAL_BENCH_MB megabytes (default 20).
func sfBenchDB(b *testing.B) (string, int64) {
	b.Helper()
	mb := 20
	if s := os.Getenv("SHOAL_BENCH_MB"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			mb = n
		}
	}
	p := filepath.Join(b.TempDir(), "bench.db")
	db := sfOpen(b, p)
	db.SetMaxOpenConns(1)
	sfExec(b, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	sfExec(b, db, "CREATE INDEX t_v ON t(substr(v, 1, 16))")
	rows := mb * 1024 * 1024 / 1050 // 1000-byte blobs plus index and page overhead
	sfExec(b, db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?)
		INSERT INTO t(v) SELECT randomblob(1000) FROM n`, rows)
	db.Close()
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return p, st.Size()
}

// sfCopySync is the baseline: a plain byte copy plus fsync of the copy and
// its directory (not consistent under concurrent writers; the cost floor).
func sfCopySync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// BenchmarkBackupVsCopy measures Backup (online backup API + quick_check +
// fsyncs) against io.Copy+fsync of the same file in the same run.
func BenchmarkBackupVsCopy(b *testing.B) {
	p, size := sfBenchDB(b)
	out := b.TempDir()
	mb := float64(size) / (1 << 20)
	var tBackup, tCopy time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		bak, err := Backup(context.Background(), p, BackupOptions{Dir: out})
		if err != nil {
			b.Fatal(err)
		}
		tBackup += time.Since(start)
		dst := filepath.Join(out, "copy-"+strconv.Itoa(i))
		start = time.Now()
		if err := sfCopySync(p, dst); err != nil {
			b.Fatal(err)
		}
		tCopy += time.Since(start)
		b.StopTimer()
		os.Remove(bak)
		os.Remove(dst)
		b.StartTimer()
	}
	bps := mb * float64(b.N) / tBackup.Seconds()
	cps := mb * float64(b.N) / tCopy.Seconds()
	b.ReportMetric(mb, "db-MB")
	b.ReportMetric(bps, "backup-MB/s")
	b.ReportMetric(cps, "copy-MB/s")
	b.ReportMetric(bps/cps, "backup/copy")
}
