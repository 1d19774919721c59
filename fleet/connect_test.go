package fleet_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"nats://127.0.0.1:4222":                              "nats://127.0.0.1:4222",
		"nats://bob:s3cr3t@nats:4222":                        "nats://bob:REDACTED@nats:4222",
		"tls://s3cr3t@nats:4222":                             "tls://REDACTED@nats:4222",
		"nats://a:s3cr3t@n1:4222, nats://a:s3cr3t@n2:4222":   "nats://a:REDACTED@n1:4222,nats://a:REDACTED@n2:4222",
		"s3cr3t@nats:4222":                                   "REDACTED@nats:4222",
		"nats://bob:s3cr3t%zz@nats:4222":                     "nats://REDACTED@nats:4222",
		"nats://bob:pa@ss:s3cr3t@nats:4222/x?token=whatever": "nats://bob:REDACTED@nats:4222/x?token=whatever",
	}
	for in, want := range cases {
		if got := fleet.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(fleet.RedactURL(in), "s3cr3t") {
			t.Errorf("RedactURL(%q) leaks the secret", in)
		}
	}
}

func TestAuthValidate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x"), 0o600)
	bad := []fleet.Auth{
		{User: "u"},
		{Password: "p-s3cr3t"},
		{User: "u", Password: "p-s3cr3t", Token: "t-s3cr3t"},
		{CredsFile: f, NKeyFile: f},
		{TLSCert: f},
		{TLSKey: f},
		{CredsFile: filepath.Join(dir, "missing")},
		{TLSCA: dir},
	}
	for _, a := range bad {
		err := a.Validate()
		if !errors.Is(err, fleet.ErrBadAuthConfig) {
			t.Errorf("%+v: %v, want ErrBadAuthConfig", a.Describe(), err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error echoes a secret: %v", err)
		}
	}
	good := []fleet.Auth{{}, {User: "u", Password: "p"}, {Token: "t"}, {CredsFile: f}, {TLSCA: f, TLSCert: f, TLSKey: f}}
	for _, a := range good {
		if err := a.Validate(); err != nil {
			t.Errorf("%s: %v", a.Describe(), err)
		}
	}
	if d := (fleet.Auth{User: "u", Password: "s3cr3t"}).Describe(); strings.Contains(d, "s3cr3t") {
		t.Errorf("Describe shows the password: %s", d)
	}
}

// servers runs f against the shipped config on the Go server module and on
// the system's nats-server (2.9 on Debian) when installed.
func withConfigServers(t *testing.T, f func(t *testing.T, srv *fleettest.Server)) {
	for _, binary := range []bool{false, true} {
		name := "module"
		if binary {
			name = "binary"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, fleettest.StartConfig(t, binary))
		})
	}
}

func dial(ctx context.Context, url, role, password string) (*nats.Conn, error) {
	nc, _, err := fleet.Dial(ctx, fleet.DialOptions{URL: url, Name: role, Auth: fleet.Auth{User: fleettest.RoleUser(role), Password: password}})
	return nc, err
}

// A wrong password fails at once with ErrAuth, naming neither secret; so
// does no credential at all.
func TestDialRefusedCredentials(t *testing.T) {
	t.Parallel()
	withConfigServers(t, func(t *testing.T, srv *fleettest.Server) {
		ctx := context.Background()
		_, err := dial(ctx, srv.URL, "worker", "wrong-s3cr3t")
		if !errors.Is(err, fleet.ErrAuth) {
			t.Fatalf("wrong password: %v, want ErrAuth", err)
		}
		if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "refused shoal's credentials") {
			t.Fatalf("error: %v", err)
		}
		// The password in the URL is redacted in the error.
		u := strings.Replace(srv.URL, "nats://", "nats://shoal-worker:wrong-s3cr3t@", 1)
		_, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: u})
		if !errors.Is(err, fleet.ErrAuth) || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "REDACTED") {
			t.Fatalf("password in URL: %v", err)
		}
		if _, _, err := fleet.Dial(ctx, fleet.DialOptions{URL: srv.URL}); !errors.Is(err, fleet.ErrAuth) {
			t.Fatalf("no credentials: %v", err)
		}
		nc, err := dial(ctx, srv.URL, "worker", fleettest.RolePassword("worker"))
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
	})
}

// Each shipped role may do its job and no more: the server refuses a
// worker's job, a producer's stream deletion or creation, and shoal reports
// a *PermissionError (errors.Is ErrPermission) naming the subject.
func TestRolePermissions(t *testing.T) {
	t.Parallel()
	withConfigServers(t, func(t *testing.T, srv *fleettest.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		role := func(r string) *nats.Conn {
			nc, err := dial(ctx, srv.URL, r, fleettest.RolePassword(r))
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			t.Cleanup(nc.Close)
			return nc
		}
		// Before setup, a producer may not create the streams.
		pnc := role("producer")
		pjs, _ := fleet.Check(ctx, pnc)
		err := fleet.ProvisionStreams(ctx, pjs, fleet.Settings{})
		var pe *fleet.PermissionError
		if !errors.Is(err, fleet.ErrPermission) || !errors.As(err, &pe) || pe.Subject != "$JS.API.STREAM.CREATE.SHOAL_JOBS" ||
			!strings.Contains(err.Error(), "shoal nats setup") {
			t.Fatalf("producer creating streams: %v", err)
		}
		// The admin sets up; then the producer and worker find everything.
		anc := role("admin")
		ajs, _ := fleet.Check(ctx, anc)
		if err := fleet.SetupStreams(ctx, ajs, fleet.Settings{}); err != nil {
			t.Fatal(err)
		}
		wnc := role("worker")
		wjs, _ := fleet.Check(ctx, wnc)
		if _, _, err := fleet.Provision(ctx, wjs, fleet.Settings{}, "default"); err != nil {
			t.Fatalf("worker provisioning its consumers: %v", err)
		}
		pnc2 := role("producer")
		pjs2, _ := fleet.Check(ctx, pnc2)
		if err := fleet.ProvisionStreams(ctx, pjs2, fleet.Settings{}); err != nil {
			t.Fatalf("producer after setup: %v", err)
		}
		if _, _, err := fleet.EnsureConsumers(ctx, pjs2, fleet.Settings{}, "default"); err != nil {
			t.Fatalf("producer's consumers: %v", err)
		}
		if _, err := pjs2.Publish(ctx, fleet.DefaultNames().JobSubject("default", false), []byte(`{}`)); err != nil {
			t.Fatalf("producer publishing a job: %v", err)
		}
		// A producer may not delete a stream. (DeniedContext: the server
		// reports the refusal on the connection, not to the request.)
		dctx, stop := fleet.DeniedContext(ctx, pnc2)
		defer stop()
		err = fleet.Explain(pnc2, pjs2.DeleteStream(dctx, fleet.DefaultJobsStream))
		if !errors.As(err, &pe) || pe.Subject != "$JS.API.STREAM.DELETE.SHOAL_JOBS" || pe.Op != "publish" {
			t.Fatalf("producer deleting a stream: %v", err)
		}
		// A worker publishes and reads a run's halt (--max-failures): the
		// reason of the halt is read back from the results stream.
		if err := fleet.PublishHalt(ctx, wjs, fleet.DefaultNames(), fleet.Halt{RunID: "r0", Reason: "3 tenants failed"}); err != nil {
			t.Fatalf("worker publishing a halt: %v", err)
		}
		rs, err := wjs.Stream(ctx, fleet.DefaultResultsStream)
		if err != nil {
			t.Fatalf("worker opening the results stream: %v", err)
		}
		if reason, _, err := fleet.HaltState(ctx, rs, fleet.DefaultNames(), "r0", 3); err != nil || reason != "3 tenants failed" {
			t.Fatalf("worker reading the halt: %q, %v", reason, err)
		}
		// A worker may not publish a job.
		dctx, stop = fleet.DeniedContext(ctx, wnc)
		defer stop()
		_, err = wjs.Publish(dctx, fleet.DefaultNames().JobSubject("default", true), []byte(`{}`))
		err = fleet.Explain(wnc, err)
		if !errors.As(err, &pe) || pe.Subject != "shoal.jobs.default.high" || !errors.Is(err, fleet.ErrPermission) {
			t.Fatalf("worker publishing a job: %v", err)
		}
		// A results reader may not publish a result.
		rnc := role("results")
		rjs, _ := fleet.Check(ctx, rnc)
		dctx, stop = fleet.DeniedContext(ctx, rnc)
		defer stop()
		_, err = rjs.Publish(dctx, fleet.DefaultNames().ResultSubject("r1"), []byte(`{}`))
		if err = fleet.Explain(rnc, err); !errors.Is(err, fleet.ErrPermission) {
			t.Fatalf("results reader publishing: %v", err)
		}
	})
}

// An R3 stream on a single server is refused with a clear message.
func TestReplicasOnSingleServer(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	err := fleet.SetupStreams(context.Background(), js, fleet.Settings{Replicas: 3})
	if !errors.Is(err, fleet.ErrReplicas) || !strings.Contains(err.Error(), "single server") || !strings.Contains(err.Error(), "--replicas 1") {
		t.Fatalf("R3 on one server: %v", err)
	}
	// Automatic replicas on a single server: 1.
	if err := fleet.ProvisionStreams(context.Background(), js, fleet.Settings{}); err != nil {
		t.Fatal(err)
	}
	if r := fleet.StreamReplicas(context.Background(), js, fleet.DefaultJobsStream); r != 1 {
		t.Fatalf("replicas %d", r)
	}
}

// tokenServer is an embedded server with token (or other) authentication.
func authServer(t *testing.T, set func(o *server.Options)) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true, HTTPPort: 0}
	set(o)
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

func TestDialTokenAndNKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := authServer(t, func(o *server.Options) { o.Authorization = "tok-s3cr3t" })
	nc, _, err := fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{Token: "tok-s3cr3t"}})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	_, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{Token: "bad-s3cr3t"}})
	if !errors.Is(err, fleet.ErrAuth) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("wrong token: %v", err)
	}
	// A token in the URL is redacted.
	_, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: strings.Replace(url, "nats://", "nats://bad-s3cr3t@", 1)})
	if !errors.Is(err, fleet.ErrAuth) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("wrong token in URL: %v", err)
	}

	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	os.WriteFile(seedFile, seed, 0o600)
	url = authServer(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	nc, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{NKeyFile: seedFile}})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	other, _ := nkeys.CreateUser()
	oseed, _ := other.Seed()
	os.WriteFile(seedFile, oseed, 0o600)
	_, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{NKeyFile: seedFile}})
	if !errors.Is(err, fleet.ErrAuth) || strings.Contains(err.Error(), string(oseed)) {
		t.Fatalf("unknown nkey: %v", err)
	}
	os.WriteFile(seedFile, []byte("not a seed"), 0o600)
	if _, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{NKeyFile: seedFile}}); !errors.Is(err, fleet.ErrBadAuthConfig) {
		t.Fatalf("bad seed file: %v", err)
	}
}

// writePEM writes a certificate or key.
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TLS with a private CA and a client certificate (mutual TLS), tls:// URL.
func TestDialTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shoal test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cf, "CERTIFICATE", der)
		writePEM(t, kf, "EC PRIVATE KEY", kder)
		return cf, kf
	}
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", caDER)
	srvCert, srvKey := leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := leaf("client", 3, x509.ExtKeyUsageClientAuth)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKey, CaFile: caFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	url := authServer(t, func(o *server.Options) { o.TLSConfig = tc; o.TLS = true; o.TLSVerify = true; o.TLSTimeout = 5 })
	url = strings.Replace(url, "nats://", "tls://", 1)
	ctx := context.Background()
	nc, _, err := fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{TLSCA: caFile, TLSCert: cliCert, TLSKey: cliKey}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := nc.TLSConnectionState(); err != nil || st.Version < tls.VersionTLS12 {
		t.Fatalf("not TLS: %v", err)
	}
	nc.Close()
	// Without the client certificate the server refuses; without the CA
	// the client refuses the server: both fail at once.
	if _, _, err := fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{TLSCA: caFile}}); err == nil {
		t.Fatal("connected without a client certificate")
	}
	if _, _, err := fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{TLSCert: cliCert, TLSKey: cliKey}}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connected without the CA: %v", err)
	}
}

// A .creds file (operator mode, as nsc makes them): the user's JWT signed by
// an account with JetStream, itself signed by a trusted operator.
func TestDialCredsFile(t *testing.T) {
	t.Parallel()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	op, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	skp, _ := nkeys.CreateAccount()
	spub, _ := skp.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	resolver.Store(apub, ajwt)
	resolver.Store(spub, sjwt)
	url := authServer(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{op}
		o.AccountResolver = resolver
		o.SystemAccount = spub
	})
	creds := func(name string, signer nkeys.KeyPair) string {
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		uc := jwt.NewUserClaims(upub)
		uc.IssuerAccount = ""
		ujwt, err := uc.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := ukp.Seed()
		data, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, data, 0o600)
		return p
	}
	ctx := context.Background()
	nc, js, err := fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{CredsFile: creds("good.creds", akp)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.ProvisionStreams(ctx, js, fleet.Settings{}); err != nil {
		t.Fatalf("JetStream with the creds' account: %v", err)
	}
	nc.Close()
	// A user signed by an account the server does not know.
	other, _ := nkeys.CreateAccount()
	_, _, err = fleet.Dial(ctx, fleet.DialOptions{URL: url, Auth: fleet.Auth{CredsFile: creds("other.creds", other)}})
	if !errors.Is(err, fleet.ErrAuth) || strings.Contains(err.Error(), "SU") {
		t.Fatalf("creds of an unknown account: %v", err)
	}
}
