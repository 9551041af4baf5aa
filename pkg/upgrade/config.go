// Package upgrade is kmm's upgrade controller: it moves the nodes of each helm-managed module
// from one loader revision to the next in a safe order, within a cluster-wide bound, and keeps
// per-node module status on the Node (labels and Events). cmd/kmm-upgrade runs it in the
// cluster; `kmm-render status` reads the same view (Observe) without writing anything.
//
// # Why a controller, and not an init container or a Job
//
// A loader DaemonSet that rolls on its own (RollingUpdate) deletes the old pod, and so unloads
// the module, before anything in the new pod runs: an init container in the new loader comes too
// late to take the device plugin and the consumers away first, and each kernel's DaemonSet rolls
// independently, so no bound spans the module's kernels. A Job per upgrade would need the same
// node-by-node state as a controller, without one place to count it. So, as NVIDIA's and AMD's
// GPU operators do: the chart renders the loader DaemonSets with `updateStrategy: OnDelete` when
// the upgrade controller is on, and the controller, one Deployment with a leader Lease (one
// actor, so the bound holds), decides which node goes next, and per node:
//
//	upgrade-required -> draining (cordon, device plugin paused, consumers evicted)
//	  -> restarting (old loader pod deleted: it unloads; new pod loads and verifies)
//	  -> validating (plugin back and Ready) -> upgrade-done (uncordoned)
//
// Its state lives on the Node (kmm.node.kubernetes.io/<ns>.<name>.upgrade-state and the
// upgrade.kmm.dev/<ns>.<name>.since annotation), so a restarted controller continues where it
// stopped. The bound is counted over every kernel's DaemonSet of the module.
package upgrade

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kmm.dev/kmm/pkg/module"
)

// Defaults of a policy field the chart leaves empty.
const (
	DefaultMaxParallel  = 1
	DefaultDrainTimeout = 5 * time.Minute
	DefaultLoadTimeout  = 10 * time.Minute
)

// DefaultMaxUnavailable is 25% of the module's nodes, rounded up.
var DefaultMaxUnavailable = intstr.FromString("25%")

// Config is the controller's configuration file (the chart's ConfigMap `<release>-upgrade`,
// key config.json): one entry per helm-managed module.
type Config struct {
	Modules []ModuleConfig `json:"modules"`
}

// ModuleConfig is one module and its policy, the chart's `upgrade.policy` merged with the
// module's `upgrade:`.
type ModuleConfig struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// DevicePlugin: the module has a device plugin DaemonSet, taken off the node first and
	// brought back last.
	DevicePlugin bool                 `json:"devicePlugin,omitempty"`
	Policy       module.UpgradePolicy `json:"policy"`
}

// ID is "namespace/name".
func (m ModuleConfig) ID() string { return m.Namespace + "/" + m.Name }

// Policy is a module's policy, checked and with its defaults applied.
type Policy struct {
	Manual         bool
	MaxParallel    int
	MaxUnavailable intstr.IntOrString
	Consumers      labels.Selector // nil: no consumers
	Namespaces     []string
	DrainTimeout   time.Duration
	Force          bool
	LoadTimeout    time.Duration
}

// Resolve checks the module's policy and applies the defaults.
func (m ModuleConfig) Resolve() (Policy, error) {
	if errs := module.ValidateUpgrade(&m.Policy, field.NewPath("policy")); len(errs) > 0 {
		return Policy{}, fmt.Errorf("module %s: %w", m.ID(), errs.ToAggregate())
	}
	u := m.Policy
	p := Policy{
		Manual:         u.Mode == module.UpgradeManual,
		MaxParallel:    DefaultMaxParallel,
		MaxUnavailable: DefaultMaxUnavailable,
		DrainTimeout:   DefaultDrainTimeout,
		LoadTimeout:    DefaultLoadTimeout,
		Namespaces:     []string{m.Namespace},
	}
	if u.MaxParallel != nil {
		p.MaxParallel = int(*u.MaxParallel)
	}
	if u.MaxUnavailable != nil {
		p.MaxUnavailable = *u.MaxUnavailable
	}
	if u.LoadTimeout != "" {
		p.LoadTimeout, _ = time.ParseDuration(u.LoadTimeout)
	}
	if d := u.Drain; d != nil {
		if d.PodSelector != "" {
			p.Consumers, _ = labels.Parse(d.PodSelector)
		}
		if len(d.Namespaces) > 0 {
			p.Namespaces = d.Namespaces
		}
		if d.Timeout != "" {
			p.DrainTimeout, _ = time.ParseDuration(d.Timeout)
		}
		p.Force = d.Force
	}
	return p, nil
}

// Budget is how many of total nodes may be unavailable at once: MaxUnavailable scaled to total,
// rounded up, at least 1.
func (p Policy) Budget(total int) int {
	n, err := intstr.GetScaledValueFromIntOrPercent(&p.MaxUnavailable, total, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// LoadConfig reads and checks a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade configuration: %w", err)
	}
	return ParseConfig(b, path)
}

// ParseConfig decodes a configuration strictly; name says where it came from in errors.
func ParseConfig(b []byte, name string) (*Config, error) {
	var c Config
	if err := module.Decode(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	seen := map[string]bool{}
	for i, m := range c.Modules {
		if m.Namespace == "" || m.Name == "" {
			return nil, fmt.Errorf("%s: modules[%d]: namespace and name are required", name, i)
		}
		if seen[m.ID()] {
			return nil, fmt.Errorf("%s: modules[%d]: module %s is listed twice", name, i, m.ID())
		}
		seen[m.ID()] = true
		if _, err := m.Resolve(); err != nil {
			return nil, fmt.Errorf("%s: modules[%d]: %w", name, i, err)
		}
	}
	return &c, nil
}

// MarshalConfig is the file the chart writes, for tests and tools.
func MarshalConfig(c *Config) ([]byte, error) { return json.MarshalIndent(c, "", "  ") }
