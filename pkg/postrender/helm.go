package postrender

import (
	"bytes"
	"context"

	helmpostrender "helm.sh/helm/v3/pkg/postrender"
)

// helmV3 adapts a PostRenderer to the Helm v3 SDK's in-process interface, for programs (and
// tests) that drive Helm as a library rather than as a subprocess.
type helmV3 struct {
	ctx context.Context
	r   PostRenderer
}

// HelmV3 returns r as a Helm v3 SDK post-renderer (action.Install.PostRenderer and friends).
func HelmV3(ctx context.Context, r PostRenderer) helmpostrender.PostRenderer {
	return helmV3{ctx: ctx, r: r}
}

func (h helmV3) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out, err := h.r.Run(h.ctx, in.Bytes())
	if err != nil {
		return nil, err
	}
	return bytes.NewBuffer(out), nil
}
