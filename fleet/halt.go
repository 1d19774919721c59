package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OutcomeSkipped: the run halted (--max-failures reached, or its canary
// failed) before this tenant was migrated; the DB was not touched. A later
// run picks it up.
const OutcomeSkipped = "skipped"

// A run halts when its canary fails or when --max-failures of its tenants
// failed. The halt lives in the results stream, beside the run's results,
// so that every worker, wherever it runs and after any restart, sees it
// with the permissions it already has:
//
//   - <results>.<run_id>.failures: one message per failed job of a run whose
//     jobs carry max_failures (Nats-Msg-Id fail:<run>:<job>, so a job
//     handled twice counts once); their count is the run's failures.
//   - <results>.<run_id>.halt: the halt itself ({"run_id", "reason",
//     "failures", "at"}), published by the producer (canary failure, failures
//     it counted) or by the worker whose failure reached the limit.
//
// A worker, before each job of such a run, reads both counts with one stream
// info request: halted, or failures >= max_failures, and the job ends
// `skipped`. Since the failing worker records its failure before it
// publishes its result and takes its next job, every job started after the
// limit was reached is skipped: at most max_failures + the jobs in flight
// at that moment touch a DB.

// Halt is the message on <results>.<run_id>.halt.
type Halt struct {
	RunID    string    `json:"run_id"`
	Reason   string    `json:"reason"`
	Failures int       `json:"failures"`
	At       time.Time `json:"at"`
}

// HaltSubject is where a run's halt is published.
func (n Names) HaltSubject(runID string) string {
	return n.withDefaults().ResultsPrefix + "." + runID + ".halt"
}

// FailuresSubject is where a run's failures are counted.
func (n Names) FailuresSubject(runID string) string {
	return n.withDefaults().ResultsPrefix + "." + runID + ".failures"
}

// PublishHalt stores the halt of a run (idempotent: one per run id within
// the duplicate window; a later one only adds a message).
func PublishHalt(ctx context.Context, js jetstream.JetStream, names Names, h Halt) error {
	if h.At.IsZero() {
		h.At = time.Now().UTC()
	}
	data, _ := json.Marshal(h)
	msg := nats.NewMsg(names.HaltSubject(h.RunID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "halt:"+h.RunID)
	_, err := js.PublishMsg(ctx, msg)
	return err
}

// RecordFailure counts a failed job of a run (once per job id).
func RecordFailure(ctx context.Context, js jetstream.JetStream, names Names, runID, jobID, tenant string) error {
	data, _ := json.Marshal(map[string]string{"job_id": jobID, "tenant": Shorten(tenant, 512)})
	msg := nats.NewMsg(names.FailuresSubject(runID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "fail:"+runID+":"+Shorten(jobID+"/"+tenant, 600))
	_, err := js.PublishMsg(ctx, msg)
	return err
}

// HaltState says whether a run has halted: its halt message, or (max > 0)
// failures >= max. It reads the counts with one stream info request on
// stream (the results stream), and the halt's reason only when there is
// one. "" means the run goes on.
func HaltState(ctx context.Context, stream jetstream.Stream, names Names, runID string, max int64) (reason string, failures int, err error) {
	halt, fail := names.HaltSubject(runID), names.FailuresSubject(runID)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(names.withDefaults().ResultsPrefix+"."+runID+".*"))
	if err != nil {
		return "", 0, err
	}
	failures = int(info.State.Subjects[fail])
	if info.State.Subjects[halt] > 0 {
		// The halt exists: halted, even when its reason cannot be read (a
		// NATS user allowed stream info but not message gets).
		raw, err := stream.GetLastMsgForSubject(ctx, halt)
		var h Halt
		if err == nil && raw != nil && json.Unmarshal(raw.Data, &h) == nil && h.Reason != "" {
			return h.Reason, failures, nil
		}
		return "the run was halted", failures, nil
	}
	if max > 0 && int64(failures) >= max {
		return MaxFailuresReason(failures, max), failures, nil
	}
	return "", failures, nil
}

// MaxFailuresReason is the reason of a halt by --max-failures.
func MaxFailuresReason(failures int, max int64) string {
	return fmt.Sprintf("%d tenants failed (--max-failures %d)", failures, max)
}

// IsFailure reports whether an outcome counts towards --max-failures: not
// at head, and not skipped.
func IsFailure(outcome string) bool {
	return !AtHead(outcome) && outcome != OutcomeSkipped
}
