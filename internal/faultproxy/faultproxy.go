// Package faultproxy is a misbehaving HTTPS reverse proxy for tests: it sits in front of a real
// Kubernetes API server and, for the requests a test picks, hangs, answers an error of its
// choosing, or expires a list's continue token, so that a client's handling of cluster faults
// can be tested against the real API server rather than a fake one.
//
// The proxy terminates TLS with a self-signed certificate of its own, made at Start, which the
// kubeconfig it writes trusts (no insecure-skip-tls-verify). It talks to the API server with
// the credentials of the rest.Config it is given (the local cluster's admin), and drops any
// credentials the client sends: a client of the proxy needs none, and acts with the proxy's
// rights. That is what a test of faults needs; a test of permissions talks to the API server
// directly.
//
//	p, err := faultproxy.Start(kc.Config)
//	defer p.Close()
//	p.Set(faultproxy.NodeList, faultproxy.Hang())
//	p.WriteKubeconfig(path) // kmm-render --kubeconfig path ... now waits for an answer in vain
package faultproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Match picks the requests a fault applies to.
type Match func(*http.Request) bool

// NodeList matches listing the cluster's nodes (GET /api/v1/nodes, not a watch), page by page
// or all at once.
func NodeList(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes" && r.URL.Query().Get("watch") == ""
}

// Path matches every request for path.
func Path(path string) Match {
	return func(r *http.Request) bool { return r.URL.Path == path }
}

// Fault is what the proxy does with a request a Match picked.
type Fault struct {
	name  string
	serve func(p *Proxy, w *recorder, r *http.Request)
}

// String names the fault, as Requests records it.
func (f Fault) String() string {
	if f.serve == nil {
		return "pass"
	}
	return f.name
}

// Pass forwards the request unchanged: no fault.
var Pass = Fault{}

// Hang accepts the request and never answers it: the handler returns only once the client gives
// up (closes the connection or cancels the stream) or the proxy closes.
func Hang() Fault {
	return Fault{name: "hang", serve: func(p *Proxy, w *recorder, r *http.Request) {
		p.hangs.Add(1)
		defer p.hangs.Add(-1)
		select {
		case <-r.Context().Done():
		case <-p.closing:
		}
	}}
}

// Status answers with an API server Status of the given code, reason and message, and the
// extra header fields, without asking the API server.
func Status(code int, reason metav1.StatusReason, message string, header http.Header) Fault {
	return Fault{name: fmt.Sprintf("status %d", code), serve: func(p *Proxy, w *recorder, r *http.Request) {
		writeStatus(w, code, reason, message, header)
	}}
}

// ServerError answers 500 Internal Server Error, as an API server whose storage fails does.
// There is no Retry-After, so client-go does not retry.
func ServerError() Fault {
	f := Status(http.StatusInternalServerError, metav1.StatusReasonInternalError, "faultproxy: injected internal error", nil)
	f.name = "500"
	return f
}

// Throttle answers 429 Too Many Requests with Retry-After: retryAfter seconds, every time, as an
// API server's priority and fairness does under load. client-go retries such answers a bounded
// number of times (10 in client-go 0.37), waiting as asked, then gives up with the 429.
func Throttle(retryAfter int) Fault {
	f := Status(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests,
		"faultproxy: too many requests, please try again later",
		http.Header{"Retry-After": {strconv.Itoa(retryAfter)}})
	f.name = "429"
	return f
}

// Unauthorized answers 401, as an API server answers credentials it does not accept. It does not
// say why (an expired, revoked or unknown token all look alike to the client).
func Unauthorized() Fault {
	f := Status(http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized", nil)
	f.name = "401"
	return f
}

// expiredMessage is the API server's message for a continue token whose resource version etcd
// compacted away.
const expiredMessage = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."

// ExpireContinue makes a paginated list meet an expired continue token between pages, as it does
// when etcd compacts the list's revision while a client pages through it:
//
//   - a request with a limit is forwarded with its limit lowered to pageSize, so that the real
//     API server hands out a continue token even for a small cluster;
//   - a request with a continue token gets 410 Gone, reason Expired, as the API server answers
//     then;
//   - a request with neither (client-go's pager then lists everything at once) gets relist:
//     Pass forwards it, another fault fails it too.
func ExpireContinue(pageSize int, relist Fault) Fault {
	return Fault{name: "expire-continue", serve: func(p *Proxy, w *recorder, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("continue") != "":
			w.action = "410 expired continue"
			writeStatus(w, http.StatusGone, metav1.StatusReasonExpired, expiredMessage, nil)
		case q.Get("limit") != "":
			w.action = fmt.Sprintf("limit %s lowered to %d", q.Get("limit"), pageSize)
			q.Set("limit", strconv.Itoa(pageSize))
			r.URL.RawQuery = q.Encode()
			p.forward(w, r)
		default:
			w.action = "relist: " + relist.String()
			if relist.serve == nil {
				p.forward(w, r)
				return
			}
			relist.serve(p, w, r)
		}
	}}
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message string, header http.Header) {
	for k, vs := range header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body, _ := json.Marshal(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  message,
		Reason:   reason,
		Code:     int32(code),
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// Request is one request the proxy saw, and what it did with it.
type Request struct {
	Method, Path string
	Query        url.Values
	// Fault is the fault that applied ("pass" when none did).
	Fault string
	// Action says what a fault with several behaviours did (ExpireContinue), else is empty.
	Action string
	// Code is the status code of the answer; 0 when there was none (Hang, a failed forward).
	Code int
}

// Proxy is a running fault proxy. Set and Requests may be called while it serves.
type Proxy struct {
	// URL is the proxy's https://127.0.0.1:<port> address.
	URL string
	// CA is the PEM certificate the proxy serves with (self-signed, for 127.0.0.1).
	CA []byte

	srv     *http.Server
	rp      *httputil.ReverseProxy
	closing chan struct{}
	served  chan error // ServeTLS's result
	once    sync.Once
	err     error        // Close's result
	hangs   atomic.Int32 // requests Hang holds now

	mu    sync.Mutex
	rules []rule
	seen  []Request
}

type rule struct {
	match Match
	fault Fault
}

// Start starts a proxy on 127.0.0.1 in front of the API server upstream names, which it reaches
// with upstream's credentials and TLS settings.
func Start(upstream *rest.Config) (*Proxy, error) {
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: the upstream address %q: %w", upstream.Host, err)
	}
	if target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: the upstream address %q is not a URL", upstream.Host)
	}
	transport, err := rest.TransportFor(upstream)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: a transport to %s: %w", upstream.Host, err)
	}
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{
		URL:     "https://" + l.Addr().String(),
		CA:      caPEM,
		closing: make(chan struct{}),
		served:  make(chan error, 1),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The proxy authenticates upstream itself; what the client sent must not add to,
			// or take the place of, its credentials (the bearer token round tripper keeps an
			// Authorization header it finds).
			pr.Out.Header.Del("Authorization")
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			writeStatus(w, http.StatusBadGateway, metav1.StatusReasonInternalError, "faultproxy: forwarding to the API server: "+err.Error(), nil)
		},
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { p.served <- p.srv.ServeTLS(l, "", "") }()
	return p, nil
}

// Set makes f apply to the requests m picks, before the faults set earlier. Requests that no
// fault picks are forwarded unchanged.
func (p *Proxy) Set(m Match, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append([]rule{{m, f}}, p.rules...)
}

// Reset removes every fault and forgets the requests seen.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.seen = nil, nil
}

// Requests are the requests seen since Start or Reset, in the order they arrived. A request
// still being served (a hanging one) is listed once it ends.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.seen...)
}

// Close stops the proxy: hanging requests end, connections close. It reports a failure of the
// server itself, should it have stopped serving on its own.
func (p *Proxy) Close() error {
	p.once.Do(func() {
		close(p.closing)
		err := p.srv.Close()
		if serr := <-p.served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(serr, err)
		}
		p.err = err
	})
	return p.err
}

// Kubeconfig is a kubeconfig for the proxy: its URL, its certificate as the only CA to trust,
// and a user without credentials (the proxy holds them).
func (p *Proxy) Kubeconfig() *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["faultproxy"] = &clientcmdapi.Cluster{Server: p.URL, CertificateAuthorityData: p.CA}
	cfg.AuthInfos["faultproxy"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["faultproxy"] = &clientcmdapi.Context{Cluster: "faultproxy", AuthInfo: "faultproxy"}
	cfg.CurrentContext = "faultproxy"
	return cfg
}

// WriteKubeconfig writes Kubeconfig to path.
func (p *Proxy) WriteKubeconfig(path string) error {
	if err := clientcmd.WriteToFile(*p.Kubeconfig(), path); err != nil {
		return fmt.Errorf("faultproxy: writing %s: %w", path, err)
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w}
	f := p.fault(r)
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Fault: f.String()}
	if f.serve == nil {
		p.forward(rec, r)
	} else {
		f.serve(p, rec, r)
	}
	req.Action, req.Code = rec.action, rec.code
	p.mu.Lock()
	p.seen = append(p.seen, req)
	p.mu.Unlock()
}

func (p *Proxy) fault(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ru := range p.rules {
		if ru.match == nil || ru.match(r) {
			return ru.fault
		}
	}
	return Pass
}

func (p *Proxy) forward(w *recorder, r *http.Request) { p.rp.ServeHTTP(w, r) }

// recorder remembers the status code of the answer, and what a fault did.
type recorder struct {
	http.ResponseWriter
	code   int
	action string
}

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the reverse proxy stream (watches).
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// selfSigned makes a fresh key and a self-signed certificate for 127.0.0.1, valid for a day.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generating a serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "faultproxy"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("creating a certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("encoding the key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return cert, certPEM, nil
}
