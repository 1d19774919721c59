package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Auth is how shoal authenticates to NATS and secures the connection: the
// --nats-* flags (SHOAL_NATS_* env) of every command that talks to NATS.
// Secrets (password, token, key files' contents) are never logged, printed
// or put in errors: Auth has no String method that shows them (use Describe).
type Auth struct {
	CredsFile string // a .creds file: user JWT and NKey seed (nsc / operator mode)
	NKeyFile  string // a file holding an NKey user seed (SU...)
	User      string // user name, with Password
	Password  string
	Token     string
	TLSCA     string // PEM CA bundle that signed the server's certificate
	TLSCert   string // PEM client certificate (mutual TLS), with TLSKey
	TLSKey    string
}

// ErrAuth: the NATS server refused the credentials (or required some and
// none were given). errors.Is-able on every error Connect returns for it.
var ErrAuth = errors.New("NATS refused the credentials")

// ErrPermission: the NATS server refused a publish or subscribe because the
// user's permissions do not allow it. errors.Is-able on *PermissionError.
var ErrPermission = errors.New("NATS permission denied")

// ErrBadAuthConfig: the --nats-* options contradict each other or name a
// file that cannot be read.
var ErrBadAuthConfig = errors.New("invalid NATS authentication options")

// ConnectError is a failure to connect at start-up.
type ConnectError struct {
	URL string // redacted
	Err error
}

func (e *ConnectError) Error() string {
	if errors.Is(e.Err, nats.ErrAuthorization) || errors.Is(e.Err, nats.ErrAuthExpired) || errors.Is(e.Err, nats.ErrAuthRevoked) {
		return fmt.Sprintf("NATS at %s refused shoal's credentials (%v): check --nats-creds, --nats-nkey, --nats-user/--nats-password or --nats-token (env SHOAL_NATS_CREDS, ...); the server needs them for this user", e.URL, e.Err)
	}
	return fmt.Sprintf("cannot connect to NATS at %s: %v (start nats-server with -js, set --nats or SHOAL_NATS, or use `shoal run` for an embedded server)", e.URL, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrAuth) true for refused credentials.
func (e *ConnectError) Is(target error) bool {
	return target == ErrAuth && (errors.Is(e.Err, nats.ErrAuthorization) || errors.Is(e.Err, nats.ErrAuthExpired) || errors.Is(e.Err, nats.ErrAuthRevoked))
}

// PermissionError is a publish or subscribe the server refused for the
// user's permissions.
type PermissionError struct {
	Op      string // "publish" or "subscribe"
	Subject string
	Err     error // the server's message (nats.ErrPermissionViolation)
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("NATS denied this user permission to %s to %q: %s", e.Op, e.Subject, e.hint())
}

func (e *PermissionError) hint() string {
	s := e.Subject
	switch {
	case strings.HasPrefix(s, "$JS.API.STREAM.CREATE.") || strings.HasPrefix(s, "$JS.API.STREAM.UPDATE."):
		return "only the admin role creates or changes streams: run `shoal nats setup` with the admin user's credentials first (docs/operations.md, Permissions)"
	case strings.HasPrefix(s, "$JS.API.STREAM.DELETE.") || strings.HasPrefix(s, "$JS.API.STREAM.PURGE."):
		return "only the admin role deletes or purges streams (docs/operations.md, Permissions)"
	case strings.HasPrefix(s, "$JS.API.CONSUMER.CREATE.") || strings.HasPrefix(s, "$JS.API.CONSUMER.DURABLE.CREATE."):
		return "this role may not create that consumer: run `shoal nats setup --node NODE` as the admin user, or use the role shoal ships for this command (docs/operations.md, Permissions)"
	}
	return "this user's role does not allow it: use the credentials of the role made for this command (docs/operations.md, Permissions)"
}

func (e *PermissionError) Unwrap() []error { return []error{ErrPermission, e.Err} }

var permRe = regexp.MustCompile(`(?i)for (publish|subscription) to "?([^"\s]+)"?`)

// newPermissionError reads the server's "Permissions Violation for Publish
// to "subject"" message.
func newPermissionError(err error) *PermissionError {
	pe := &PermissionError{Op: "use", Subject: "?", Err: err}
	if m := permRe.FindStringSubmatch(err.Error()); m != nil {
		pe.Op, pe.Subject = "subscribe", m[2]
		if strings.EqualFold(m[1], "publish") {
			pe.Op = "publish"
		}
	}
	return pe
}

// Validate checks the options without connecting: contradictions, and that
// every file named can be read (its contents are not echoed).
func (a Auth) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadAuthConfig, fmt.Sprintf(format, args...))
	}
	kinds := 0
	for _, set := range []bool{a.CredsFile != "", a.NKeyFile != "", a.User != "", a.Token != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return bad("give one of --nats-creds, --nats-nkey, --nats-user (with --nats-password) or --nats-token, not several")
	}
	if a.Password != "" && a.User == "" {
		return bad("--nats-password needs --nats-user")
	}
	if a.User != "" && a.Password == "" {
		return bad("--nats-user needs --nats-password (or SHOAL_NATS_PASSWORD)")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return bad("--nats-tls-cert and --nats-tls-key go together")
	}
	for _, f := range []struct{ flag, path string }{
		{"--nats-creds", a.CredsFile}, {"--nats-nkey", a.NKeyFile}, {"--nats-tls-ca", a.TLSCA},
		{"--nats-tls-cert", a.TLSCert}, {"--nats-tls-key", a.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return bad("%s %s: %v", f.flag, f.path, errors.Unwrap(err))
		}
		st, err := fh.Stat()
		fh.Close()
		if err != nil || !st.Mode().IsRegular() {
			return bad("%s %s: not a regular file", f.flag, f.path)
		}
		if st.Size() > 1<<20 {
			return bad("%s %s: larger than 1 MiB, not a credentials file", f.flag, f.path)
		}
	}
	return nil
}

// Options turns the settings into nats.Options: the one place where shoal's
// NATS authentication and TLS options are made.
func (a Auth) Options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			// The nkeys error never includes the seed itself.
			return nil, fmt.Errorf("%w: --nats-nkey %s: not an NKey user seed file (%v)", ErrBadAuthConfig, a.NKeyFile, err)
		}
		opts = append(opts, o)
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

// Describe says which kind of authentication is configured, without secrets.
func (a Auth) Describe() string {
	var parts []string
	switch {
	case a.CredsFile != "":
		parts = append(parts, "credentials file "+a.CredsFile)
	case a.NKeyFile != "":
		parts = append(parts, "nkey seed file "+a.NKeyFile)
	case a.User != "":
		parts = append(parts, "user "+a.User)
	case a.Token != "":
		parts = append(parts, "token")
	default:
		parts = append(parts, "no credentials")
	}
	if a.TLSCA != "" || a.TLSCert != "" {
		parts = append(parts, "TLS")
	}
	return strings.Join(parts, ", ")
}

// RedactURL hides the user info of every URL of a comma-separated list: a
// password becomes "REDACTED", a token (user info without password) too.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			if at := strings.LastIndex(p, "@"); at >= 0 {
				scheme := ""
				if k := strings.Index(p, "://"); k >= 0 && k < at {
					scheme = p[:k+3]
				}
				p = scheme + "REDACTED@" + p[at+1:]
			}
			parts[i] = p
			continue
		}
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "REDACTED")
			} else {
				u.User = url.User("REDACTED")
			}
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// denials are the permission violations per connection made by Dial.
var denials sync.Map // *nats.Conn -> *connDenials

type connDenials struct {
	mu      sync.Mutex
	last    *PermissionError
	changed chan struct{} // closed and replaced at each violation
}

func (d *connDenials) add(pe *PermissionError) (first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	first = d.last == nil
	d.last = pe
	close(d.changed)
	d.changed = make(chan struct{})
	return first
}

func denialsOf(nc *nats.Conn) *connDenials {
	if nc == nil {
		return nil
	}
	if v, ok := denials.Load(nc); ok {
		return v.(*connDenials)
	}
	return nil
}

// Denied returns the latest permission violation the server reported on a
// connection made by Dial (a *PermissionError), or nil.
func Denied(nc *nats.Conn) error {
	d := denialsOf(nc)
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		return nil
	}
	return d.last
}

// DeniedContext is ctx, also cancelled (cause: the *PermissionError) when
// the server reports a permission violation on nc from now on: a refused
// publish or request otherwise waits for its timeout, since the server
// reports the refusal on the connection, not to the request.
func DeniedContext(ctx context.Context, nc *nats.Conn) (context.Context, context.CancelFunc) {
	d := denialsOf(nc)
	if d == nil {
		return context.WithCancel(ctx)
	}
	d.mu.Lock()
	changed := d.changed
	d.mu.Unlock()
	cctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-changed:
			d.mu.Lock()
			pe := d.last
			d.mu.Unlock()
			cancel(pe)
		case <-cctx.Done():
		}
	}()
	return cctx, func() { cancel(nil) }
}

// Explain returns err as a *PermissionError when the server reported a
// permission violation on nc (a refused publish makes a request time out,
// the reason only arrives on the connection); else err itself.
func Explain(nc *nats.Conn, err error) error {
	if err == nil || errors.Is(err, ErrPermission) {
		return err
	}
	if d := Denied(nc); d != nil {
		pe := *(d.(*PermissionError))
		pe.Err = fmt.Errorf("%w (then: %v)", pe.Err, err)
		return &pe
	}
	return err
}

// DialOptions configure Dial.
type DialOptions struct {
	URL  string // comma-separated nats:// or tls:// URLs (default DefaultURL)
	Name string // connection name shown by the server
	Auth Auth
	// OnDenied is called (once per connection) when the server refuses a
	// publish or subscribe for lack of permission.
	OnDenied func(*PermissionError)
	// NATS are more options; applied before shoal's own.
	NATS []nats.Option
}

// Connect opens a connection that reconnects forever, checks the server is
// nats-server 2.9 or later with JetStream enabled for the account, and
// returns the JetStream handle. Anonymous; Dial takes credentials.
func Connect(ctx context.Context, url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	return Dial(ctx, DialOptions{URL: url, Name: name, NATS: opts})
}

// Dial is Connect with authentication and TLS. A refused credential fails
// at once (a *ConnectError, errors.Is ErrAuth), not in a retry loop; the
// URL in errors is redacted.
func Dial(ctx context.Context, d DialOptions) (*nats.Conn, jetstream.JetStream, error) {
	if d.URL == "" {
		d.URL = DefaultURL
	}
	authOpts, err := d.Auth.Options()
	if err != nil {
		return nil, nil, err
	}
	o := nats.GetDefaultOptions()
	for _, s := range strings.Split(d.URL, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Servers = append(o.Servers, s)
		}
	}
	all := append(append([]nats.Option{}, d.NATS...),
		nats.Name(d.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectBufSize(16<<20),
		nats.Timeout(5*time.Second),
	)
	all = append(all, authOpts...)
	for _, opt := range all {
		if err := opt(&o); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadAuthConfig, err)
		}
	}
	userErr, userClosed := o.AsyncErrorCB, o.ClosedCB
	onDenied := d.OnDenied
	o.AsyncErrorCB = func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			if dn := denialsOf(nc); dn != nil {
				pe := newPermissionError(err)
				if dn.add(pe) && onDenied != nil {
					onDenied(pe)
				}
			}
		}
		if userErr != nil {
			userErr(nc, sub, err)
		}
	}
	o.ClosedCB = func(nc *nats.Conn) {
		denials.Delete(nc)
		if userClosed != nil {
			userClosed(nc)
		}
	}
	nc, err := o.Connect()
	if err != nil {
		return nil, nil, &ConnectError{URL: RedactURL(d.URL), Err: err}
	}
	denials.Store(nc, &connDenials{changed: make(chan struct{})})
	js, err := Check(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// ConnectedURL is the URL of the server nc is connected to, redacted.
func ConnectedURL(nc *nats.Conn) string {
	if nc == nil {
		return ""
	}
	return RedactURL(nc.ConnectedUrl())
}
