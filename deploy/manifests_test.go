package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"
)

// cliFlags is the command line the deploy files may use: the contract's
// commands and flags (plus the worker's documented flags and `produce
// --node`, which routes jobs to shoal.jobs.<node>). Global flags are
// accepted everywhere. TestFlagsExistInCLI checks the table against the
// built binary's --help.
var cliFlags = map[string][]string{
	"work": {"concurrency", "node", "backup-dir", "ack-wait", "max-deliver", "listen", "nats", "dir",
		"backup-root", "keep", "keep-for", "shutdown-timeout", "backoff"},
	"produce":      {"root", "pattern", "only-behind", "run-id", "wait", "report", "node", "nats", "dir", "timeout", "canary", "max-failures"},
	"run":          {"root", "pattern", "workers", "report", "dir", "canary", "max-failures"},
	"enqueue":      {"db", "wait", "nats", "dir"},
	"results":      {"run-id", "follow", "json", "nats"},
	"nats setup":   {"nats", "node", "ack-wait", "max-deliver", "replicas", "duplicates", "results-max-age"},
	"fleet status": {"root", "pattern", "json", "dir"},
	"migrate":      {"db", "dir", "to", "backup", "dry-run", "allow-changed", "allow-out-of-order", "json"},
	"status":       {"db", "dir", "json"},
	"down":         {"db", "dir", "to"},
	"restore":      {"db"},
	"backup":       {"db"},
}

var globalFlags = []string{"log-format", "log-level", "help"}

// contractEnv are the environment variables shoal reads.
var contractEnv = map[string]bool{
	"SHOAL_DB": true, "SHOAL_DIR": true, "SHOAL_NATS": true, "SHOAL_ROOT": true,
	"SHOAL_LOG_FORMAT": true, "SHOAL_LOG_LEVEL": true,
	// Added to the producer's message for a root where the pattern matches
	// nothing: the compose file says where tenant DBs must be put.
	"SHOAL_EMPTY_HINT": true,
	// NATS authentication and TLS (every command that talks to NATS) and
	// `nats setup --replicas`.
	"SHOAL_NATS_CREDS": true, "SHOAL_NATS_NKEY": true, "SHOAL_NATS_USER": true, "SHOAL_NATS_PASSWORD": true,
	"SHOAL_NATS_TOKEN": true, "SHOAL_NATS_TLS_CA": true, "SHOAL_NATS_TLS_CERT": true, "SHOAL_NATS_TLS_KEY": true,
	"SHOAL_NATS_REPLICAS": true,
}

// natsRole is the user of deploy/nats/accounts.conf each command runs as.
var natsRole = map[string]string{"work": "shoal-worker", "produce": "shoal-producer", "nats setup": "shoal-admin",
	"enqueue": "shoal-enqueue", "results": "shoal-results"}

// checkCommand checks that args (without the program name) is a known
// command with known flags, and returns the flags given as name -> value.
func checkCommand(t *testing.T, where string, args []string) (string, map[string]string) {
	t.Helper()
	var cmd string
	var rest []string
	switch {
	case len(args) >= 2 && (args[0] == "fleet" || args[0] == "nats"):
		cmd, rest = args[0]+" "+args[1], args[2:]
	case len(args) >= 1:
		cmd, rest = args[0], args[1:]
	default:
		t.Errorf("%s: empty command", where)
		return "", nil
	}
	known, ok := cliFlags[cmd]
	if !ok {
		t.Errorf("%s: command %q is not a shoal command of the contract", where, cmd)
		return cmd, nil
	}
	flags := map[string]string{}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: %s: unexpected argument %q (use --flag=value)", where, cmd, a)
			continue
		}
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !contains(known, name) && !contains(globalFlags, name) {
			t.Errorf("%s: %s: flag --%s is not in the contract (known: %v)", where, cmd, name, known)
		}
		flags[name] = val
	}
	return cmd, flags
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --- generic YAML access -------------------------------------------------

type obj = map[string]any

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	switch x := get(v, path...).(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func strs(v any, path ...string) []string {
	var out []string
	for _, x := range list(v, path...) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func intval(t *testing.T, where string, v any, path ...string) int {
	t.Helper()
	x, ok := get(v, path...).(int)
	if !ok {
		t.Errorf("%s: %s: want an integer, got %#v", where, strings.Join(path, "."), get(v, path...))
	}
	return x
}

func readDocs(t *testing.T, file string) []obj {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", file, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// --- Kubernetes ----------------------------------------------------------

type k8sObject struct {
	file string
	doc  obj
}

func (o k8sObject) String() string {
	return fmt.Sprintf("%s: %s/%s", o.file, str(o.doc, "kind"), str(o.doc, "metadata", "name"))
}

func loadK8s(t *testing.T) []k8sObject {
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	var objs []k8sObject
	for _, f := range files {
		docs := readDocs(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: no documents", f)
		}
		for _, d := range docs {
			objs = append(objs, k8sObject{f, d})
		}
	}
	return objs
}

// podSpec returns the pod template of a workload, or nil.
func podSpec(o obj) (template obj, spec obj) {
	var tpl any
	switch str(o, "kind") {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		tpl = get(o, "spec", "template")
	case "CronJob":
		tpl = get(o, "spec", "jobTemplate", "spec", "template")
	default:
		return nil, nil
	}
	t, _ := tpl.(obj)
	s, _ := get(tpl, "spec").(obj)
	return t, s
}

func TestK8sManifests(t *testing.T) {
	objs := loadK8s(t)
	kinds := map[string]int{}
	configMaps := map[string]obj{}
	for _, o := range objs {
		kinds[str(o.doc, "kind")]++
		if str(o.doc, "kind") == "ConfigMap" {
			configMaps[str(o.doc, "metadata", "name")] = o.doc
		}
	}
	for _, k := range []string{"Namespace", "ConfigMap", "Deployment", "Job", "CronJob", "NetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("deploy/k8s has no %s", k)
		}
	}

	// NATS is an existing installation, configurable in one place.
	cm := configMaps["shoal"]
	if cm == nil {
		t.Fatal("no ConfigMap shoal")
	}
	for k := range get(cm, "data").(obj) {
		if !contractEnv[k] {
			t.Errorf("ConfigMap shoal: %s is not an environment variable shoal reads", k)
		}
	}
	if u := str(cm, "data", "SHOAL_NATS"); !strings.HasPrefix(u, "nats://") || !strings.Contains(u, ".svc") {
		t.Errorf("ConfigMap shoal: SHOAL_NATS = %q, want the existing NATS service URL", u)
	}
	root, dir := str(cm, "data", "SHOAL_ROOT"), str(cm, "data", "SHOAL_DIR")
	if root == "" || dir == "" {
		t.Errorf("ConfigMap shoal: SHOAL_ROOT %q, SHOAL_DIR %q must be set", root, dir)
	}

	workers, setups := 0, 0
	for _, o := range objs {
		doc := o.doc
		kind := str(doc, "kind")
		if str(doc, "apiVersion") == "" || str(doc, "metadata", "name") == "" {
			t.Errorf("%s: apiVersion and metadata.name are required", o)
		}
		if kind != "Namespace" && str(doc, "metadata", "namespace") != "shoal" {
			t.Errorf("%s: namespace %q, want shoal", o, str(doc, "metadata", "namespace"))
		}
		if str(doc, "metadata", "labels", "app.kubernetes.io/name") != "shoal" {
			t.Errorf("%s: missing label app.kubernetes.io/name=shoal", o)
		}
		tpl, spec := podSpec(doc)
		if spec == nil {
			continue
		}
		// selector must match the template's labels
		if sel, ok := get(doc, "spec", "selector", "matchLabels").(obj); ok {
			for k, v := range sel {
				if str(tpl, "metadata", "labels", k) != fmt.Sprint(v) {
					t.Errorf("%s: selector %s=%v does not match the pod template", o, k, v)
				}
			}
		}
		if str(tpl, "metadata", "labels", "app.kubernetes.io/name") != "shoal" {
			t.Errorf("%s: pod template lacks app.kubernetes.io/name=shoal (the NetworkPolicy selects it)", o)
		}
		checkPodSecurity(t, o, spec)
		volumes := map[string]obj{}
		for _, v := range list(spec, "volumes") {
			volumes[str(v, "name")] = v.(obj)
			if n := str(v, "configMap", "name"); n != "" && n != "shoal-migrations" && configMaps[n] == nil {
				t.Errorf("%s: volume %s uses ConfigMap %s, defined nowhere", o, str(v, "name"), n)
			}
		}
		containers := list(spec, "containers")
		if len(containers) != 1 {
			t.Errorf("%s: want one container, got %d", o, len(containers))
		}
		for _, c := range containers {
			where := fmt.Sprintf("%s container %s", o, str(c, "name"))
			if img := str(c, "image"); !strings.HasPrefix(img, "shoal:") {
				t.Errorf("%s: image %q, want shoal:<tag>", where, img)
			}
			if len(list(c, "command")) != 0 {
				t.Errorf("%s: command overrides the image's ENTRYPOINT /shoal; use args", where)
			}
			cmd, flags := checkCommand(t, where, strs(c, "args"))
			if str(list(c, "envFrom")[0], "configMapRef", "name") != "shoal" {
				t.Errorf("%s: envFrom must reference ConfigMap shoal", where)
			}
			for _, e := range list(c, "env") {
				if !contractEnv[str(e, "name")] {
					t.Errorf("%s: env %s is not read by shoal", where, str(e, "name"))
				}
			}
			for _, r := range []string{"cpu", "memory"} {
				if str(c, "resources", "requests", r) == "" {
					t.Errorf("%s: no resources.requests.%s", where, r)
				}
			}
			if str(c, "resources", "limits", "memory") == "" {
				t.Errorf("%s: no memory limit", where)
			}
			if get(c, "securityContext", "allowPrivilegeEscalation") != false {
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			}
			mounts := map[string]string{}
			for _, m := range list(c, "volumeMounts") {
				if volumes[str(m, "name")] == nil {
					t.Errorf("%s: volumeMount %s has no volume", where, str(m, "name"))
				}
				mounts[str(m, "mountPath")] = str(m, "name")
			}
			if mounts[root] == "" && cmd != "nats setup" {
				t.Errorf("%s: SHOAL_ROOT %s is not mounted", where, root)
			}
			if mounts[dir] == "" && cmd != "nats setup" {
				t.Errorf("%s: SHOAL_DIR %s (migrations) is not mounted", where, dir)
			}
			// Authentication on: the role's user, the password from the Secret.
			envs := map[string]obj{}
			for _, e := range list(c, "env") {
				envs[str(e, "name")] = e.(obj)
			}
			if u := str(envs["SHOAL_NATS_USER"], "value"); u != natsRole[cmd] {
				t.Errorf("%s: SHOAL_NATS_USER %q, want %q", where, u, natsRole[cmd])
			}
			if str(envs["SHOAL_NATS_PASSWORD"], "valueFrom", "secretKeyRef", "name") != "shoal-nats-users" ||
				"shoal-"+str(envs["SHOAL_NATS_PASSWORD"], "valueFrom", "secretKeyRef", "key") != natsRole[cmd] {
				t.Errorf("%s: SHOAL_NATS_PASSWORD must come from Secret shoal-nats-users, key of the role", where)
			}
			if get(c, "securityContext", "readOnlyRootFilesystem") == true && mounts["/tmp"] == "" {
				t.Errorf("%s: read-only root filesystem without a /tmp volume (SQLite temp files)", where)
			}
			switch cmd {
			case "work":
				workers++
				checkWorker(t, where, doc, spec, c.(obj), flags, mounts)
			case "produce":
				if _, ok := flags["wait"]; !ok {
					t.Errorf("%s: produce without --wait cannot report the run's status", where)
				}
				if str(spec, "restartPolicy") != "Never" {
					t.Errorf("%s: restartPolicy %q, want Never (a failed run must show as a failed Job)", where, str(spec, "restartPolicy"))
				}
				checkNodePinning(t, where, spec, flags)
				if kind == "CronJob" {
					if _, ok := flags["only-behind"]; !ok {
						t.Errorf("%s: straggler CronJob without --only-behind", where)
					}
					if str(doc, "spec", "concurrencyPolicy") != "Forbid" {
						t.Errorf("%s: concurrencyPolicy must be Forbid", where)
					}
					if str(doc, "spec", "schedule") == "" {
						t.Errorf("%s: no schedule", where)
					}
				} else if kind == "Job" {
					if intval(t, where, doc, "spec", "backoffLimit") != 0 {
						t.Errorf("%s: backoffLimit must be 0 (shoal retries per DB itself)", where)
					}
				}
			case "nats setup":
				if str(spec, "restartPolicy") != "Never" || kind != "Job" {
					t.Errorf("%s: want a one-shot Job", where)
				}
				if flags["replicas"] != "3" {
					t.Errorf("%s: --replicas %q, want 3 for the three-node cluster", where, flags["replicas"])
				}
				setups++
			default:
				t.Errorf("%s: unexpected command %q", where, cmd)
			}
		}
	}
	if workers < 2 {
		t.Errorf("want the worker Deployment and a per-node example, found %d worker containers", workers)
	}
	if setups != 1 {
		t.Errorf("want one `nats setup` Job (the only role that creates streams), found %d", setups)
	}
}

func checkPodSecurity(t *testing.T, o k8sObject, spec obj) {
	t.Helper()
	if get(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: runAsNonRoot must be true", o)
	}
	if uid, _ := get(spec, "securityContext", "runAsUser").(int); uid == 0 {
		t.Errorf("%s: runAsUser must be a non-root uid (the image's is 65532)", o)
	}
}

func checkWorker(t *testing.T, where string, doc, spec, c obj, flags map[string]string, mounts map[string]string) {
	t.Helper()
	if str(doc, "kind") != "Deployment" {
		t.Errorf("%s: workers run as a Deployment", where)
	}
	listen := flags["listen"]
	_, portStr, ok := strings.Cut(listen, ":")
	if !ok {
		t.Fatalf("%s: --listen %q, want [host]:port", where, listen)
	}
	port, _ := strconv.Atoi(portStr)
	ports := map[string]int{}
	for _, p := range list(c, "ports") {
		ports[str(p, "name")] = get(p, "containerPort").(int)
	}
	probePort := func(probe string) int {
		v := get(c, probe, "httpGet", "port")
		switch x := v.(type) {
		case int:
			return x
		case string:
			return ports[x]
		}
		return -1
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s: %s path %q, want %s", where, probe, got, path)
		}
		if got := probePort(probe); got != port {
			t.Errorf("%s: %s port %d, want the --listen port %d", where, probe, got, port)
		}
	}
	if str(doc, "spec", "template", "metadata", "annotations", "prometheus.io/port") != portStr {
		t.Errorf("%s: prometheus.io/port annotation does not match --listen", where)
	}
	ackWait, err := time.ParseDuration(flags["ack-wait"])
	if err != nil {
		t.Errorf("%s: --ack-wait %q: %v", where, flags["ack-wait"], err)
	}
	grace := time.Duration(intval(t, where, spec, "terminationGracePeriodSeconds")) * time.Second
	if grace < 5*time.Minute || grace <= ackWait {
		t.Errorf("%s: terminationGracePeriodSeconds %v: must exceed the longest migration (>= 5m) and --ack-wait %v", where, grace, ackWait)
	}
	if st, err := time.ParseDuration(flags["shutdown-timeout"]); err != nil || st >= grace {
		t.Errorf("%s: --shutdown-timeout %q must be below terminationGracePeriodSeconds %v (jobs are given back, not killed)", where, flags["shutdown-timeout"], grace)
	}
	if n, err := strconv.Atoi(flags["max-deliver"]); err != nil || n < 2 {
		t.Errorf("%s: --max-deliver %q, want >= 2 so a killed worker's job is retried", where, flags["max-deliver"])
	}
	if n, err := strconv.Atoi(flags["concurrency"]); err != nil || n < 1 {
		t.Errorf("%s: --concurrency %q", where, flags["concurrency"])
	}
	if bd := flags["backup-dir"]; bd == "" || mounts[bd] == "" {
		t.Errorf("%s: --backup-dir %q must be a mounted volume", where, bd)
	}
	checkNodePinning(t, where, spec, flags)
}

// checkNodePinning: a pod with a nodeSelector on a host must consume (or
// produce) that host's jobs, --node = the host name, and vice versa.
func checkNodePinning(t *testing.T, where string, spec obj, flags map[string]string) {
	t.Helper()
	host := str(spec, "nodeSelector", "kubernetes.io/hostname")
	node := flags["node"]
	switch {
	case host != "" && node != host:
		t.Errorf("%s: pinned to node %s but --node=%q", where, host, node)
	case host == "" && node != "" && node != "default":
		t.Errorf("%s: --node=%s but not pinned to that node", where, node)
	}
	if host != "" {
		for _, v := range list(spec, "volumes") {
			if get(v, "persistentVolumeClaim") == nil && get(v, "hostPath") == nil && get(v, "configMap") == nil && get(v, "emptyDir") == nil {
				t.Errorf("%s: volume %s: pinned workers use the node's hostPath or a local PVC", where, str(v, "name"))
			}
		}
	}
}

func TestK8sPerNodeExample(t *testing.T) {
	nodes := map[string]bool{}
	for _, o := range loadK8s(t) {
		_, spec := podSpec(o.doc)
		if h := str(spec, "nodeSelector", "kubernetes.io/hostname"); h != "" {
			if get(list(spec, "volumes")[0], "hostPath") == nil {
				t.Errorf("%s: the tenants volume of a pinned pod should be the node's hostPath", o)
			}
			nodes[h] = true
		}
	}
	if len(nodes) < 2 {
		t.Errorf("want an example with at least two storage nodes, got %v", nodes)
	}
}

func TestK8sNetworkPolicy(t *testing.T) {
	var np obj
	for _, o := range loadK8s(t) {
		if str(o.doc, "kind") == "NetworkPolicy" {
			np = o.doc
		}
	}
	if np == nil {
		t.Fatal("no NetworkPolicy")
	}
	if str(np, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") != "shoal" {
		t.Error("NetworkPolicy must select every shoal pod")
	}
	if !contains(strs(np, "spec", "policyTypes"), "Egress") {
		t.Error("NetworkPolicy must restrict egress")
	}
	var ports []string
	for _, rule := range list(np, "spec", "egress") {
		if len(list(rule, "to")) == 0 {
			t.Error("an egress rule without 'to' allows every destination")
		}
		for _, p := range list(rule, "ports") {
			ports = append(ports, str(p, "protocol")+"/"+str(p, "port"))
		}
	}
	sort.Strings(ports)
	if got := strings.Join(ports, ","); got != "TCP/4222,TCP/53,UDP/53" {
		t.Errorf("egress ports %s, want NATS (TCP/4222) and DNS only", got)
	}
}

// --- docker compose --------------------------------------------------------

// interpolate applies compose's ${VAR:-default} with an empty environment.
var varRE = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?-([^}]*))?\}`)

func interpolate(s string) string {
	return varRE.ReplaceAllStringFunc(s, func(m string) string {
		return varRE.FindStringSubmatch(m)[3]
	})
}

func composeCommand(svc any) []string {
	var out []string
	for _, a := range strs(svc, "command") {
		out = append(out, interpolate(a))
	}
	return out
}

func TestCompose(t *testing.T) {
	docs := readDocs(t, "../docker-compose.yml")
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents", len(docs))
	}
	c := docs[0]
	services, _ := get(c, "services").(obj)
	for _, name := range []string{"nats", "worker", "producer", "stragglers"} {
		if services[name] == nil {
			t.Fatalf("docker-compose.yml: no service %s", name)
		}
	}
	for _, v := range []string{"nats", "tenants", "backups"} {
		if _, ok := get(c, "volumes").(obj)[v]; !ok {
			t.Errorf("docker-compose.yml: no named volume %s", v)
		}
	}

	nats := services["nats"]
	if str(nats, "image") != "nats:2.10-alpine" {
		t.Errorf("nats image %q: users get the official image", str(nats, "image"))
	}
	// JetStream with a store dir on the volume, and shoal's users: the
	// shipped config, mounted read-only.
	cmd := strings.Join(strs(nats, "command"), " ")
	if cmd != "-c /etc/nats/nats.conf" || !contains(strs(nats, "volumes"), "./deploy/nats:/etc/nats:ro") {
		t.Errorf("nats command %q, volumes %v: want -c /etc/nats/nats.conf from ./deploy/nats", cmd, strs(nats, "volumes"))
	}
	conf, err := os.ReadFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?s)jetstream \{\s*store_dir: "/data"\s*\}`).Match(conf) || !strings.Contains(string(conf), "include ./accounts.conf") ||
		!strings.Contains(string(conf), "http_port: 8222") {
		t.Errorf("deploy/nats/nats.conf: want JetStream stored in /data, monitoring on 8222 (health check), the users of accounts.conf:\n%s", conf)
	}
	if !contains(strs(nats, "volumes"), "nats:/data") {
		t.Errorf("nats: JetStream store must be on the persistent volume nats:/data")
	}
	for k := range get(nats, "environment").(obj) {
		if !regexp.MustCompile(`^SHOAL_NATS_(ADMIN|PRODUCER|WORKER|ENQUEUE|RESULTS)_PASSWORD$`).MatchString(k) {
			t.Errorf("nats: environment %s is not a password accounts.conf reads", k)
		}
	}
	if len(strs(nats, "healthcheck", "test")) == 0 {
		t.Error("nats: no healthcheck")
	}

	for name, svc := range services {
		where := "docker-compose.yml service " + name
		if str(svc, "restart") == "" {
			t.Errorf("%s: no restart policy", where)
		}
		if name == "nats" {
			continue
		}
		if img := str(svc, "image"); !strings.HasPrefix(interpolate(img), "shoal:") {
			t.Errorf("%s: image %q", where, img)
		}
		env, _ := get(svc, "environment").(obj)
		for k := range env {
			if !contractEnv[k] {
				t.Errorf("%s: environment %s is not read by shoal", where, k)
			}
		}
		if str(env, "SHOAL_NATS") != "nats://nats:4222" {
			t.Errorf("%s: SHOAL_NATS %q", where, str(env, "SHOAL_NATS"))
		}
		mounts := map[string]bool{}
		for _, v := range strs(svc, "volumes") {
			parts := strings.Split(interpolate(v), ":")
			mounts[parts[1]] = true
		}
		for _, p := range []string{str(env, "SHOAL_ROOT"), str(env, "SHOAL_DIR")} {
			if !mounts[p] {
				t.Errorf("%s: %s is not mounted", where, p)
			}
		}
		if get(svc, "read_only") != true || !contains(strs(svc, "tmpfs"), "/tmp") || !contains(strs(svc, "cap_drop"), "ALL") {
			t.Errorf("%s: want read_only, a /tmp tmpfs and cap_drop ALL", where)
		}
		if str(get(svc, "depends_on"), "nats", "condition") != "service_healthy" {
			t.Errorf("%s: should wait for NATS to be healthy", where)
		}
		sub, flags := checkCommand(t, where, composeCommand(svc))
		// Authentication on: each service with its role's user.
		if user := str(env, "SHOAL_NATS_USER"); user != natsRole[sub] {
			t.Errorf("%s: SHOAL_NATS_USER %q, want %q for %s", where, user, natsRole[sub], sub)
		} else if pw := str(env, "SHOAL_NATS_PASSWORD"); !strings.HasPrefix(pw, "${SHOAL_NATS_"+strings.ToUpper(strings.TrimPrefix(user, "shoal-"))+"_PASSWORD:?") {
			t.Errorf("%s: SHOAL_NATS_PASSWORD %q: want the role's password from the environment, required", where, pw)
		}
		switch name {
		case "worker":
			if sub != "work" || str(svc, "restart") != "unless-stopped" {
				t.Errorf("%s: want `work` with restart unless-stopped", where)
			}
			if !mounts[flags["backup-dir"]] {
				t.Errorf("%s: --backup-dir %q not on a volume", where, flags["backup-dir"])
			}
			hc := strings.Join(strs(svc, "healthcheck", "test"), " ")
			if !strings.Contains(hc, "/httpcheck") || !strings.Contains(hc, flags["listen"][strings.Index(flags["listen"], ":"):]+"/healthz") {
				t.Errorf("%s: healthcheck %q must probe /healthz on the --listen port", where, hc)
			}
			d, err := time.ParseDuration(str(svc, "stop_grace_period"))
			if err != nil || d < 5*time.Minute {
				t.Errorf("%s: stop_grace_period %q must exceed the longest migration", where, str(svc, "stop_grace_period"))
			}
			if st, err := time.ParseDuration(flags["shutdown-timeout"]); err != nil || st >= d {
				t.Errorf("%s: --shutdown-timeout %q must be below stop_grace_period %v", where, flags["shutdown-timeout"], d)
			}
			if str(svc, "container_name") != "" || get(svc, "ports") != nil {
				t.Errorf("%s: container_name or published ports prevent --scale worker=N", where)
			}
		case "nats-setup":
			if sub != "nats setup" || str(svc, "restart") != "no" {
				t.Errorf("%s: want a one-shot `nats setup`", where)
			}
			if str(get(services["worker"], "depends_on"), "nats-setup", "condition") != "service_completed_successfully" {
				t.Errorf("%s: the workers must wait for it (their user may not create streams)", where)
			}
		case "producer", "stragglers":
			if sub != "produce" || str(svc, "restart") != "no" {
				t.Errorf("%s: want a one-shot `produce`", where)
			}
			if _, ok := flags["wait"]; !ok {
				t.Errorf("%s: produce without --wait does not exit with the run's status", where)
			}
			_, behind := flags["only-behind"]
			if behind != (name == "stragglers") {
				t.Errorf("%s: --only-behind is for the straggler re-check only", where)
			}
			if name == "stragglers" && !contains(strs(svc, "profiles"), "cron") {
				t.Errorf("%s: must be behind profile cron", where)
			}
		}
	}
}

func TestComposeTestOverride(t *testing.T) {
	docs := readDocs(t, "compose.test.yml")
	services, _ := get(docs[0], "services").(obj)
	nats := services["nats"]
	if img := interpolate(str(nats, "image")); img != "shoal-nats:e2e" {
		t.Errorf("compose.test.yml: nats image %q, want the locally built shoal-nats:e2e", img)
	}
	if hc := strs(nats, "healthcheck", "test"); len(hc) < 2 || hc[1] != "/httpcheck" {
		t.Errorf("compose.test.yml: the scratch NATS image has no wget: healthcheck %v", hc)
	}
	base := readDocs(t, "../docker-compose.yml")[0]
	for name := range services {
		if get(base, "services", name) == nil {
			t.Errorf("compose.test.yml overrides service %s, absent from docker-compose.yml", name)
		}
	}
}

// TestComposeConfig runs `docker compose config` (or docker-compose) when
// available: the file and the test override must be clean.
func TestComposeConfig(t *testing.T) {
	var base []string
	if exec.Command("docker", "compose", "version").Run() == nil {
		base = []string{"docker", "compose"}
	} else if p, err := exec.LookPath("docker-compose"); err == nil {
		base = []string{p}
	} else {
		t.Skip("neither `docker compose` nor docker-compose is installed")
	}
	passwords := []string{}
	for _, r := range []string{"ADMIN", "PRODUCER", "WORKER", "ENQUEUE", "RESULTS"} {
		passwords = append(passwords, "SHOAL_NATS_"+r+"_PASSWORD=pw-"+r)
	}
	for _, files := range [][]string{{"-f", "../docker-compose.yml"}, {"-f", "../docker-compose.yml", "-f", "compose.test.yml"},
		{"-f", "../docker-compose.yml", "-f", "compose.cluster.yml"}, {"-f", "../docker-compose.yml", "-f", "compose.cluster.yml", "-f", "compose.test.yml", "-f", "compose.cluster.test.yml"}} {
		args := append(append(append([]string{}, base[1:]...), files...), "config", "-q")
		cmd := exec.Command(base[0], args...)
		cmd.Env = append(os.Environ(), passwords...)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("%s %s: %v\n%s", base[0], strings.Join(args, " "), err, out)
		}
	}
	// Without the NATS passwords, compose refuses to start anything.
	args := append(append([]string{}, base[1:]...), "-f", "../docker-compose.yml", "config", "-q")
	cmd := exec.Command(base[0], args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SHOAL_NATS_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "set the NATS passwords") {
		t.Errorf("compose config without the NATS passwords: %v\n%s", err, out)
	}
}

// --- Dockerfiles -----------------------------------------------------------

func TestDockerfiles(t *testing.T) {
	for file, want := range map[string][]string{
		"../Dockerfile": {
			"FROM scratch", "COPY bin/shoal /shoal", `ENTRYPOINT ["/shoal"]`, "USER 65532",
			"/data/tenants", "/data/backups", "/httpcheck",
		},
		"docker/nats.Dockerfile": {
			"FROM scratch", "COPY bin/natsd /nats-server", `ENTRYPOINT ["/nats-server"]`, "USER 65532", `"-js"`,
		},
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var froms int
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "FROM ") {
				froms++
			}
		}
		if froms != 1 {
			t.Errorf("%s: %d FROM lines; the image is FROM scratch around host-built binaries", file, froms)
		}
		for _, w := range want {
			if !bytes.Contains(data, []byte(w)) {
				t.Errorf("%s: missing %q", file, w)
			}
		}
		for _, src := range regexp.MustCompile(`(?m)^COPY (?:--\S+ )*(.+) \S+$`).FindAllStringSubmatch(string(data), -1) {
			for _, s := range strings.Fields(src[1]) {
				if strings.HasPrefix(s, "bin/") {
					continue // built by scripts/e2e.sh
				}
				if _, err := os.Stat(filepath.Join("..", s)); err != nil {
					t.Errorf("%s: COPY source %s: %v", file, s, err)
				}
			}
		}
	}
	ign, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"!bin/shoal", "!bin/natsd", "!bin/httpcheck", "!deploy/docker/rootfs"} {
		if !bytes.Contains(ign, []byte(w)) {
			t.Errorf(".dockerignore: missing %s", w)
		}
	}
	passwd, err := os.ReadFile("docker/rootfs/etc/passwd")
	if err != nil || !bytes.Contains(passwd, []byte(":65532:65532:")) {
		t.Errorf("docker/rootfs/etc/passwd must define uid 65532: %v", err)
	}
}

// --- systemd ---------------------------------------------------------------

type unit map[string]map[string][]string

func readUnit(t *testing.T, file string) unit {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", file, i+1, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) one(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func readEnvFile(t *testing.T, file string) map[string]string {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return env
}

func TestSystemdUnits(t *testing.T) {
	env := readEnvFile(t, "systemd/shoal.env")
	for k := range env {
		if !contractEnv[k] && !strings.HasPrefix(k, "SHOAL_") {
			t.Errorf("shoal.env: unexpected %s", k)
		}
	}
	for _, k := range []string{"SHOAL_NATS", "SHOAL_ROOT", "SHOAL_DIR"} {
		if env[k] == "" {
			t.Errorf("shoal.env: %s not set", k)
		}
	}
	hardening := map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
	}
	for file, wantCmd := range map[string]string{
		"systemd/shoal-worker.service":     "work",
		"systemd/shoal-stragglers.service": "produce",
	} {
		u := readUnit(t, file)
		exe := u.one("Service", "ExecStart")
		fields := strings.Fields(exe)
		if len(fields) < 2 || !filepath.IsAbs(fields[0]) {
			t.Fatalf("%s: ExecStart %q", file, exe)
		}
		// expand ${VAR} from Environment= then the env file, as systemd does
		vars := map[string]string{}
		for _, e := range u["Service"]["Environment"] {
			for _, kv := range strings.Fields(e) {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
		}
		for k, v := range env {
			vars[k] = v
		}
		var args []string
		for _, f := range fields[1:] {
			args = append(args, os.Expand(f, func(k string) string {
				v, ok := vars[k]
				if !ok {
					t.Errorf("%s: ${%s} is set neither by Environment= nor shoal.env", file, k)
				}
				return v
			}))
		}
		cmd, flags := checkCommand(t, file, args)
		if cmd != wantCmd {
			t.Errorf("%s: command %q, want %q", file, cmd, wantCmd)
		}
		if u.one("Service", "User") == "" || u.one("Service", "User") == "root" {
			t.Errorf("%s: must run as a dedicated user", file)
		}
		if u.one("Service", "EnvironmentFile") != "-/etc/shoal/shoal.env" {
			t.Errorf("%s: EnvironmentFile", file)
		}
		for k, v := range hardening {
			if u.one("Service", k) != v {
				t.Errorf("%s: %s=%q, want %q", file, k, u.one("Service", k), v)
			}
		}
		rw := strings.Fields(u.one("Service", "ReadWritePaths"))
		covered := func(p string) bool {
			for _, d := range rw {
				if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
					return true
				}
			}
			return false
		}
		if !covered(env["SHOAL_ROOT"]) {
			t.Errorf("%s: ReadWritePaths %v does not cover SHOAL_ROOT %s", file, rw, env["SHOAL_ROOT"])
		}
		switch cmd {
		case "work":
			if !covered(flags["backup-dir"]) {
				t.Errorf("%s: ReadWritePaths %v does not cover --backup-dir %s", file, rw, flags["backup-dir"])
			}
			if u.one("Service", "KillSignal") != "SIGTERM" || u.one("Service", "Restart") == "" {
				t.Errorf("%s: want KillSignal=SIGTERM and a Restart policy", file)
			}
			if !strings.HasSuffix(u.one("Service", "TimeoutStopSec"), "min") {
				t.Errorf("%s: TimeoutStopSec must exceed the longest migration", file)
			}
			if u.one("Install", "WantedBy") == "" {
				t.Errorf("%s: not installable", file)
			}
		case "produce":
			if u.one("Service", "Type") != "oneshot" {
				t.Errorf("%s: Type=oneshot", file)
			}
			if _, ok := flags["only-behind"]; !ok {
				t.Errorf("%s: --only-behind", file)
			}
			if _, ok := flags["wait"]; !ok {
				t.Errorf("%s: --wait", file)
			}
		}
	}
	timer := readUnit(t, "systemd/shoal-stragglers.timer")
	if timer.one("Timer", "OnCalendar") == "" || timer.one("Timer", "Persistent") != "true" {
		t.Error("shoal-stragglers.timer: want OnCalendar and Persistent=true")
	}
	if u := timer.one("Timer", "Unit"); u != "shoal-stragglers.service" {
		t.Errorf("shoal-stragglers.timer: Unit=%q", u)
	}
	if timer.one("Install", "WantedBy") != "timers.target" {
		t.Error("shoal-stragglers.timer: WantedBy=timers.target")
	}
}

// --- the table against the real CLI ----------------------------------------

// TestFlagsExistInCLI builds shoal and checks that every command and flag the
// deploy files use appears in its --help. Skipped with -short.
func TestFlagsExistInCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "shoal")
	build := exec.Command(goBin, "build", "-o", bin, "../cmd/shoal")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shoal: %v\n%s", err, out)
	}
	for cmd, flags := range cliFlags {
		args := append(strings.Fields(cmd), "--help")
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("shoal %s --help: %v\n%s", cmd, err, out)
			continue
		}
		for _, f := range flags {
			if !regexp.MustCompile(`--` + regexp.QuoteMeta(f) + `\b`).Match(out) {
				t.Errorf("shoal %s: no flag --%s in --help", cmd, f)
			}
		}
	}
}

// The opt-in three-node cluster: same image as the first server, the
// shipped cluster config and users, R3 streams, every shoal service given
// the three URLs.
func TestComposeCluster(t *testing.T) {
	base := readDocs(t, "../docker-compose.yml")[0]
	c := readDocs(t, "compose.cluster.yml")[0]
	services, _ := get(c, "services").(obj)
	urls := "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222"
	for _, name := range []string{"nats", "nats-2", "nats-3"} {
		svc := services[name]
		if svc == nil {
			t.Fatalf("compose.cluster.yml: no service %s", name)
		}
		if cmd := strings.Join(strs(svc, "command"), " "); cmd != "-c /etc/nats/cluster.conf" {
			t.Errorf("%s: command %q", name, cmd)
		}
		if name == "nats" {
			continue
		}
		if img := interpolate(str(svc, "image")); img != str(base, "services", "nats", "image") {
			t.Errorf("%s: image %q, want the first server's %q", name, img, str(base, "services", "nats", "image"))
		}
		if !contains(strs(svc, "volumes"), name+":/data") || !contains(strs(svc, "volumes"), "./deploy/nats:/etc/nats:ro") {
			t.Errorf("%s: volumes %v", name, strs(svc, "volumes"))
		}
		if str(svc, "environment", "SERVER_NAME") != name {
			t.Errorf("%s: SERVER_NAME %q", name, str(svc, "environment", "SERVER_NAME"))
		}
		if len(strs(svc, "healthcheck", "test")) == 0 {
			t.Errorf("%s: no health check", name)
		}
	}
	conf, err := os.ReadFile("nats/cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"nats", "nats-2", "nats-3"} {
		if !strings.Contains(string(conf), `"nats-route://`+n+`:6222"`) {
			t.Errorf("deploy/nats/cluster.conf: no route to %s", n)
		}
	}
	if !strings.Contains(string(conf), "include ./accounts.conf") || !strings.Contains(string(conf), "server_name: $SERVER_NAME") {
		t.Errorf("deploy/nats/cluster.conf: want the shipped users and SERVER_NAME")
	}
	if str(services["nats-setup"], "environment", "SHOAL_NATS_REPLICAS") != "3" {
		t.Errorf("nats-setup: the cluster's streams need 3 replicas")
	}
	for name := range get(base, "services").(obj) {
		if name == "nats" {
			continue
		}
		if u := str(services[name], "environment", "SHOAL_NATS"); u != urls {
			t.Errorf("compose.cluster.yml: %s SHOAL_NATS %q, want %q", name, u, urls)
		}
	}
	ct := readDocs(t, "compose.cluster.test.yml")[0]
	for _, name := range []string{"nats-2", "nats-3"} {
		if img := interpolate(str(ct, "services", name, "image")); img != "shoal-nats:e2e" {
			t.Errorf("compose.cluster.test.yml: %s image %q, want the locally built shoal-nats:e2e", name, img)
		}
	}
}

// The three-node NATS StatefulSet: the shipped users (a byte-for-byte copy
// of deploy/nats/accounts.conf), a config the NATS server module accepts,
// the passwords from the Secret, one persistent volume per server, the
// client Service the shoal ConfigMap points at.
func TestK8sNATS(t *testing.T) {
	docs := readDocs(t, "k8s/nats/nats.yaml")
	byKind := map[string]obj{}
	for _, d := range docs {
		byKind[str(d, "kind")+"/"+str(d, "metadata", "name")] = d
		if str(d, "kind") != "Namespace" && str(d, "metadata", "namespace") != "nats" {
			t.Errorf("%s/%s: namespace %q, want nats", str(d, "kind"), str(d, "metadata", "name"), str(d, "metadata", "namespace"))
		}
		if str(d, "metadata", "labels", "app.kubernetes.io/name") != "nats" {
			t.Errorf("%s/%s: label app.kubernetes.io/name=nats (shoal's NetworkPolicy selects it)", str(d, "kind"), str(d, "metadata", "name"))
		}
	}
	cm := byKind["ConfigMap/nats-config"]
	if cm == nil {
		t.Fatal("no ConfigMap nats-config")
	}
	want, err := os.ReadFile("nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	if str(cm, "data", "accounts.conf") != string(want) {
		t.Errorf("ConfigMap nats-config accounts.conf differs from deploy/nats/accounts.conf: copy it")
	}
	// The server module parses it (passwords and POD_NAME from the env).
	dir := t.TempDir()
	for _, f := range []string{"nats.conf", "accounts.conf"} {
		os.WriteFile(filepath.Join(dir, f), []byte(str(cm, "data", f)), 0o600)
	}
	t.Setenv("POD_NAME", "nats-0")
	for _, r := range []string{"ADMIN", "PRODUCER", "WORKER", "ENQUEUE", "RESULTS"} {
		t.Setenv("SHOAL_NATS_"+r+"_PASSWORD", "pw")
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf of the ConfigMap: %v", err)
	}
	if !opts.JetStream || opts.StoreDir != "/data" || opts.Cluster.Port != 6222 || len(opts.Routes) != 3 || opts.ServerName != "nats-0" || len(opts.Users) != 5 {
		t.Errorf("nats.conf: JetStream %v store %q cluster port %d routes %d server %q users %d", opts.JetStream, opts.StoreDir, opts.Cluster.Port,
			len(opts.Routes), opts.ServerName, len(opts.Users))
	}
	ss := byKind["StatefulSet/nats"]
	if ss == nil {
		t.Fatal("no StatefulSet nats")
	}
	if intval(t, "StatefulSet nats", ss, "spec", "replicas") != 3 || str(ss, "spec", "serviceName") != "nats-headless" || byKind["Service/nats-headless"] == nil {
		t.Errorf("StatefulSet nats: want 3 replicas behind the headless Service nats-headless")
	}
	for _, r := range opts.Routes {
		if !regexp.MustCompile(`^nats-[0-2]\.nats-headless\.nats\.svc$`).MatchString(r.Hostname()) {
			t.Errorf("route %s is not a pod of the StatefulSet", r)
		}
	}
	c := list(ss, "spec", "template", "spec", "containers")[0]
	if str(c, "image") != "nats:2.10-alpine" || strings.Join(strs(c, "args"), " ") != "-c /etc/nats/nats.conf" {
		t.Errorf("nats container: image %q args %v", str(c, "image"), strs(c, "args"))
	}
	envs := map[string]obj{}
	for _, e := range list(c, "env") {
		envs[str(e, "name")] = e.(obj)
	}
	for _, r := range []string{"admin", "producer", "worker", "enqueue", "results"} {
		e := envs["SHOAL_NATS_"+strings.ToUpper(r)+"_PASSWORD"]
		if str(e, "valueFrom", "secretKeyRef", "name") != "shoal-nats-users" || str(e, "valueFrom", "secretKeyRef", "key") != r {
			t.Errorf("nats container: the %s password must come from Secret shoal-nats-users key %s", r, r)
		}
	}
	if str(envs["POD_NAME"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name" {
		t.Errorf("nats container: POD_NAME from metadata.name (server_name)")
	}
	if str(list(ss, "spec", "volumeClaimTemplates")[0], "metadata", "name") != "data" {
		t.Errorf("StatefulSet nats: no volumeClaimTemplate data (JetStream store)")
	}
	if byKind["PodDisruptionBudget/nats"] == nil {
		t.Errorf("no PodDisruptionBudget: a drain could take two servers and the quorum")
	}
	// shoal's ConfigMap points at the client Service.
	for _, o := range loadK8s(t) {
		if str(o.doc, "kind") == "ConfigMap" && str(o.doc, "metadata", "name") == "shoal" {
			if u := str(o.doc, "data", "SHOAL_NATS"); u != "nats://nats.nats.svc:4222" || byKind["Service/nats"] == nil {
				t.Errorf("SHOAL_NATS %q: want the Service nats of namespace nats", u)
			}
		}
	}
}
