package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options configure Start.
type Options struct {
	// AssetsDir holds kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok,
	// kwok-stages/ and helm3/helm4. Default: $KUBEBUILDER_ASSETS, else <repo>/bin/assets.
	AssetsDir string
	// Nodes is a node snapshot (kubectl get nodes -o yaml) whose Nodes to create. Optional.
	Nodes string
	// WorkDir receives certificates, etcd data, the kubeconfig, logs and Helm's folders.
	// Default: a new temporary folder, removed by Stop. A given folder is created if
	// missing, and then removed by Stop too (unless Keep is set).
	WorkDir string
	// Log receives progress lines. Nil discards them.
	Log io.Writer
	// StartTimeout bounds the start of etcd and kube-apiserver each. Default 60 s.
	StartTimeout time.Duration
	// CertManagerCRDs installs CertManagerCRDs (a stand-in for cert-manager, which the
	// examples expect) once the control plane is up.
	CertManagerCRDs bool
	// APIServerOnly starts etcd and kube-apiserver only: no controller manager, scheduler or
	// kwok. Benchmarks want a server that serves their requests and nothing else: kwok's node
	// heartbeats and the controllers' watches and writes would compete for the same CPUs and
	// change the objects being measured. Nothing makes nodes Ready then, so Nodes (which waits
	// for that) cannot be combined with it; create nodes with Client, status included.
	APIServerOnly bool
	// ServiceAccountTokens enables the API server's ServiceAccount admission plugin, which
	// envtest disables: pods then get their ServiceAccount's token volume (kube-api-access-*),
	// which a real kubelet mounts (test/node). kwok's pods need none, and without it a pod whose
	// ServiceAccount does not exist yet is admitted, as the e2e tests expect.
	ServiceAccountTokens bool
}

// Cluster is a running local control plane.
type Cluster struct {
	// Kubeconfig is a kubeconfig file with admin (system:masters) credentials.
	Kubeconfig string
	// Client is an admin clientset.
	Client kubernetes.Interface
	// Config is the admin REST config behind Client.
	Config *rest.Config
	// WorkDir is the folder that holds everything the cluster writes.
	WorkDir string
	// AssetsDir is where the binaries come from.
	AssetsDir string
	// Keep, when set before Stop, keeps WorkDir (logs, etcd data) even if the harness made it.
	Keep bool

	log        io.Writer
	env        *envtest.Environment
	procs      []*proc
	envProcs   []Process // etcd and kube-apiserver, started by envtest
	dog        *watchdog
	removeWork bool

	stopOnce    sync.Once
	stopErr     error
	interrupted atomic.Bool
}

// Start starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (only the
// first two with o.APIServerOnly), writes an admin kubeconfig, and creates o.Nodes' nodes
// (waiting until they are Ready). On error everything it started is stopped again, and the
// error names the log files.
func Start(ctx context.Context, o Options) (_ *Cluster, retErr error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.AssetsDir == "" {
		d, err := DefaultAssetsDir()
		if err != nil {
			return nil, fmt.Errorf("finding the assets folder: %w", err)
		}
		o.AssetsDir = d
	}
	assets, err := filepath.Abs(o.AssetsDir)
	if err != nil {
		return nil, fmt.Errorf("resolving the assets folder: %w", err)
	}
	if err := CheckAssets(assets); err != nil {
		return nil, err
	}
	if o.APIServerOnly && o.Nodes != "" {
		return nil, errors.New("localcluster: Options.Nodes waits for kwok to make the nodes Ready, and APIServerOnly starts no kwok")
	}
	c := &Cluster{AssetsDir: assets, log: o.Log}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "kmm-cluster-")
		if err != nil {
			return nil, fmt.Errorf("creating the work folder: %w", err)
		}
		c.WorkDir, c.removeWork = d, true
	} else {
		d, err := filepath.Abs(o.WorkDir)
		if err != nil {
			return nil, fmt.Errorf("resolving the work folder: %w", err)
		}
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			c.removeWork = true
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating the work folder: %w", err)
		}
		c.WorkDir = d
	}
	for _, sub := range []string{"logs", "apiserver", "etcd"} {
		if err := os.MkdirAll(filepath.Join(c.WorkDir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("creating the work folder: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			c.Keep = true // keep the logs the error names
			if err := c.Stop(); err != nil {
				retErr = errors.Join(retErr, err)
			}
			retErr = fmt.Errorf("%w\n%s", retErr, c.logSummary(15))
		}
	}()

	removeDir := ""
	if c.removeWork {
		removeDir = c.WorkDir
	}
	dog, err := startWatchdog(c.logPath("watchdog"), removeDir)
	if err != nil {
		return nil, err
	}
	c.dog = dog

	if err := c.startControlPlane(o); err != nil {
		return nil, err
	}
	if !o.APIServerOnly {
		if err := c.startComponents(ctx); err != nil {
			return nil, err
		}
	}
	if o.CertManagerCRDs {
		if err := c.InstallCertManagerCRDs(ctx); err != nil {
			return nil, fmt.Errorf("installing cert-manager's CRDs: %w", err)
		}
	}
	if o.Nodes != "" {
		if err := c.CreateNodes(ctx, o.Nodes); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.log == nil {
		return
	}
	fmt.Fprintf(c.log, "cluster: "+format+"\n", args...)
}

func (c *Cluster) logPath(name string) string {
	return filepath.Join(c.WorkDir, "logs", name+".log")
}

func (c *Cluster) startControlPlane(o Options) error {
	t0 := time.Now()
	etcdLog, err := openLog(c.logPath("etcd"))
	if err != nil {
		return fmt.Errorf("opening the etcd log: %w", err)
	}
	apiLog, err := openLog(c.logPath("kube-apiserver"))
	if err != nil {
		return fmt.Errorf("opening the kube-apiserver log: %w", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    c.AssetsDir,
		ControlPlaneStartTimeout: o.StartTimeout,
		ControlPlaneStopTimeout:  15 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{
		DataDir: filepath.Join(c.WorkDir, "etcd"),
		Out:     etcdLog,
		Err:     etcdLog,
	}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = filepath.Join(c.WorkDir, "apiserver")
	api.Out, api.Err = apiLog, apiLog
	// Our own serving certificate (envtest's only names localhost and 127.0.0.1): it also names
	// the kubernetes Service, so pods' in-cluster clients can verify it (test/node).
	ca, err := writeAPIServerCerts(api.CertDir)
	if err != nil {
		return fmt.Errorf("writing the API server's certificates: %w", err)
	}
	api.SecureServing.CA = ca
	api.Configure().
		Set("allow-privileged", "true").
		Set("service-cluster-ip-range", ServiceCIDR)
	if o.ServiceAccountTokens {
		api.Configure().Disable("disable-admission-plugins")
	}
	c.env = env

	c.logf("starting etcd and kube-apiserver (envtest, %s)", c.AssetsDir)
	_, startErr := env.Start()
	// Whatever happened, learn the pids envtest started so the watchdog and Stop know them.
	for _, b := range []struct{ name, bin string }{{"etcd", "etcd"}, {"kube-apiserver", "kube-apiserver"}} {
		for _, pid := range childrenRunning(filepath.Join(c.AssetsDir, b.bin)) {
			p, err := ProcessOf(b.name, pid)
			if err != nil {
				continue // gone already
			}
			p.Log = c.logPath(b.name)
			c.envProcs = append(c.envProcs, p)
			c.dog.watch(p)
		}
	}
	if startErr != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w", startErr)
	}

	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 200, Burst: 400})
	if err != nil {
		return fmt.Errorf("provisioning the admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.WorkDir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	c.Config = admin.Config()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("creating the admin client: %w", err)
	}
	c.Client = cs
	if err := os.WriteFile(c.caFile(), api.SecureServing.CA, 0o644); err != nil {
		return fmt.Errorf("writing the cluster CA: %w", err)
	}
	c.logf("kube-apiserver is up at %s (%.1fs)", c.Config.Host, time.Since(t0).Seconds())
	return nil
}

func (c *Cluster) caFile() string { return filepath.Join(c.WorkDir, "ca.crt") }

func (c *Cluster) startComponents(ctx context.Context) error {
	t0 := time.Now()
	saKey := filepath.Join(c.env.ControlPlane.GetAPIServer().CertDir, "sa-signer.key")
	specs := []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--controllers=*",
			"--leader-elect=false",
			"--secure-port=0",
			"--use-service-account-credentials=false",
			"--service-account-private-key-file=" + saKey,
			"--root-ca-file=" + c.caFile(),
			"--cluster-name=kmm-e2e",
			"--concurrent-daemonset-syncs=5",
		}},
		{"kube-scheduler", []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig,
			"--authorization-kubeconfig=" + c.Kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
		}},
	}
	kwokArgs := []string{
		"--kubeconfig=" + c.Kubeconfig,
		// Every node but a real one (a kubelet's, test/node): kwok would otherwise take it over.
		"--manage-nodes-with-label-selector=!" + RealNodeLabel,
		"--node-lease-duration-seconds=40",
		"--cidr=10.128.0.0/16",
	}
	for _, s := range KwokStages {
		kwokArgs = append(kwokArgs, "--config="+filepath.Join(c.AssetsDir, "kwok-stages", s))
	}
	specs = append(specs, struct {
		name string
		args []string
	}{"kwok", kwokArgs})

	for _, s := range specs {
		p, err := startProc(s.name, filepath.Join(c.AssetsDir, s.name), s.args, c.logPath(s.name))
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
		c.dog.watch(p.Process)
	}
	c.logf("started kube-controller-manager, kube-scheduler and kwok")

	// The controller manager is working once its service account controller made "default".
	if err := c.poll(ctx, 60*time.Second, "the controller manager to create the default service account", func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	c.logf("control plane ready (%.1fs)", time.Since(t0).Seconds())
	return nil
}

// poll calls cond every 250 ms until it returns true, the timeout passes, or one of the
// harness's processes exits (then the error names it and its log). An error from cond does not
// end the wait (the API server may not be ready yet); the timeout error names the last one.
func (c *Cluster) poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
		} else if ok {
			return true, nil
		}
		return false, c.checkProcs()
	})
	switch {
	case err == nil:
		return nil
	case !wait.Interrupted(err):
		return fmt.Errorf("waiting for %s: %w", what, err)
	case last != nil:
		return fmt.Errorf("waiting for %s: timed out after %s (last error: %v)", what, timeout, last)
	default:
		return fmt.Errorf("waiting for %s: timed out after %s", what, timeout)
	}
}

// checkProcs returns an error if a process of the harness has exited.
func (c *Cluster) checkProcs() error {
	for _, p := range c.procs {
		if p.exited() {
			return fmt.Errorf("%s exited (%v); see %s:\n%s", p.Name, p.err, p.Log, tail(p.Log, 15))
		}
	}
	for _, p := range c.envProcs {
		if !Alive(p.Pid, p.StartTime) {
			return fmt.Errorf("%s exited; see %s:\n%s", p.Name, p.Log, tail(p.Log, 15))
		}
	}
	return nil
}

// Healthy returns an error naming the first process of the cluster that is no longer running.
func (c *Cluster) Healthy() error { return c.checkProcs() }

// Processes lists every process the harness started: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok and the watchdog.
func (c *Cluster) Processes() []Process {
	out := append([]Process(nil), c.envProcs...)
	for _, p := range c.procs {
		out = append(out, p.Process)
	}
	if c.dog != nil {
		out = append(out, c.dog.process())
	}
	return out
}

// LogFiles maps each process to its log file.
func (c *Cluster) LogFiles() map[string]string {
	out := map[string]string{}
	for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		out[n] = c.logPath(n)
	}
	return out
}

// logSummary names the log files, with the last lines of each that exists.
func (c *Cluster) logSummary(lines int) string {
	var b strings.Builder
	b.WriteString("control plane logs:\n")
	for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		path := c.logPath(n)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		fmt.Fprintf(&b, "  %s: %s\n", n, path)
		if lines > 0 {
			if t := tail(path, lines); t != "" {
				b.WriteString("    | " + strings.ReplaceAll(t, "\n", "\n    | ") + "\n")
			}
		}
	}
	return b.String()
}

// LogSummary names every process's log file (for test failure messages).
func (c *Cluster) LogSummary() string { return c.logSummary(0) }

// Stop stops kwok, the scheduler, the controller manager (SIGTERM to each one's process group,
// SIGKILL after 5 s: StopProcesses), then kube-apiserver and etcd through envtest (and
// StopProcesses, should envtest give up), disarms the watchdog, and removes WorkDir if
// the harness created it and Keep is not set. It only ever signals processes it started, and
// is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		ctx := context.Background()
		var errs []error
		for i := len(c.procs) - 1; i >= 0; i-- {
			if err := c.procs[i].stop(ctx, StopOptions{Grace: 5 * time.Second}); err != nil {
				errs = append(errs, err)
			}
		}
		if c.env != nil {
			if err := c.env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping etcd and kube-apiserver: %w", err))
			}
		}
		// envtest gives up after its stop timeout; make sure its processes are gone.
		if err := StopProcesses(ctx, c.envProcs, StopOptions{Grace: time.Second}); err != nil {
			errs = append(errs, err)
		}
		// Armed until here: should this process die while stopping, the watchdog finishes.
		c.dog.disarm()
		if c.removeWork && !c.Keep && c.WorkDir != "" {
			if err := os.RemoveAll(c.WorkDir); err != nil {
				errs = append(errs, fmt.Errorf("removing the work folder: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
		c.logf("stopped")
	})
	return c.stopErr
}

// StopOnSignal stops the cluster when the process receives SIGINT, SIGTERM or SIGHUP, then
// exits with status 130. The returned function stops listening.
func (c *Cluster) StopOnSignal() (cancel func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			c.interrupted.Store(true)
			fmt.Fprintf(os.Stderr, "cluster: %s: stopping the local cluster\n", sig)
			if err := c.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
			}
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// Interrupted reports whether StopOnSignal caught a signal (and so stopped the cluster).
func (c *Cluster) Interrupted() bool { return c.interrupted.Load() }

// EnsureNamespace creates a namespace unless it exists.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}
