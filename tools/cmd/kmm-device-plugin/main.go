// Command kmm-device-plugin is the real-node test's device plugin (test/node): it advertises
// -count devices of -resource to the kubelet (deviceplugin v1beta1) while /sys/module/<-module>
// exists, healthy, and none otherwise, so a module's resource is in the node's allocatable only
// while the module is loaded. It re-registers when the kubelet restarts (its socket is recreated).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	module string
	count  int
}

func (p *plugin) devices() []*pluginapi.Device {
	if _, err := os.Stat(filepath.Join("/sys/module", p.module)); err != nil {
		return nil
	}
	var ds []*pluginapi.Device
	for i := 0; i < p.count; i++ {
		ds = append(ds, &pluginapi.Device{ID: fmt.Sprintf("%s-%d", p.module, i), Health: pluginapi.Healthy})
	}
	return ds
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	last := -1
	for {
		ds := p.devices()
		if len(ds) != last {
			log.Printf("advertising %d devices (/sys/module/%s %s)", len(ds), p.module, map[bool]string{true: "present", false: "absent"}[len(ds) > 0])
			if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: ds}); err != nil {
				return err
			}
			last = len(ds)
		}
		select {
		case <-s.Context().Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func (p *plugin) Allocate(_ context.Context, r *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	out := &pluginapi.AllocateResponse{}
	for _, c := range r.ContainerRequests {
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"KMM_DEVICES": fmt.Sprint(c.DevicesIds)},
		})
	}
	return out, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func main() {
	resource := flag.String("resource", "kmm.dev/kmm_a", "extended resource name")
	module := flag.String("module", "kmm_a", "module whose /sys/module folder gates the devices")
	count := flag.Int("count", 2, "devices to advertise")
	dir := flag.String("dir", pluginapi.DevicePluginPath, "the kubelet's device plugin folder")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sock := filepath.Join(*dir, "kmm-test.sock")
	p := &plugin{module: *module, count: *count}
	for ctx.Err() == nil {
		if err := serve(ctx, p, sock, filepath.Join(*dir, "kubelet.sock"), *resource); err != nil {
			log.Printf("%v; retrying", err)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}
	log.Printf("stopping")
}

// serve serves the plugin on sock, registers it with the kubelet, and returns when ctx is done
// or sock disappears (the kubelet restarted and cleared its folder).
func serve(ctx context.Context, p *plugin, sock, kubelet, resource string) error {
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(s, p)
	go func() { _ = s.Serve(l) }()
	defer s.Stop()

	conn, err := grpc.NewClient("unix://"+kubelet, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = pluginapi.NewRegistrationClient(conn).Register(rctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: filepath.Base(sock), ResourceName: resource,
	})
	cancel()
	conn.Close()
	if err != nil {
		return fmt.Errorf("registering %s with the kubelet: %w", resource, err)
	}
	log.Printf("registered %s with the kubelet (%s)", resource, sock)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
		if _, err := os.Stat(sock); err != nil {
			return fmt.Errorf("%s is gone (the kubelet restarted)", sock)
		}
	}
}
