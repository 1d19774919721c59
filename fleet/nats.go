package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for the names on NATS. All of them are configurable (Names).
const (
	DefaultJobsStream    = "SHOAL_JOBS"
	DefaultResultsStream = "SHOAL_RESULTS"
	DefaultJobsPrefix    = "shoal.jobs"
	DefaultResultsPrefix = "shoal.results"
	DefaultConsumer      = "shoal"
	DefaultNode          = "default"
	DefaultURL           = "nats://127.0.0.1:4222"
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 5
	// DefaultDuplicates is the work stream's de-duplication window: a run
	// re-published with the same run id within it adds no job.
	DefaultDuplicates = time.Hour
	// DefaultResultsMaxAge is how long results (and run manifests) are kept.
	DefaultResultsMaxAge = 30 * 24 * time.Hour
)

// MinServerVersion is the oldest nats-server shoal uses: every JetStream
// feature shoal relies on exists in 2.9 (Debian bookworm ships 2.9.10).
var MinServerVersion = [3]int{2, 9, 0}

// Names are the streams, subjects and consumers shoal uses.
type Names struct {
	JobsStream    string // SHOAL_JOBS: work-queue retention, file storage
	ResultsStream string // SHOAL_RESULTS: limits retention, file storage
	JobsPrefix    string // shoal.jobs: jobs on <prefix>.<node> and <prefix>.<node>.high
	ResultsPrefix string // shoal.results: results on <prefix>.<run_id>
	Consumer      string // durable consumers <consumer>_<node> and <consumer>_<node>_high
}

// DefaultNames returns the contract's names.
func DefaultNames() Names {
	return Names{DefaultJobsStream, DefaultResultsStream, DefaultJobsPrefix, DefaultResultsPrefix, DefaultConsumer}
}

func (n Names) withDefaults() Names {
	d := DefaultNames()
	if n.JobsStream == "" {
		n.JobsStream = d.JobsStream
	}
	if n.ResultsStream == "" {
		n.ResultsStream = d.ResultsStream
	}
	if n.JobsPrefix == "" {
		n.JobsPrefix = d.JobsPrefix
	}
	if n.ResultsPrefix == "" {
		n.ResultsPrefix = d.ResultsPrefix
	}
	if n.Consumer == "" {
		n.Consumer = d.Consumer
	}
	return n
}

// JobSubject is where bulk (high=false) or on-demand (high=true) jobs for a node go.
func (n Names) JobSubject(node string, high bool) string {
	n = n.withDefaults()
	if high {
		return n.JobsPrefix + "." + node + ".high"
	}
	return n.JobsPrefix + "." + node
}

// ResultSubject is where a run's results go.
func (n Names) ResultSubject(runID string) string {
	return n.withDefaults().ResultsPrefix + "." + runID
}

// ManifestSubject is where a run's manifest goes.
func (n Names) ManifestSubject(runID string) string {
	return n.withDefaults().ResultsPrefix + "." + runID + ".manifest"
}

// ConsumerName is a node's durable consumer for bulk or high-priority jobs.
func (n Names) ConsumerName(node string, high bool) string {
	n = n.withDefaults()
	if high {
		return n.Consumer + "_" + node + "_high"
	}
	return n.Consumer + "_" + node
}

// Settings are the provisioning parameters.
type Settings struct {
	Names
	AckWait       time.Duration
	MaxDeliver    int
	Duplicates    time.Duration
	ResultsMaxAge time.Duration
	// ResultsDuplicates is the results stream's de-duplication window
	// (default 2m): long enough for a publisher's retries, each id held
	// by the server for that long (about 180 bytes per result).
	ResultsDuplicates time.Duration
	// Replicas of the streams created (0: automatic, 1 on a single server
	// and 3 in a cluster of three or more). Only `shoal nats setup`
	// (SetupStreams) changes the replicas of existing streams.
	Replicas int
	// Placement of the streams created (cluster name, server tags), or nil.
	Placement *jetstream.Placement
}

func (s Settings) withDefaults() Settings {
	s.Names = s.Names.withDefaults()
	if s.AckWait <= 0 {
		s.AckWait = DefaultAckWait
	}
	if s.MaxDeliver <= 0 {
		s.MaxDeliver = DefaultMaxDeliver
	}
	if s.Duplicates <= 0 {
		s.Duplicates = DefaultDuplicates
	}
	if s.ResultsMaxAge <= 0 {
		s.ResultsMaxAge = DefaultResultsMaxAge
	}
	if s.ResultsDuplicates <= 0 {
		s.ResultsDuplicates = 2 * time.Minute
	}
	return s
}

// Check verifies the server version and JetStream on an open connection.
func Check(ctx context.Context, nc *nats.Conn) (jetstream.JetStream, error) {
	if err := CheckServerVersion(nc.ConnectedServerVersion()); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	dctx, stop := DeniedContext(ctx, nc)
	defer stop()
	actx, cancel := context.WithTimeout(dctx, 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		return nil, Explain(nc, explain(err, ConnectedURL(nc)))
	}
	return js, nil
}

// CheckServerVersion refuses servers older than MinServerVersion.
func CheckServerVersion(v string) error {
	got, ok := parseVersion(v)
	if !ok {
		return fmt.Errorf("cannot read the NATS server version %q: shoal needs nats-server %d.%d or later", v, MinServerVersion[0], MinServerVersion[1])
	}
	for i := range 3 {
		if got[i] != MinServerVersion[i] {
			if got[i] < MinServerVersion[i] {
				return fmt.Errorf("nats-server %s is too old: shoal needs %d.%d or later with JetStream (upgrade the server)", v, MinServerVersion[0], MinServerVersion[1])
			}
			return nil
		}
	}
	return nil
}

func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// Provision creates the streams if they do not exist (leaving existing ones
// as they are, so components started with other flags do not fight) and
// creates or updates the node's two durable pull consumers. Safe to call
// from every component at start-up, concurrently.
func Provision(ctx context.Context, js jetstream.JetStream, s Settings, node string) (high, bulk jetstream.Consumer, err error) {
	if err := ProvisionStreams(ctx, js, s); err != nil {
		return nil, nil, err
	}
	return ProvisionConsumers(ctx, js, s, node)
}

// ProvisionStreams creates SHOAL_JOBS and SHOAL_RESULTS when missing and
// leaves existing ones as they are: a role without the right to create
// streams only needs to read them (then a missing stream is a
// *PermissionError saying to run `shoal nats setup` as the admin user).
func ProvisionStreams(ctx context.Context, js jetstream.JetStream, s Settings) error {
	return provisionStreams(ctx, js, s, false)
}

// SetupStreams is ProvisionStreams for `shoal nats setup`, the admin role:
// it also changes the replicas (when Settings.Replicas is set) and the
// placement of existing streams to the settings.
func SetupStreams(ctx context.Context, js jetstream.JetStream, s Settings) error {
	return provisionStreams(ctx, js, s, true)
}

// autoReplicas is 1 on a single server, else up to 3 (the servers the
// client knows of, itself included).
func autoReplicas(nc *nats.Conn) int {
	if nc == nil || nc.ConnectedClusterName() == "" {
		return 1
	}
	return max(1, min(3, len(nc.Servers())))
}

func provisionStreams(ctx context.Context, js jetstream.JetStream, s Settings, update bool) error {
	s = s.withDefaults()
	ctx, stop := DeniedContext(ctx, js.Conn())
	defer stop()
	explicit := s.Replicas > 0
	if !explicit {
		s.Replicas = autoReplicas(js.Conn())
	}
	jobs := jetstream.StreamConfig{
		Name:        s.JobsStream,
		Description: "shoal migration jobs, one per tenant DB",
		Subjects:    []string{s.JobsPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		Duplicates:  s.Duplicates,
		Replicas:    s.Replicas,
		Placement:   s.Placement,
	}
	results := jetstream.StreamConfig{
		Name:        s.ResultsStream,
		Description: "shoal migration results per run, and run manifests",
		Subjects:    []string{s.ResultsPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.ResultsMaxAge,
		Duplicates:  s.ResultsDuplicates,
		Replicas:    s.Replicas,
		Placement:   s.Placement,
	}
	for _, cfg := range []jetstream.StreamConfig{jobs, results} {
		if err := ensureStream(ctx, js, cfg, update && explicit, update); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, setReplicas, setPlacement bool) error {
	for range 3 {
		st, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			info := st.CachedInfo()
			if info.Config.Retention != cfg.Retention {
				return fmt.Errorf("stream %s exists with %s retention, shoal needs %s (delete it or configure other names)", cfg.Name, info.Config.Retention, cfg.Retention)
			}
			want := info.Config
			if setReplicas {
				want.Replicas = cfg.Replicas
			}
			if setPlacement && cfg.Placement != nil {
				want.Placement = cfg.Placement
			}
			if want.Replicas == info.Config.Replicas && placementEqual(want.Placement, info.Config.Placement) {
				return nil
			}
			if _, err := js.UpdateStream(ctx, want); err != nil {
				return explainJS(js, fmt.Errorf("cannot change stream %s to %d replicas: %w", cfg.Name, want.Replicas, err), want.Replicas)
			}
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return explainJS(js, fmt.Errorf("stream %s: %w", cfg.Name, err), 0)
		}
		_, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			continue // created concurrently: read it again
		}
		return explainJS(js, fmt.Errorf("cannot create stream %s on %s with %d replicas: %w", cfg.Name, strings.Join(cfg.Subjects, ","), cfg.Replicas, err), cfg.Replicas)
	}
	return fmt.Errorf("stream %s: created and deleted concurrently, try again", cfg.Name)
}

func placementEqual(a, b *jetstream.Placement) bool {
	str := func(p *jetstream.Placement) string {
		if p == nil {
			return ""
		}
		return p.Cluster + "|" + strings.Join(p.Tags, ",")
	}
	return str(a) == str(b) || str(a) == "|" && b == nil || a == nil && str(b) == "|"
}

// ErrReplicas: the streams' replicas cannot be placed on this server or
// cluster.
var ErrReplicas = errors.New("not enough JetStream servers for the replicas asked")

// explainJS is explain plus permission violations reported on js's
// connection and replica counts the server cannot place.
func explainJS(js jetstream.JetStream, err error, replicas int) error {
	var apiErr *jetstream.APIError
	if replicas > 1 && errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10074: // replicas > 1 not supported in non-clustered mode
			return fmt.Errorf("%w: %w: the NATS server is a single server, not a JetStream cluster: use --replicas 1, or connect to a cluster of %d or more servers", ErrReplicas, err, replicas)
		case 10023, 10005: // insufficient resources, no suitable peers
			return fmt.Errorf("%w: %w: the JetStream cluster has fewer than %d servers able to hold a replica (or no room): lower --replicas or add servers (docs/operations.md, Cluster)", ErrReplicas, err, replicas)
		}
	}
	return Explain(js.Conn(), explain(err, ""))
}

// ProvisionConsumers creates or updates the node's durable pull consumers:
// <consumer>_<node> on <jobs>.<node> and <consumer>_<node>_high on
// <jobs>.<node>.high. Workers take from the high one first. Workers and
// `shoal nats setup` call it: their --ack-wait and --max-deliver apply.
func ProvisionConsumers(ctx context.Context, js jetstream.JetStream, s Settings, node string) (high, bulk jetstream.Consumer, err error) {
	return provisionConsumers(ctx, js, s, node, true)
}

// EnsureConsumers creates the node's consumers only where they are missing
// and leaves existing ones as they are: the producer and enqueue call it, so
// that publishing never resets the ack wait or max deliver the workers set.
func EnsureConsumers(ctx context.Context, js jetstream.JetStream, s Settings, node string) (high, bulk jetstream.Consumer, err error) {
	return provisionConsumers(ctx, js, s, node, false)
}

func provisionConsumers(ctx context.Context, js jetstream.JetStream, s Settings, node string, update bool) (high, bulk jetstream.Consumer, err error) {
	s = s.withDefaults()
	ctx, stop := DeniedContext(ctx, js.Conn())
	defer stop()
	if err := ValidName("node", node); err != nil {
		return nil, nil, err
	}
	mk := func(isHigh bool) (jetstream.Consumer, error) {
		cfg := jetstream.ConsumerConfig{
			Durable:       s.ConsumerName(node, isHigh),
			Description:   "shoal workers of node " + node,
			FilterSubject: s.JobSubject(node, isHigh),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       s.AckWait,
			MaxDeliver:    s.MaxDeliver,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			MaxAckPending: 10000,
			MaxWaiting:    512,
		}
		if !update {
			if c, err := js.Consumer(ctx, s.JobsStream, cfg.Durable); err == nil {
				return c, nil
			} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, explainJS(js, fmt.Errorf("consumer %s on stream %s: %w", cfg.Durable, s.JobsStream, err), 0)
			}
		}
		c, err := js.CreateOrUpdateConsumer(ctx, s.JobsStream, cfg)
		if err != nil {
			return nil, explainJS(js, fmt.Errorf("cannot create consumer %s on stream %s: %w", cfg.Durable, s.JobsStream, err), 0)
		}
		return c, nil
	}
	if high, err = mk(true); err != nil {
		return nil, nil, err
	}
	if bulk, err = mk(false); err != nil {
		return nil, nil, err
	}
	return high, bulk, nil
}

// explain turns JetStream errors into what to do about them.
func explain(err error, url string) error {
	if err == nil {
		return nil
	}
	where := "the NATS server"
	if url != "" {
		where = "the NATS server at " + url
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("%s has no JetStream for this account: start nats-server with -js (or a jetstream {} block, and jetstream enabled for the account): %w", where, err)
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("%s did not answer JetStream requests: is JetStream enabled (nats-server -js)? %w", where, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10023, // insufficient resources
			10026, // maximum consumers limit reached
			10027, // maximum number of streams reached
			10028, // insufficient memory resources
			10047: // insufficient storage resources
			return fmt.Errorf("%w: the account has no room for shoal's streams/consumers: raise the account's JetStream limits (max_file_store, max_streams, max_consumers) or free space", err)
		}
	}
	low := strings.ToLower(err.Error())
	if strings.Contains(low, "insufficient") || strings.Contains(low, "limit") && strings.Contains(low, "maximum") {
		return fmt.Errorf("%w: the account has no room for shoal's streams/consumers: raise the account's JetStream limits or free space", err)
	}
	return err
}

// StreamReplicas is the number of replicas of a stream (0 if unknown).
func StreamReplicas(ctx context.Context, js jetstream.JetStream, name string) int {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	return st.CachedInfo().Config.Replicas
}
