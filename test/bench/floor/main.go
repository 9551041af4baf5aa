// Command floor is the floor of the cluster benchmark (test/bench/cluster): the least a
// client-go program does to learn a cluster's nodes. It lists every node with client-go's pager
// (pages of 500, decoded into typed corev1.Node objects, all pages held in one list), prints
// how many it got, and exits. kmm-render has to learn as much and do more, so the benchmark
// reports kmm-render's time and memory as multiples of this program's.
//
// It asks for JSON, the floor issue 12 defines; -protobuf asks for protobuf instead, what
// client-go's typed clients ask for by default since v0.35 for built-in types. Client-side rate
// limiting is off, as in kmm-render: it only adds waits (5 requests per second after a burst of
// 10: seconds for 15,000 nodes), which are no work.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster whose nodes to list")
	pageSize := flag.Int64("page-size", 500, "List page size")
	timeout := flag.Duration("timeout", time.Minute, "bound on the whole listing")
	protobuf := flag.Bool("protobuf", false, "ask for protobuf rather than JSON")
	flag.Parse()
	n, err := list(*kubeconfig, *pageSize, *timeout, *protobuf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(n)
}

// list lists every node and returns how many there are.
func list(kubeconfig string, pageSize int64, timeout time.Duration, protobuf bool) (int, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return 0, fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	cfg.QPS = -1
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	} else {
		cfg.ContentType = runtime.ContentTypeJSON
		cfg.AcceptContentTypes = runtime.ContentTypeJSON
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().Nodes().List(ctx, opts)
	})
	p.PageSize = pageSize
	obj, _, err := p.List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("listing nodes from %s: %w", cfg.Host, err)
	}
	return meta.LenList(obj), nil
}
