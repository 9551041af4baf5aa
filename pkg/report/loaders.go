package report

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/contract"
)

// LoaderRow is one loader DaemonSet as it runs in a cluster.
type LoaderRow struct {
	Module    string // namespace/name
	Kernel    string // raw kernel
	DaemonSet string
	Nodes     []string // nodes its pods are on
	Running   int
	Desired   int
}

// Loaders lists the loader DaemonSets kmm-render generated and their pods, in every namespace:
// what is loaded where. It only reads.
func Loaders(ctx context.Context, c kubernetes.Interface) ([]LoaderRow, error) {
	sel := contract.LabelRole + "=" + contract.RoleModuleLoader
	dss, err := c.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing loader DaemonSets: %w", err)
	}
	pods, err := c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing loader pods: %w", err)
	}
	var rows []LoaderRow
	for _, ds := range dss.Items {
		row := LoaderRow{
			Module:    ds.Labels[contract.LabelModuleNamespace] + "/" + ds.Labels[contract.LabelModuleName],
			Kernel:    ds.Annotations[contract.AnnotationKernel],
			DaemonSet: ds.Name,
			Desired:   int(ds.Status.DesiredNumberScheduled),
		}
		for _, p := range pods.Items {
			if p.Namespace != ds.Namespace || !ownedBy(p.OwnerReferences, ds.UID) {
				continue
			}
			if p.Spec.NodeName != "" {
				row.Nodes = append(row.Nodes, p.Spec.NodeName)
			}
			if p.Status.Phase == corev1.PodRunning {
				row.Running++
			}
		}
		sort.Strings(row.Nodes)
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Module != rows[j].Module {
			return rows[i].Module < rows[j].Module
		}
		return rows[i].Kernel < rows[j].Kernel
	})
	return rows, nil
}

// LoaderTable writes rows as a table: module, kernel, DaemonSet, nodes, pods Running.
func LoaderTable(w io.Writer, rows []LoaderRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tKERNEL\tDAEMONSET\tNODES\tRUNNING")
	for _, r := range rows {
		nodes := strings.Join(r.Nodes, ",")
		if nodes == "" {
			nodes = "-"
		}
		fmt.Fprintln(tw, strings.Join([]string{r.Module, r.Kernel, r.DaemonSet, nodes, strconv.Itoa(r.Running) + "/" + strconv.Itoa(r.Desired)}, "\t"))
	}
	return tw.Flush()
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.UID == uid {
			return true
		}
	}
	return false
}
