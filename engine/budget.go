package engine

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// waitBudget is the busy timeout of one run, shared by every wait of the
// run: SQLite's busy handler on each statement that needs a lock, the
// migrator lock, BEGIN IMMEDIATE and COMMIT. Each wait spends from it, so
// `--busy-timeout 1s` waits about one second in total however many locks a
// run meets, instead of one second per wait. Work that does not wait (a
// migration's statements) spends nothing.
type waitBudget struct {
	mu   sync.Mutex
	left time.Duration
	// set is the busy_timeout (ms) last set on each connection.
	set map[querier]int64
}

func newWaitBudget(d time.Duration) *waitBudget {
	return &waitBudget{left: d, set: map[querier]int64{}}
}

// opened records a connection opened with busy_timeout d (its DSN).
func (b *waitBudget) opened(q querier, d time.Duration) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.set[q] = d.Milliseconds()
	b.mu.Unlock()
}

// arm sets q's busy_timeout to what is left of the budget, when that
// differs from what was set on it last.
func (b *waitBudget) arm(ctx context.Context, q querier) error {
	if b == nil {
		return nil
	}
	ms := b.remaining().Milliseconds()
	b.mu.Lock()
	last, ok := b.set[q]
	b.mu.Unlock()
	if ok && last == ms {
		return nil
	}
	if _, err := q.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", ms)); err != nil {
		return err
	}
	b.mu.Lock()
	b.set[q] = ms
	b.mu.Unlock()
	return nil
}

// remaining is what is left to wait (0 when spent).
func (b *waitBudget) remaining() time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.left, 0)
}

// spend takes the time since start from the budget.
func (b *waitBudget) spend(start time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.left -= time.Since(start)
	b.mu.Unlock()
}

type budgetKey struct{}

// withBudget returns ctx carrying the run's wait budget.
func withBudget(ctx context.Context, b *waitBudget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// budgetFrom is the run's wait budget, nil outside a budgeted run.
func budgetFrom(ctx context.Context) *waitBudget {
	b, _ := ctx.Value(budgetKey{}).(*waitBudget)
	return b
}

// budgetQ is a querier whose every call waits for locks at most what is
// left of the run's budget: before each call it lowers the connection's
// busy_timeout to the remaining budget (when that changed by a millisecond
// or more), and it spends the call's duration.
type budgetQ struct {
	q querier
	b *waitBudget
}

// budgeted wraps q (a connection opened with the engine's busy_timeout,
// recorded with b.opened); with a nil budget it is q as it is.
func budgeted(q querier, b *waitBudget) querier {
	if b == nil {
		return q
	}
	return &budgetQ{q: q, b: b}
}

func (w *budgetQ) arm(ctx context.Context) error { return w.b.arm(ctx, w.q) }

func (w *budgetQ) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if err := w.arm(ctx); err != nil {
		// The same statement reports the same problem through its Row.
		return w.q.QueryRowContext(ctx, query, args...)
	}
	start := time.Now()
	defer w.b.spend(start)
	return w.q.QueryRowContext(ctx, query, args...)
}

func (w *budgetQ) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := w.arm(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	defer w.b.spend(start)
	return w.q.QueryContext(ctx, query, args...)
}

func (w *budgetQ) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := w.arm(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	defer w.b.spend(start)
	return w.q.ExecContext(ctx, query, args...)
}

// beginTx is BEGIN IMMEDIATE on conn within the run's budget: the wait for
// the write lock spends from it, and the transaction's statements and its
// COMMIT wait at most what is left.
func beginTx(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	b := budgetFrom(ctx)
	if b == nil {
		return conn.BeginTx(ctx, nil)
	}
	if err := b.arm(ctx, conn); err != nil {
		return nil, err
	}
	start := time.Now()
	defer b.spend(start)
	return conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock=immediate)
}

// commitTx commits tx, spending the wait for readers to clear (rollback
// journal mode) from the run's budget.
func commitTx(ctx context.Context, tx *sql.Tx) error {
	start := time.Now()
	defer budgetFrom(ctx).spend(start)
	return tx.Commit()
}
