package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/internal/localcluster"
)

// Shape of a benchmark node: what a kubelet on a cloud VM reports, in the numbers the issue
// measured with.
const (
	nodeLabels      = 16
	nodeAnnotations = 4
	nodeConditions  = 4
	nodeAddresses   = 3
	nodeImages      = 50
)

// nodeName is the name of benchmark node i.
func nodeName(i int) string { return fmt.Sprintf("bench-node-%05d", i) }

// kernelOf is the kernel benchmark node i runs: kernels distinct kernels, round robin, so that
// every kernel has nodes at every size.
func kernelOf(i, kernels int) string {
	return fmt.Sprintf("6.1.%d-%d.%d.amzn2023.x86_64", 100+i%kernels, 120+i%kernels, 180+i%kernels)
}

// benchNode is node i of a cluster with kernels kernels, shaped like a kubelet-registered node
// (labels from the kubelet, the cloud provider and Node Feature Discovery, the kubelet's and
// CSI's annotations, capacity and allocatable, the four conditions, three addresses, nodeInfo
// and 50 cached images), status included.
func benchNode(i, kernels int) *corev1.Node {
	name := nodeName(i)
	kernel := kernelOf(i, kernels)
	zone := fmt.Sprintf("us-west-2%c", 'a'+i%3)
	labels := map[string]string{
		"beta.kubernetes.io/arch":                  "amd64",
		"beta.kubernetes.io/instance-type":         "m6i.xlarge",
		"beta.kubernetes.io/os":                    "linux",
		"failure-domain.beta.kubernetes.io/region": "us-west-2",
		"failure-domain.beta.kubernetes.io/zone":   zone,
		"kubernetes.io/arch":                       "amd64",
		"kubernetes.io/hostname":                   name,
		"kubernetes.io/os":                         "linux",
		"node.kubernetes.io/instance-type":         "m6i.xlarge",
		"topology.kubernetes.io/region":            "us-west-2",
		"topology.kubernetes.io/zone":              zone,
		"eks.amazonaws.com/nodegroup":              fmt.Sprintf("ng-%02d", i%kernels),
	}
	for k, v := range localcluster.NFDKernelLabels(kernel) {
		labels[k] = v // kernel-version.full, .major, .minor, .revision
	}
	annotations := map[string]string{
		"node.alpha.kubernetes.io/ttl":                           "0",
		"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		"alpha.kubernetes.io/provided-node-ip":                   nodeIP(i),
		"csi.volume.kubernetes.io/nodeid":                        fmt.Sprintf(`{"ebs.csi.aws.com":"i-%017x"}`, i),
	}
	since := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, message string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, LastHeartbeatTime: since, LastTransitionTime: since, Reason: reason, Message: message}
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("16073332Ki"),
		corev1.ResourceEphemeralStorage: resource.MustParse("83873772Ki"),
		corev1.ResourcePods:             resource.MustParse("58"),
		"hugepages-1Gi":                 resource.MustParse("0"),
		"hugepages-2Mi":                 resource.MustParse("0"),
	}
	// One tag name each: with a digest name besides, as kubelets often list, each node would
	// weigh twice as much, and the floor's time and memory at 5,000 nodes would no longer be
	// those issue 12 measured (0.49 s, 64 MiB).
	images := make([]corev1.ContainerImage, nodeImages)
	for j := range images {
		images[j] = corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("registry.example/team-%d/app-%02d:v1.%d.%d", j%7, j, j%10, i%5)},
			SizeBytes: int64(20_000_000 + j*1_234_567),
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.NodeSpec{
			ProviderID: fmt.Sprintf("aws:///%s/i-%017x", zone, i),
			PodCIDR:    podCIDR(i),
			PodCIDRs:   []string{podCIDR(i)},
		},
		Status: corev1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources,
			Phase:       "",
			Conditions: []corev1.NodeCondition{
				condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: nodeIP(i)},
				{Type: corev1.NodeHostName, Address: fmt.Sprintf("ip-%s.us-west-2.compute.internal", dashed(i))},
				{Type: corev1.NodeInternalDNS, Address: fmt.Sprintf("ip-%s.us-west-2.compute.internal", dashed(i))},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               fmt.Sprintf("ec2%029x", i),
				SystemUUID:              fmt.Sprintf("ec2%05x-0000-0000-0000-%012x", i, i),
				BootID:                  fmt.Sprintf("%08x-1111-2222-3333-%012x", i, i),
				KernelVersion:           kernel,
				OSImage:                 "Amazon Linux 2023.6.20241106",
				ContainerRuntimeVersion: "containerd://1.7.23",
				KubeletVersion:          "v1.31.2-eks-94953ac",
				OperatingSystem:         "linux",
				Architecture:            "amd64",
			},
			Images: images,
		},
	}
}

func nodeIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", 1+i/65536, i/256%256, i%256) }
func dashed(i int) string { return fmt.Sprintf("10-%d-%d-%d", 1+i/65536, i/256%256, i%256) }
func podCIDR(i int) string {
	return fmt.Sprintf("100.%d.%d.0/24", 64+i/256%64, i%256)
}

// createNodes creates nodes from, ..., to-1 with workers requests in flight. The API server
// keeps a Node's status on create (its node strategy lets every field be set then, as the
// kubelet's registration does), so one request per node sets the status too; should a server
// drop it, the status subresource sets it.
func createNodes(ctx context.Context, cs kubernetes.Interface, from, to, kernels, workers int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	for range workers {
		wg.Go(func() {
			for i := range next {
				n := benchNode(i, kernels)
				created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
				if apierrors.IsAlreadyExists(err) {
					continue
				}
				if err != nil {
					fail(fmt.Errorf("creating node %s: %w", n.Name, err))
					return
				}
				if len(created.Status.Images) != nodeImages || created.Status.NodeInfo.KernelVersion == "" {
					created.Status = n.Status
					if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
						fail(fmt.Errorf("setting the status of node %s: %w", n.Name, err))
						return
					}
				}
			}
		})
	}
feed:
	for i := from; i < to; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
