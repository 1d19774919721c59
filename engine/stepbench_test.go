package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// What a script or transaction:false step costs beyond the step itself: the
// private copy, and bringing it back (the watch, the write lock, every page)
// on a DB of SHOAL_BENCH_MB megabytes (default 20), against io.Copy + fsync
// of the same file in the same run.
func BenchmarkStepCopyRoundTrip(b *testing.B) {
	p, size := sfBenchDB(b)
	mb := float64(size) / (1 << 20)
	c := context.Background()
	db, err := openDB(p, 30*time.Second, false)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(c)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	release := sqliteInUse(p)
	defer release()
	cp := p + stepCopySuffix
	var copyT, backT, ioT time.Duration
	for i := 0; i < b.N; i++ {
		w, err := newLiveWatch(c, p, conn, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.mark(c); err != nil {
			b.Fatal(err)
		}
		s := time.Now()
		if err := makeStepCopy(c, p, conn, cp, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		copyT += time.Since(s)
		s = time.Now()
		if err := copyBack(c, conn, cp, 30*time.Second, w); err != nil {
			b.Fatal(err)
		}
		backT += time.Since(s)
		w.close()
		removeStepCopy(cp)
		dst := filepath.Join(b.TempDir(), "copy.db")
		s = time.Now()
		if err := sfCopySync(p, dst); err != nil {
			b.Fatal(err)
		}
		ioT += time.Since(s)
		os.Remove(dst)
	}
	n := float64(b.N)
	b.ReportMetric(mb, "MB")
	b.ReportMetric(copyT.Seconds()*1000/n, "copy-ms")
	b.ReportMetric(backT.Seconds()*1000/n, "copyback-ms")
	b.ReportMetric(float64(copyT+backT)/float64(ioT), "roundtrip-x-iocopy")
}
