package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/contract"
)

// States `kmm-render status` shows besides the controller's (which it shows as they are).
const (
	StateCurrent   = "current"  // the loader is of the newest revision, no upgrade recorded
	StateOutdated  = "outdated" // an older revision, and no upgrade controller has seen it yet
	StateSkipped   = "skipped"  // an older revision on a node with a skip label
	StateNoLoader  = "no-loader"
	StateUnloading = "unloading" // its only loader pod is being deleted
)

// Report is `kmm-render status -o json`.
type Report struct {
	Modules []ModuleStatus `json:"modules"`
}

// ModuleStatus is one module's nodes.
type ModuleStatus struct {
	Namespace string       `json:"namespace"`
	Name      string       `json:"name"`
	Nodes     []NodeStatus `json:"nodes"`
}

// NodeStatus is one node of a module, as the cluster says it is now.
type NodeStatus struct {
	Node   string `json:"node"`
	Kernel string `json:"kernel,omitempty"`
	// Wanted is the version the node's loader DaemonSet loads now; Loaded is what its Ready
	// loader pod loaded and verified ("" when none is Ready).
	Wanted string `json:"wanted"`
	Loaded string `json:"loaded"`
	Ready  bool   `json:"ready"`
	// State is the upgrade state label, else StateCurrent, StateOutdated, StateSkipped,
	// StateUnloading or StateNoLoader.
	State        string `json:"state"`
	DevicePlugin string `json:"devicePlugin,omitempty"` // ready, starting, paused or "" (none)
	Cordoned     bool   `json:"cordoned"`
	LoaderPod    string `json:"loaderPod,omitempty"`
	Message      string `json:"message,omitempty"` // the loader's last failure
	// Build is what an outdated node's upgrade waits for when its new image is built in the
	// cluster: "waiting for build Job <ns>/<name>" or "build Job <ns>/<name> failed (...)".
	Build string `json:"build,omitempty"`
}

// Status reads every helm-managed module's loaders (all namespaces, or the one given) and the
// nodes, and reports per module and node. It only lists (a module's build Jobs too, when one of
// its outdated nodes waits for a build).
func Status(ctx context.Context, c kubernetes.Interface, namespace string) (*Report, error) {
	dss, err := c.AppsV1().DaemonSets(namespace).List(ctx, metav1.ListOptions{LabelSelector: contract.LabelRole + "=" + contract.RoleModuleLoader})
	if err != nil {
		return nil, fmt.Errorf("listing the loader DaemonSets: %w", err)
	}
	type id struct{ ns, name string }
	seen := map[id]bool{}
	var ids []id
	for _, ds := range dss.Items {
		k := id{ds.Labels[contract.LabelModuleNamespace], ds.Labels[contract.LabelModuleName]}
		if k.name == "" || k.ns == "" || seen[k] {
			continue
		}
		seen[k] = true
		ids = append(ids, k)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].ns+"/"+ids[i].name < ids[j].ns+"/"+ids[j].name })
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the nodes: %w", err)
	}
	r := &Report{Modules: []ModuleStatus{}}
	for _, k := range ids {
		v, err := Observe(ctx, c, k.ns, k.name, nodes.Items)
		if err != nil {
			return nil, err
		}
		ms := ModuleStatus{Namespace: k.ns, Name: k.name, Nodes: []NodeStatus{}}
		jobs := &buildJobs{c: c, namespace: k.ns, name: k.name}
		for _, name := range v.SortedNodes() {
			nv := v.Nodes[name]
			s := nodeStatus(k.ns, k.name, v, nv)
			switch s.State {
			case StateOutdated, StateSkipped, contract.UpgradeRequired, contract.UpgradeDone:
				if job := v.BuildJob(nv); job != "" {
					j, err := jobs.get(ctx, job)
					if err != nil {
						return nil, err
					}
					s.Build = buildText(k.ns, job, JobState(j), j)
				}
			}
			ms.Nodes = append(ms.Nodes, s)
		}
		r.Modules = append(r.Modules, ms)
	}
	return r, nil
}

func nodeStatus(ns, name string, v *ModuleView, nv *NodeView) NodeStatus {
	n := nv.Node
	s := NodeStatus{Node: n.Name, Cordoned: n.Spec.Unschedulable, Wanted: v.WantedVersion(nv)}
	s.Loaded, s.Ready = v.LoadedVersion(nv)
	loader := v.Loader(nv)
	if loader != nil {
		s.LoaderPod = loader.Name
		s.Message = FailureMessage(loader)
		if ds := v.DaemonSets[OwnerDaemonSet(loader)]; ds != nil {
			s.Kernel = ds.Annotations[contract.AnnotationKernel]
		}
	}
	s.State = n.Labels[contract.ModuleNodeLabel(ns, name, contract.SuffixUpgradeState)]
	switch {
	case loader == nil && s.State == "" && nv.Terminating():
		s.State = StateUnloading
	case loader == nil && s.State == "":
		s.State = StateNoLoader
	case s.State != "" && s.State != contract.UpgradeDone && s.State != contract.UpgradeRequired:
	case v.Outdated(nv) != nil && skipped(ModuleConfig{Namespace: ns, Name: name}, n):
		s.State = StateSkipped
	case v.Outdated(nv) != nil && s.State == "":
		s.State = StateOutdated
	case v.Outdated(nv) == nil && s.State == "":
		s.State = StateCurrent
	}
	_, paused := n.Labels[contract.ModuleNodeLabel(ns, name, contract.SuffixDevicePluginPaused)]
	switch {
	case anyReady(nv.Plugins):
		s.DevicePlugin = "ready"
	case len(nv.Plugins) > 0:
		s.DevicePlugin = "starting"
	case paused:
		s.DevicePlugin = "paused"
	}
	return s
}

// Write prints the report as a table (format "" or "table") or as JSON ("json").
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "", "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MODULE\tNODE\tKERNEL\tWANTED\tLOADED\tREADY\tSTATE\tDEVICE-PLUGIN\tCORDONED")
		for _, m := range r.Modules {
			for _, n := range m.Nodes {
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%t\n", m.Namespace, m.Name, n.Node, dash(n.Kernel), dash(n.Wanted), dash(n.Loaded), n.Ready, n.State, dash(n.DevicePlugin), n.Cordoned)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, m := range r.Modules {
			for _, n := range m.Nodes {
				if n.Message != "" {
					fmt.Fprintf(w, "%s/%s on %s: %s\n", m.Namespace, m.Name, n.Node, strings.TrimSpace(n.Message))
				}
				if n.Build != "" {
					fmt.Fprintf(w, "%s/%s on %s: %s\n", m.Namespace, m.Name, n.Node, n.Build)
				}
			}
		}
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table or json", format)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
